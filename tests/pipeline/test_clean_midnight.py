"""``run_clean`` night by night: a record of the next day whose clock ran ahead belongs to a day
that was cleaned before that record was compacted; the run that cleans the next day puts it
there, and the files end up as if every day had been cleaned at once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from bibev.pipeline.clean.run import run_clean
from bibev.storage import Storage
from tests.pipeline.test_clean_frame import msg

VIN, VIN2, VIN3 = "5YJ3E1EA7KF000001", "5YJ3E1EA7KF000002", "5YJ3E1EA7KF000003"
DAY1, DAY2 = date(2025, 3, 1), date(2025, 3, 2)
MIDNIGHT = datetime(2025, 3, 2, tzinfo=UTC)


def tesla(
    ts: datetime, vin: str, received: datetime | None = None, soc: float = 60.0
) -> pl.DataFrame:
    return msg(ts, received=received, vin=vin, provider="tesla", Soc=soc, Odometer=1000.0)


def compressed() -> dict[tuple[date, str], pl.DataFrame]:
    """VIN drives into the night; its first record after midnight was sent at 23:58 with a clock
    five minutes ahead. VIN2 is seen only after midnight, the same way. VIN3 reports after
    midnight with a right clock, and not on the day before."""
    minutes = timedelta(minutes=1)
    return {
        (DAY1, VIN): pl.concat(
            [tesla(MIDNIGHT - 60 * m * minutes, VIN, soc=60.0 + m) for m in (3, 2, 1)]
        ),
        (DAY2, VIN): pl.concat(
            [
                tesla(MIDNIGHT + 3 * minutes, VIN, received=MIDNIGHT - 2 * minutes, soc=59.0),
                tesla(MIDNIGHT + 60 * minutes, VIN, soc=58.0),
            ]
        ),
        (DAY2, VIN2): pl.concat(
            [
                tesla(MIDNIGHT + 4 * minutes, VIN2, received=MIDNIGHT - minutes, soc=40.0),
                tesla(MIDNIGHT + 90 * minutes, VIN2, soc=39.0),
            ]
        ),
        (DAY2, VIN3): tesla(MIDNIGHT + 5 * minutes, VIN3, soc=70.0),
    }


def put(storage: Storage, days: set[date]) -> None:
    for (day, vin), frame in compressed().items():
        if day in days:
            storage.write_parquet(storage.day_key("compressed", day, vin), frame)


def files(storage: Storage) -> dict[str, bytes]:
    return {key: storage.read_bytes(key) for key in storage.list("clean")}


def instants(storage: Storage, day: date, vin: str) -> list[datetime]:
    return storage.read_parquet(storage.day_key("clean", day, vin))["ts"].to_list()


def test_the_next_night_puts_a_record_ahead_of_its_clock_on_its_own_day(tmp_path: Path) -> None:
    night = Storage(str(tmp_path / "night"))
    put(night, {DAY1})
    run_clean(night, date_from=DAY1, date_to=DAY1, workers=1)
    assert len(instants(night, DAY1, VIN)) == 3
    put(night, {DAY2})
    summary = run_clean(night, date_from=DAY2, date_to=DAY2, workers=1)

    # the record received at 23:58 is cleaned into the day before, which was cleaned without it
    assert instants(night, DAY1, VIN)[-1] == MIDNIGHT - timedelta(minutes=2)
    assert instants(night, DAY1, VIN2) == [MIDNIGHT - timedelta(minutes=1)]
    assert instants(night, DAY2, VIN2) == [MIDNIGHT + timedelta(minutes=90)]
    done = sorted((r.vin, r.day, r.written) for r in summary.results)
    assert done == [
        (VIN, DAY1, True),
        (VIN, DAY2, True),
        (VIN2, DAY1, True),
        (VIN2, DAY2, True),
        (VIN3, DAY2, True),
    ]
    # VIN3's day before had no rows of its own and got none: nothing was written there
    assert not night.exists(night.day_key("clean", DAY1, VIN3))
    quality = next(r.quality for r in summary.results if (r.vin, r.day) == (VIN2, DAY1))
    assert (quality.provider, quality.rows_in, quality.rows_out) == ("tesla", 0, 1)
    assert summary.totals()["days"] == 2

    at_once = Storage(str(tmp_path / "at-once"))
    put(at_once, {DAY1, DAY2})
    run_clean(at_once, workers=1)
    assert files(night) == files(at_once)


def test_cleaning_the_next_day_again_changes_nothing(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "root"))
    put(storage, {DAY1, DAY2})
    run_clean(storage, workers=1)
    before = files(storage)
    again = run_clean(storage, date_from=DAY2, date_to=DAY2, workers=1).totals()
    assert (again["partitions"], again["files_written"], again["files_unchanged"]) == (5, 0, 5)
    assert files(storage) == before


def test_the_day_before_held_by_another_run_is_a_failure(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "root"))
    put(storage, {DAY1, DAY2})
    with storage.lock("clean/2025-03-01"):
        summary = run_clean(storage, date_from=DAY2, date_to=DAY2, workers=1)
    # VIN3's rows after midnight stay on their day, and it has no day before: not needed there
    assert [name for name, _ in summary.failures] == [f"{VIN} {DAY1}", f"{VIN2} {DAY1}"]
    assert sorted(r.vin for r in summary.results) == [VIN, VIN2, VIN3]
