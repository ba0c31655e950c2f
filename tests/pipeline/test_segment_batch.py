"""Batches: many vehicles segmented in one query give each vehicle exactly what it gets alone,
on a simulated fleet with every mess on, and on frames of a single row."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from bibev.errors import DataContractError
from bibev.pipeline.clean import run_clean
from bibev.pipeline.compact import run_compact
from bibev.pipeline.segment import run_segment, segment_day, segment_series
from bibev.pipeline.segment.files import read_windows
from bibev.sim.run import SimConfig, simulate_fleet
from bibev.storage import Storage
from tests.pipeline.clean_series import Series

FIRST_DAY = date(2025, 3, 3)
DAYS = 3
NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Storage:
    """Four Tesla vehicles over three days (every mess on), compacted and cleaned."""
    storage = Storage(str(tmp_path_factory.mktemp("fleet")))
    config = SimConfig(start=FIRST_DAY, vehicles=4, days=DAYS, seed=11, provider="tesla")
    simulate_fleet(config, storage)
    run_compact(storage, now=NOW, workers=1)
    assert run_clean(storage, None, now=NOW, workers=1).failures == []
    return storage


def segment_files(storage: Storage) -> dict[str, bytes]:
    return {key: storage.read_bytes(key) for key in storage.list("segments")}


def test_batches_of_any_size_write_the_same_bytes(fleet: Storage) -> None:
    alone = run_segment(fleet, None, workers=1, batch_size=1)
    assert alone.failures == []
    assert alone.totals()["files_written"] == 4 * DAYS
    one_at_a_time = segment_files(fleet)
    for size in (3, 100):
        again = run_segment(fleet, None, workers=1, batch_size=size).totals()
        assert (again["files_written"], again["files_unchanged"]) == (0, 4 * DAYS)
        assert segment_files(fleet) == one_at_a_time
    found = pl.concat([pl.read_parquet(data) for data in one_at_a_time.values()])
    assert found.filter(pl.col("kind") == "driving").height > 10
    assert found["vin"].n_unique() == 4


def test_a_batch_gives_each_vehicle_its_own_sessions(fleet: Storage) -> None:
    day = FIRST_DAY + timedelta(days=1)  # with both neighbours
    keys = fleet.day_keys("clean", day)
    vins = list(keys)
    rows, rows_in = read_windows(fleet, vins, day)
    assert rows_in == {vin: fleet.read_parquet(key).height for vin, key in keys.items()}
    together = segment_day(rows.lazy(), day).collect()
    for vin in vins:
        alone = segment_day(rows.filter(pl.col("vin") == vin).lazy(), day).collect()
        assert together.filter(pl.col("vin") == vin).equals(alone)
    assert together["vin"].to_list() == sorted(together["vin"].to_list())
    assert together["vin"].n_unique() >= 2


def test_a_one_session_vehicle_in_a_batch_is_what_it_is_alone() -> None:
    # polars divides a one-row column by a constant exactly, and a longer one by multiplying
    # by the reciprocal (794_830_000 µs → 794.83 s or 794.8299999999999 s): a vehicle must not
    # get other bits because other vehicles came with it.
    lonely = Series(vin="WBA71AW08NF118453").park(14.6, every=79.483).frame()
    busy = Series().park(10).drive(30, kmh=47).park(5).silent(40).park(5).frame()
    alone = segment_series(lonely.lazy()).collect()
    together = segment_series(pl.concat([busy, lonely]).lazy()).collect()
    assert alone.select("kind", "duration_s").rows() == [("idle", pytest.approx(794.83))]
    assert together.filter(pl.col("vin") == lonely["vin"][0]).equals(alone)
    assert together.filter(pl.col("vin") == busy["vin"][0]).equals(
        segment_series(busy.lazy()).collect()
    )


def test_speeds_from_fixes_stay_within_their_vehicle() -> None:
    # A speed derived from positions reads the readings before and after a row and the time
    # online since the last one: the first vehicle ends driving, the second starts driving,
    # and each crosses a 5-minute tunnel; batched, each gets what it gets alone.
    fixes_only = ("gear", "speed_kmh")
    first = Series(missing=fixes_only).park(5).drive(2, every=30)
    first.lat += 0.036  # 4 km north through the tunnel
    first.silent(5, km=4.0).drive(1, every=30)
    second = Series(vin="WBA71AW08NF118453", missing=fixes_only, lat=48.5).drive(2, every=30)
    second.lat += 0.036
    second.silent(5, km=4.0).park(5)
    together = segment_series(pl.concat([first.frame(), second.frame()]).lazy()).collect()
    for series in (first, second):
        alone = segment_series(series.lazy()).collect()
        assert alone.filter(pl.col("kind") == "driving").height == 1
        assert together.filter(pl.col("vin") == series.vin).equals(alone)


def test_each_file_counts_for_its_own_vehicle_only(storage: Storage) -> None:
    """On a local root and on S3: one scan for the batch, the day's rows counted per file."""
    first = Series().park(10).drive(20).park(10).frame()
    other = Series(vin="WBA71AW08NF118453").park(10).frame()
    vins = [first["vin"][0], other["vin"][0]]
    day = first["ts"][0].date()
    storage.write_parquet(storage.day_key("clean", day, vins[0]), first)
    storage.write_parquet(storage.day_key("clean", day, vins[1]), other)
    rows, rows_in = read_windows(storage, vins, day)
    assert rows_in == {vins[0]: first.height, vins[1]: other.height}
    assert rows.group_by("vin").len().sort("vin").rows() == [
        (vins[0], first.height),
        (vins[1], other.height),
    ]
    totals = run_segment(storage, None, workers=1).totals()
    assert (totals["partitions"], totals["files_written"]) == (2, 2)
    assert totals["rows_in"] == first.height + other.height
    written = storage.read_parquet(storage.day_key("segments", day, vins[0]))
    assert written["kind"].cast(pl.String).to_list() == ["idle", "driving", "idle"]
    assert written["vin"].unique().to_list() == [vins[0]]


def test_a_file_with_a_row_of_another_vehicle_is_refused(storage: Storage) -> None:
    """On a local root and on S3: a clean file with a row of another VIN than its name's fails
    the partitions that read it, naming it; the other vehicle of the batch is done."""
    first = Series().park(10).drive(20).park(10).frame()
    other = Series(vin="WBA71AW08NF118453").park(10).frame()
    vins = [first["vin"][0], other["vin"][0]]
    day = first["ts"][0].date()
    storage.write_parquet(storage.day_key("clean", day, vins[0]), pl.concat([first, other]))
    storage.write_parquet(storage.day_key("clean", day, vins[1]), other)
    with pytest.raises(DataContractError, match="holds rows of another vehicle"):
        read_windows(storage, vins, day)
    summary = run_segment(storage, None, workers=1)
    assert [(r.vin, r.day) for r in summary.results] == [(vins[1], day)]
    ((partition, reason),) = summary.failures
    assert partition == f"{vins[0]} {day}"
    assert (
        f"{other.height} of its {first.height + other.height} rows are not of {vins[0]}" in reason
    )
