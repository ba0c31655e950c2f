"""``run_segment``: files per (VIN, day), the segments table, re-runs, repairs, failures."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine

from bibev.db import open_database
from bibev.db.segments import load_segments
from bibev.errors import ConfigError
from bibev.pipeline.segment import run_segment, select_partitions
from bibev.storage import Storage
from tests.pipeline.clean_series import VIN, Series

DAY1, DAY2 = date(2025, 3, 3), date(2025, 3, 4)
VIN2 = "WBA71AW08NF118453"


def two_days(vin: str = VIN) -> pl.DataFrame:
    """A drive on day 1, a charge from 21:05 to 01:05, a drive on day 2."""
    series = Series(t=datetime(2025, 3, 3, 7, 0, tzinfo=UTC), vin=vin, soc=40.0)
    series.park(5).drive(20).park(5).silent(14 * 60 - 30).park(5)
    series.charge(240).park(10).silent(5 * 60).park(5).drive(20).park(5)
    return series.frame()


def put_clean(storage: Storage, frame: pl.DataFrame, days: list[date]) -> None:
    for day in days:
        for vin in frame["vin"].unique().to_list():
            part = frame.filter((pl.col("ts").dt.date() == day) & (pl.col("vin") == vin))
            storage.write_parquet(storage.day_key("clean", day, vin), part)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(str(tmp_path / "root"))


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = open_database(f"sqlite:///{tmp_path / 'bibev.db'}")
    yield engine
    engine.dispose()


def kinds_of(storage: Storage, day: date, vin: str = VIN) -> list[str]:
    frame = storage.read_parquet(storage.day_key("segments", day, vin))
    return frame["kind"].cast(pl.String).to_list()


def test_writes_a_file_per_partition_and_the_table(storage: Storage, engine: Engine) -> None:
    put_clean(storage, pl.concat([two_days(), two_days(VIN2)]), [DAY1, DAY2])
    summary = run_segment(storage, engine, workers=1)
    totals = summary.totals()
    assert (totals["partitions"], totals["failed"], totals["files_written"]) == (4, 0, 4)
    assert (totals["charging"], totals["driving"]) == (2, 4)
    assert kinds_of(storage, DAY1) == ["idle", "driving", "idle", "charging"]
    assert kinds_of(storage, DAY2) == ["idle", "driving", "idle"]
    stored = load_segments(engine, vin=VIN)
    assert [(r["day"], r["kind"]) for r in stored] == [
        (DAY1, "idle"),
        (DAY1, "driving"),
        (DAY1, "idle"),
        (DAY1, "charging"),
        (DAY2, "idle"),
        (DAY2, "driving"),
        (DAY2, "idle"),
    ]
    charge = next(r for r in stored if r["kind"] == "charging")
    assert charge["end"] == datetime(2025, 3, 4, 1, 5, tzinfo=UTC)
    assert totals["rows_stored"] == len(load_segments(engine))


def test_running_again_changes_nothing(storage: Storage, engine: Engine) -> None:
    put_clean(storage, two_days(), [DAY1, DAY2])
    run_segment(storage, engine, workers=1)
    before = {key: storage.read_bytes(key) for key in storage.list("segments")}
    rows_before = load_segments(engine)
    again = run_segment(storage, engine, workers=1).totals()
    assert (again["files_written"], again["files_unchanged"]) == (0, 2)
    assert {key: storage.read_bytes(key) for key in storage.list("segments")} == before
    assert load_segments(engine) == rows_before


def test_the_next_day_completes_the_session_left_open(storage: Storage, engine: Engine) -> None:
    frame = two_days()
    put_clean(storage, frame, [DAY1])
    run_segment(storage, engine, workers=1)
    open_charge = storage.read_parquet(storage.day_key("segments", DAY1, VIN)).tail(1)
    assert (open_charge["kind"][0], open_charge["open_end"][0]) == ("charging", True)
    put_clean(storage, frame, [DAY2])
    assert select_partitions(storage, date_from=DAY2) == [(VIN, DAY1), (VIN, DAY2)]
    run_segment(storage, engine, workers=1, date_from=DAY2)
    charge = storage.read_parquet(storage.day_key("segments", DAY1, VIN)).tail(1)
    assert charge.select("kind", "end", "open_end").row(0) == (
        "charging",
        datetime(2025, 3, 4, 1, 5, tzinfo=UTC),
        False,
    )
    stored = [r for r in load_segments(engine) if r["kind"] == "charging"]
    assert [(r["day"], r["end"]) for r in stored] == [(DAY1, charge["end"][0])]


def test_a_day_whose_next_day_changed_redoes_the_session_into_it(
    storage: Storage, engine: Engine
) -> None:
    """Both days segmented together: the charge of day 1 is not open. Day 2's clean file then
    changes (late data: the charge stopped at 00:30, not 01:05); running day 2 alone redoes
    day 1 too, so its charge ends where day 2's first session starts."""
    put_clean(storage, two_days(), [DAY1, DAY2])
    run_segment(storage, engine, workers=1)
    series = Series(t=datetime(2025, 3, 3, 7, 0, tzinfo=UTC), vin=VIN, soc=40.0)
    series.park(5).drive(20).park(5).silent(14 * 60 - 30).park(5)
    series.charge(205).park(45).silent(5 * 60).park(5).drive(20).park(5)
    put_clean(storage, series.frame(), [DAY2])

    assert select_partitions(storage, date_from=DAY2) == [(VIN, DAY1), (VIN, DAY2)]
    run_segment(storage, engine, workers=1, date_from=DAY2)
    charge = storage.read_parquet(storage.day_key("segments", DAY1, VIN)).tail(1)
    first = storage.read_parquet(storage.day_key("segments", DAY2, VIN)).head(1)
    assert charge.select("kind", "end").row(0) == (
        "charging",
        datetime(2025, 3, 4, 0, 30, tzinfo=UTC),
    )
    assert first["start"][0] == charge["end"][0]
    stored = [r for r in load_segments(engine) if r["kind"] == "charging"]
    assert [r["end"] for r in stored] == [charge["end"][0]]


def test_a_later_day_a_session_covered_is_redone_with_the_day(
    storage: Storage, engine: Engine
) -> None:
    """Day 2's sessions file is empty, as when a session of day 1 covered it. Day 1 redone, its
    session may end sooner: day 2 is redone with it and cuts its own sessions."""
    put_clean(storage, two_days(), [DAY1, DAY2])
    run_segment(storage, engine, workers=1)
    whole = storage.read_bytes(storage.day_key("segments", DAY2, VIN))
    empty = storage.read_parquet(storage.day_key("segments", DAY2, VIN)).clear()
    storage.write_parquet(storage.day_key("segments", DAY2, VIN), empty)

    assert select_partitions(storage, date_from=DAY1, date_to=DAY1) == [(VIN, DAY1), (VIN, DAY2)]
    run_segment(storage, engine, workers=1, date_from=DAY1, date_to=DAY1)
    assert storage.read_bytes(storage.day_key("segments", DAY2, VIN)) == whole
    assert kinds_of(storage, DAY2) == ["idle", "driving", "idle"]


def test_a_broken_partition_is_listed_and_the_others_are_done(
    storage: Storage, engine: Engine
) -> None:
    put_clean(storage, pl.concat([two_days(), two_days(VIN2)]), [DAY1])
    storage.write_bytes(storage.day_key("clean", DAY1, VIN2), b"not parquet")
    summary = run_segment(storage, engine, workers=1)
    assert [name for name, _ in summary.failures] == [f"{VIN2} {DAY1}"]
    assert kinds_of(storage, DAY1) == ["idle", "driving", "idle", "charging"]
    with pytest.raises(Exception, match="1 of 2 partition"):
        summary.raise_for_failures()


def test_a_day_locked_by_another_run_is_a_failure(storage: Storage) -> None:
    put_clean(storage, two_days(), [DAY1, DAY2])
    with storage.lock("segment/2025-03-04"):
        summary = run_segment(storage, workers=1)
    assert [name for name, _ in summary.failures] == [f"{VIN} {DAY2}"]
    assert storage.exists(storage.day_key("segments", DAY1, VIN))


def test_selection_by_vin_and_days(storage: Storage) -> None:
    put_clean(storage, pl.concat([two_days(), two_days(VIN2)]), [DAY1, DAY2])
    assert select_partitions(storage, vins=[VIN2], date_to=DAY1) == [(VIN2, DAY1)]
    assert len(select_partitions(storage)) == 4


def test_a_memory_root_runs_inline() -> None:
    storage = Storage("memory://segment-run-test")
    put_clean(storage, two_days(), [DAY1, DAY2])
    summary = run_segment(storage, workers=2)
    assert summary.totals()["files_written"] == 2
    assert storage.exists(storage.day_key("segments", DAY2 - timedelta(days=1), VIN))
    storage.delete_many(storage.list(""))


def test_a_batch_holds_at_least_one_vehicle(storage: Storage) -> None:
    put_clean(storage, two_days(), [DAY1])
    with pytest.raises(ConfigError, match="at least one vehicle"):
        run_segment(storage, workers=1, batch_size=0)
    assert not storage.exists(storage.day_key("segments", DAY1, VIN))


def parked_for_days(vin: str = VIN) -> pl.DataFrame:
    """A drive on 3 March, then parked till 7 March (awake a few minutes twice a day, not at
    all on 5 March), then a drive: one idle session of four days."""
    series = Series(t=datetime(2025, 3, 3, 7, 0, tzinfo=UTC), vin=vin, soc=60.0)
    series.park(5).drive(20).park(5)
    for day, hour in [(3, 19), (4, 9), (4, 21), (6, 10), (6, 22), (7, 8)]:
        wake = datetime(2025, 3, day, hour, 0, tzinfo=UTC)
        series.silent((wake - series.t).total_seconds() / 60).park(5)
    return series.drive(20).park(5).frame()


PARKED_DAYS = [DAY1 + timedelta(days=n) for n in range(5)]


def written_sessions(storage: Storage, vin: str = VIN) -> list[tuple[str, datetime, datetime]]:
    frames = [storage.read_parquet(key) for key in storage.list("segments")]
    sessions = pl.concat(frames).filter(pl.col("vin") == vin).sort("start")
    return list(sessions.select(pl.col("kind").cast(pl.String), "start", "end").iter_rows())


def whole_series_sessions(frame: pl.DataFrame) -> list[tuple[str, datetime, datetime]]:
    from bibev.pipeline.segment import segment_series

    sessions = segment_series(frame.lazy()).collect().sort("start")
    return list(sessions.select(pl.col("kind").cast(pl.String), "start", "end").iter_rows())


def test_an_idle_of_several_days_is_one_session_with_no_hole(
    storage: Storage, engine: Engine
) -> None:
    frame = parked_for_days()
    days = sorted(set(frame["ts"].dt.date().to_list()))
    assert days == [d for d in PARKED_DAYS if d != date(2025, 3, 5)]
    put_clean(storage, frame, days)

    run_segment(storage, engine, workers=1)

    sessions = written_sessions(storage)
    assert sessions == whole_series_sessions(frame)
    assert [kind for kind, *_ in sessions] == ["idle", "driving", "idle", "driving", "idle"]
    idle = sessions[2]
    assert idle[2] - idle[1] > timedelta(days=4)
    for (_, _, end), (_, start, _) in itertools.pairwise(sessions):
        assert end == start  # they tile the timeline


def test_night_after_night_an_idle_of_several_days_ends_as_if_run_at_once(
    storage: Storage, engine: Engine, tmp_path: Path
) -> None:
    frame = parked_for_days()
    days = sorted(set(frame["ts"].dt.date().to_list()))
    for day in days:  # tonight's run sees the days up to yesterday
        put_clean(storage, frame, [day])
        run_segment(storage, engine, workers=1, date_from=day)

    at_once = Storage(str(tmp_path / "at-once"))
    put_clean(at_once, frame, days)
    run_segment(at_once, workers=1)
    assert written_sessions(storage) == written_sessions(at_once)
    assert [(r["kind"], r["start"], r["end"]) for r in load_segments(engine)] == [
        (kind, start, end) for kind, start, end in written_sessions(at_once)
    ]


def test_a_damaged_segments_file_next_to_the_range_is_written_again(storage: Storage) -> None:
    """The sessions file of the day before is truncated: segmenting the next day reads it to
    see whether its last session reaches into the range, finds it damaged, and segments that
    day again instead of failing the run."""
    put_clean(storage, two_days(), [DAY1, DAY2])
    run_segment(storage, workers=1)
    key = storage.day_key("segments", DAY1, VIN)
    whole = storage.read_bytes(key)
    storage.write_bytes(key, whole[:100])

    summary = run_segment(storage, workers=1, date_from=DAY2, date_to=DAY2)

    assert summary.failures == []
    assert sorted(r.day for r in summary.results) == [DAY1, DAY2]
    assert storage.read_bytes(key) == whole


def test_a_clean_file_with_rows_of_another_vin_fails_the_days_that_read_it(
    storage: Storage,
) -> None:
    """VIN2's clean file of day 2 holds VIN's rows (a copied or damaged file): the partitions
    that read it fail with an error naming it, instead of reading it as empty; VIN is done."""
    put_clean(storage, pl.concat([two_days(), two_days(VIN2)]), [DAY1, DAY2])
    storage.write_bytes(
        storage.day_key("clean", DAY2, VIN2),
        storage.read_bytes(storage.day_key("clean", DAY2, VIN)),
    )

    summary = run_segment(storage, workers=1)

    assert sorted((r.vin, r.day) for r in summary.results) == [(VIN, DAY1), (VIN, DAY2)]
    assert [name for name, _ in summary.failures] == [f"{VIN2} {DAY1}", f"{VIN2} {DAY2}"]
    reason = summary.failures[0][1]
    assert f"clean/2025/03/04/{VIN2}.parquet' holds rows of another vehicle" in reason
    assert f"are not of {VIN2}, the VIN of its name" in reason
