"""``run_clean`` on a storage root (local and S3): files, quality records, idempotence,
selection, failures and locks."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine

from bibev.db import open_database
from bibev.db.quality import clean_quality_rows, upsert_clean_quality
from bibev.errors import PartialFailure
from bibev.pipeline.clean import CleanParams, QualityRecord
from bibev.pipeline.clean.run import lock_name, run_clean, select_partitions
from bibev.pipeline.segment import run_segment
from bibev.storage import Storage
from tests.pipeline.test_clean_frame import VIN, at, day_of, msg

VIN2 = "WBA21EF0XMR150626"
DAY1, DAY2 = date(2025, 3, 1), date(2025, 3, 2)


@pytest.fixture
def engine(sqlite_database_url: str) -> Iterator[Engine]:
    engine = open_database(sqlite_database_url)
    yield engine
    engine.dispose()


def put(storage: Storage, day: date, vin: str, frame: pl.DataFrame) -> None:
    storage.write_parquet(storage.day_key("compressed", day, vin), frame)


def tesla_day(day: date, vin: str = VIN, start_soc: float = 80.0) -> pl.DataFrame:
    """Four hourly messages, SoC falling by 1 a message, the odometer rising a mile."""
    miles = 100.0 + 24 * (day - DAY1).days
    return day_of(
        *(
            msg(at(h, day=day), vin=vin, provider="tesla", Soc=start_soc - h, Odometer=miles + h)
            for h in range(8, 12)
        )
    )


def fill(storage: Storage) -> Storage:
    """Two vehicles, two days; the second vehicle has no data on the second day."""
    put(storage, DAY1, VIN, tesla_day(DAY1))
    put(storage, DAY2, VIN, tesla_day(DAY2, start_soc=70.0))
    put(storage, DAY1, VIN2, tesla_day(DAY1, vin=VIN2, start_soc=50.0))
    return storage


@pytest.fixture
def fleet(storage: Storage) -> Storage:
    return fill(storage)


def clean_bytes(storage: Storage) -> dict[str, bytes]:
    keys = storage.list("clean")
    return {key: storage.read_bytes(key) for key in keys}


def test_cleans_every_day_and_stores_the_quality(fleet: Storage, engine: Engine) -> None:
    summary = run_clean(fleet, engine, workers=1)
    assert summary.failures == []
    totals = summary.totals()
    assert {k: totals[k] for k in ("days", "vehicles", "partitions", "rows_in", "rows_out")} == {
        "days": 2,
        "vehicles": 2,
        "partitions": 3,
        "rows_in": 24,
        "rows_out": 12,
    }
    frame = fleet.read_parquet(fleet.day_key("clean", DAY2, VIN))
    assert frame["soc_pct"].to_list() == [62.0, 61.0, 60.0, 59.0]
    rows = clean_quality_rows(engine)
    assert [(r["day"], r["vin"], r["rows_in"], r["rows_out"]) for r in rows] == [
        (DAY1, VIN, 8, 4),
        (DAY1, VIN2, 8, 4),
        (DAY2, VIN, 8, 4),
    ]
    assert summary.quality_stored == 3


def test_odometer_miles_become_kilometres(fleet: Storage) -> None:
    run_clean(fleet, workers=1, date_from=DAY1, date_to=DAY1, vins=[VIN])
    frame = fleet.read_parquet(fleet.day_key("clean", DAY1, VIN))
    assert frame["odometer_km"].to_list() == pytest.approx(
        [h * 1.609344 + 160.9344 for h in range(8, 12)]
    )


def test_running_again_changes_nothing(fleet: Storage, engine: Engine) -> None:
    first = run_clean(fleet, engine, workers=1)
    before = clean_bytes(fleet)
    second = run_clean(fleet, engine, workers=1)
    assert clean_bytes(fleet) == before
    assert (first.totals()["files_written"], second.totals()["files_written"]) == (3, 0)
    assert second.totals()["files_unchanged"] == 3
    assert len(clean_quality_rows(engine)) == 3  # replaced, not added


def test_the_order_of_days_does_not_matter(fleet: Storage) -> None:
    run_clean(fleet, workers=1, date_from=DAY2)
    run_clean(fleet, workers=1, date_to=DAY1)
    out_of_order = clean_bytes(fleet)
    for key in out_of_order:
        fleet.delete(key)
    run_clean(fleet, workers=1)
    assert clean_bytes(fleet) == out_of_order


def test_a_changed_compressed_day_updates_its_file_and_record(
    fleet: Storage, engine: Engine
) -> None:
    run_clean(fleet, engine, workers=1)
    put(
        fleet,
        DAY1,
        VIN2,
        day_of(tesla_day(DAY1, vin=VIN2), msg(at(13), vin=VIN2, provider="tesla", Soc=150.0)),
    )
    summary = run_clean(fleet, engine, workers=1, vins=[VIN2])
    assert summary.totals()["files_written"] == 1
    [row] = clean_quality_rows(engine, vins=[VIN2])
    assert (row["rows_in"], row["dropped"], row["dropped_total"]) == (9, {"soc_out_of_range": 1}, 1)


@pytest.mark.parametrize(
    ("date_from", "date_to", "vins", "expected"),
    [
        (None, None, None, [(VIN, DAY1), (VIN2, DAY1), (VIN, DAY2)]),
        (DAY2, None, None, [(VIN, DAY2)]),
        (None, DAY1, [VIN2], [(VIN2, DAY1)]),
        (date(2025, 4, 1), None, None, []),
    ],
)
def test_selection(
    fleet: Storage,
    date_from: date | None,
    date_to: date | None,
    vins: list[str] | None,
    expected: list[tuple[str, date]],
) -> None:
    assert select_partitions(fleet, date_from=date_from, date_to=date_to, vins=vins) == expected


def test_a_failed_partition_does_not_stop_the_others(fleet: Storage, engine: Engine) -> None:
    put(fleet, DAY2, VIN2, msg(at(9, day=DAY2), vin=VIN2, provider="no-such-provider", x=1))
    summary = run_clean(fleet, engine, workers=1)
    assert [name for name, _ in summary.failures] == [f"{VIN2} {DAY2}"]
    assert "unknown provider 'no-such-provider'" in summary.failures[0][1]
    assert summary.totals()["partitions"] == 4
    assert fleet.exists(fleet.day_key("clean", DAY2, VIN))
    assert not fleet.exists(fleet.day_key("clean", DAY2, VIN2))
    assert len(clean_quality_rows(engine)) == 3
    with pytest.raises(PartialFailure, match="1 of 4 partition") as caught:
        summary.raise_for_failures()
    assert caught.value.failures == summary.failures


def test_a_file_of_another_vehicle_or_layer_fails_alone(fleet: Storage, engine: Engine) -> None:
    """A file named for one VIN holding another's rows, and a clean file copied into
    compressed/: each partition fails with what is wrong (and the day before, which reads the
    file), the others are done. Both were cleaned as empty days with 0 rows in before."""
    third = "5YJ3E1EA7KF000002"
    put(fleet, DAY2, VIN2, fleet.read_parquet(fleet.day_key("compressed", DAY2, VIN)))
    run_clean(fleet, workers=1, vins=[VIN], date_from=DAY1, date_to=DAY1)
    clean_key = fleet.day_key("clean", DAY1, VIN)
    fleet.write_bytes(fleet.day_key("compressed", DAY2, third), fleet.read_bytes(clean_key))
    summary = run_clean(fleet, engine, workers=1)
    where = f"'compressed/2025/03/02/{{}}.parquet' in {fleet.url}"
    assert summary.failures == [
        (
            f"{third} {DAY2}",
            f"DataContractError: {where.format(third)} is not a compressed file: required "
            "column(s) provider, key missing (4 rows; its columns: vin, ts, soc_pct, "
            "odometer_km, speed_kmh, gear and 15 more)",
        ),
    ] + [
        (
            f"{VIN2} {day}",
            f"DataContractError: {where.format(VIN2)} holds rows of another vehicle: 8 of its "
            f"8 rows are not of {VIN2}, the VIN of its name (VIN {VIN})",
        )
        for day in (DAY1, DAY2)  # the day before reads the next day's first minutes
    ]
    assert sorted((r.vin, r.day, r.quality.rows_in) for r in summary.results) == [
        (VIN, DAY1, 8),
        (VIN, DAY2, 8),
    ]
    assert summary.totals()["partitions"] == 5
    assert not fleet.exists(fleet.day_key("clean", DAY2, VIN2))
    assert not fleet.exists(fleet.day_key("clean", DAY2, third))
    assert [(r["vin"], r["day"]) for r in clean_quality_rows(engine)] == [
        (VIN, DAY1),
        (VIN, DAY2),
    ]


def silent_day(day: date, *times: tuple[int, int]) -> pl.DataFrame:
    return day_of(*(msg(at(h, m, day=day), provider="tesla", Soc=60.0) for h, m in times))


def test_a_silence_over_a_day_without_a_file_counts_on_the_day_it_ends(
    fleet: Storage, engine: Engine
) -> None:
    """Silent from 22:08 on DAY2 to 16:58 two days later (no file the day between): 42.8 h
    on the day it ends, measured from the last file before it; its clean rows do not change."""
    day4 = date(2025, 3, 4)
    put(fleet, DAY2, VIN, silent_day(DAY2, (21, 0), (21, 30), (22, 8)))
    put(fleet, day4, VIN, silent_day(day4, (16, 58), (17, 10)))
    run_clean(fleet, engine, workers=1)
    [record] = clean_quality_rows(engine, date_from=day4)
    silence = (42 * 60 + 50) * 60.0
    assert (record["rows_in"], record["gaps"], record["longest_gap_s"]) == (2, 1, silence)
    with_silence = fleet.read_bytes(fleet.day_key("clean", day4, VIN))
    # a look-back of one day (only the day before) does not see it
    run_clean(fleet, engine, workers=1, date_from=day4, params=CleanParams(gap_lookback_days=1))
    [record] = clean_quality_rows(engine, date_from=day4)
    assert (record["gaps"], record["longest_gap_s"]) == (0, 12 * 60.0)
    assert fleet.read_bytes(fleet.day_key("clean", day4, VIN)) == with_silence
    # nor one of two days: the file is three days before
    put(fleet, day4 + timedelta(days=1), VIN, silent_day(day4 + timedelta(days=1), (6, 0)))
    fleet.delete(fleet.day_key("compressed", day4, VIN))
    run_clean(fleet, engine, workers=1, params=CleanParams(gap_lookback_days=2))
    [record] = clean_quality_rows(engine, date_from=day4 + timedelta(days=1))
    assert (record["gaps"], record["longest_gap_s"]) == (0, None)
    run_clean(fleet, engine, workers=1, params=CleanParams(gap_lookback_days=3))
    [record] = clean_quality_rows(engine, date_from=day4 + timedelta(days=1))
    assert (record["gaps"], record["longest_gap_s"]) == (1, (55 * 60 + 52) * 60.0)


def test_late_rows_before_a_day_without_a_file_update_the_silence_after_it(
    fleet: Storage, engine: Engine
) -> None:
    """Late rows of DAY2 arrive once the day after the empty one is cleaned: a --changed run
    cleans that day too, for its silence now starts later; a run of DAY2 alone leaves it
    noted."""
    from bibev.pipeline.changes import note, pending

    day4 = date(2025, 3, 4)
    put(fleet, DAY2, VIN, silent_day(DAY2, (20, 0)))
    put(fleet, day4, VIN, silent_day(day4, (16, 58)))
    run_clean(fleet, engine, workers=1)
    [record] = clean_quality_rows(engine, date_from=day4)
    assert record["longest_gap_s"] == (44 * 60 + 58) * 60.0
    note(fleet, "compressed", [(VIN, DAY2)], by="compact")
    put(fleet, DAY2, VIN, silent_day(DAY2, (20, 0), (22, 8)))
    run_clean(fleet, engine, workers=1, date_from=DAY2, date_to=DAY2)
    assert pending(fleet, "compressed").partitions == {(VIN, DAY2)}  # day 4 still to do
    summary = run_clean(fleet, engine, workers=1, changed=True)
    assert sorted((r.vin, r.day) for r in summary.results) == [
        (VIN, DAY1),
        (VIN, DAY2),
        (VIN, day4),
    ]
    [record] = clean_quality_rows(engine, date_from=day4)
    assert (record["gaps"], record["longest_gap_s"]) == (1, (42 * 60 + 50) * 60.0)
    assert pending(fleet, "compressed").notes == ()


def test_a_day_another_run_holds_is_reported(fleet: Storage) -> None:
    with fleet.lock(lock_name(DAY1)):
        summary = run_clean(fleet, workers=1)
    assert sorted(name for name, _ in summary.failures) == [f"{VIN} {DAY1}", f"{VIN2} {DAY1}"]
    assert all("lock" in reason for _, reason in summary.failures)
    assert [(r.vin, r.day) for r in summary.results] == [(VIN, DAY2)]
    with fleet.lock(lock_name(DAY2)):  # the run released the locks it took
        pass


def test_worker_processes_give_the_same_files(tmp_path: Path) -> None:
    """Process workers on a local root (the pool itself does not depend on the storage)."""
    fleet = fill(Storage(str(tmp_path / "root")))
    run_clean(fleet, workers=2)
    pooled = clean_bytes(fleet)
    for key in pooled:
        fleet.delete(key)
    run_clean(fleet, workers=1)
    assert clean_bytes(fleet) == pooled


def test_quality_records_are_replaced_on_every_database(database_engine: Engine) -> None:
    first = QualityRecord(VIN, DAY1, "tesla", rows_in=10, dropped={"soc_jump": 2}, rows_out=4)
    other = QualityRecord(VIN2, DAY1, "bmw", rows_in=3, first_ts=at(8), last_ts=at(9))
    assert upsert_clean_quality(database_engine, [first, other]) == 2
    again = QualityRecord(VIN, DAY1, "tesla", rows_in=11, dropped={"duplicate": 1}, rows_out=5)
    when = datetime(2025, 3, 2, 1, tzinfo=UTC)
    assert upsert_clean_quality(database_engine, [again], now=when) == 1
    rows = clean_quality_rows(database_engine, date_from=DAY1, date_to=DAY1)
    assert [(r["vin"], r["rows_in"], r["dropped"], r["dropped_total"]) for r in rows] == [
        (VIN, 11, {"duplicate": 1}, 1),
        (VIN2, 3, {}, 0),
    ]
    assert (rows[0]["cleaned_at"], rows[1]["first_ts"]) == (when, at(8))
    assert clean_quality_rows(database_engine, vins=[VIN2], date_from=DAY2) == []


def test_routine_partitions_log_at_debug_and_the_stage_end_at_info(
    fleet: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="bibev.pipeline"):
        summary = run_clean(fleet, workers=1)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    partitions = [(level, text) for level, text in lines if text.startswith("cleaned ")]
    assert sorted(text.split(":")[0] for _, text in partitions) == [
        f"cleaned {VIN} {DAY1}",
        f"cleaned {VIN} {DAY2}",
        f"cleaned {VIN2} {DAY1}",
    ]
    assert {level for level, _ in partitions} == {logging.DEBUG}  # nothing was dropped
    done = [text for level, text in lines if level == logging.INFO and "done in" in text]
    assert len(done) == 1
    assert "partitions 3, failed 0" in done[0]
    assert f"rows in {summary.totals()['rows_in']}," in done[0]


def test_clean_and_segment_remove_a_killed_writers_old_leftovers(tmp_path: Path) -> None:
    storage = fill(Storage(str(tmp_path / "root")))
    leftovers = tmp_path / "root" / "_tmp"
    leftovers.mkdir(exist_ok=True)  # writing the fleet made it
    for name in ("old-clean.parquet", "old-segments.parquet", "fresh.parquet"):
        (leftovers / name).write_bytes(b"half")
    two_days_ago = time.time() - 2 * 86400
    os.utime(leftovers / "old-clean.parquet", (two_days_ago, two_days_ago))
    run_clean(storage, workers=1)
    assert sorted(p.name for p in leftovers.iterdir()) == ["fresh.parquet", "old-segments.parquet"]
    os.utime(leftovers / "old-segments.parquet", (two_days_ago, two_days_ago))
    run_segment(storage, workers=1)
    assert [p.name for p in leftovers.iterdir()] == ["fresh.parquet"]  # may be a live writer's


def test_changed_cleans_what_compact_noted_and_keeps_only_what_failed(fleet: Storage) -> None:
    from bibev.pipeline.changes import note, pending

    run_clean(fleet, workers=1)
    note(fleet, "compressed", [(VIN, DAY2), (VIN2, DAY1)], by="compact")
    fleet.write_bytes(fleet.day_key("compressed", DAY1, VIN2), b"not parquet")
    summary = run_clean(fleet, workers=1, changed=True)

    # the days around VIN's day 2 that have a file (there is no day 3); VIN2's day 1 fails
    assert sorted((r.vin, r.day) for r in summary.results) == [(VIN, DAY1), (VIN, DAY2)]
    assert [name for name, _ in summary.failures] == [f"{VIN2} {DAY1}"]
    assert pending(fleet, "compressed").partitions == {(VIN2, DAY1)}
    put(fleet, DAY1, VIN2, tesla_day(DAY1, vin=VIN2, start_soc=50.0))
    again = run_clean(fleet, workers=1, changed=True)
    assert (again.totals()["partitions"], again.failures) == (1, [])
    assert pending(fleet, "compressed").notes == ()
