"""Cleaning many vehicles of a day in one query gives exactly the files and quality records of
cleaning them one at a time, and the batch reader refuses a file that is not its VIN's
compressed file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from bibev.errors import DataContractError
from bibev.pipeline.clean import QualityRecord, clean_frame, run_clean
from bibev.pipeline.clean.partition import CleanJob, clean_batch
from bibev.pipeline.clean.read import COLUMNS, day_files, read_compressed
from bibev.pipeline.compact import run_compact
from bibev.providers.registry import get_registry
from bibev.schema import COMPRESSED_SCHEMA
from bibev.sim import SimConfig, simulate_fleet
from bibev.storage import Storage
from tests.pipeline.test_clean_frame import MAPPING, VIN, at, day_of, msg

START = date(2025, 3, 1)
NOW = datetime(2025, 3, 10, tzinfo=UTC)
VIN2 = "WBA21EF0XMR150626"


def soc_keys(provider: str) -> list[str]:
    return [m.key for m in get_registry().get(provider).mapping if m.column == "soc_pct"]


def glitches(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of a compressed file plus a few of every kind the cleaner judges: the same
    value again as text, an odometer-like step back, an impossible value, a clock 20 minutes
    ahead and one 3 minutes ahead, a value flagged invalid, and SoC spikes (30 points away and
    back within two seconds); shuffled."""
    number = pl.coalesce("value_f64", pl.col("value_i64").cast(pl.Float64))
    rows = frame.with_columns(value_f64=number, value_i64=None).drop_nulls("value_f64")
    rows = rows.sort("ts", "key")
    picks = rows.gather_every(max(rows.height // 6, 1))
    soc = rows.filter(pl.col("key").is_in(soc_keys(frame["provider"][0])))
    soc = soc.gather_every(max(soc.height // 3, 1))
    value, ts = pl.col("value_f64"), pl.col("ts")
    bad = [
        picks.with_columns(value_str=value.cast(pl.String), value_f64=None),
        picks.with_columns(ts=ts + timedelta(seconds=2), value_f64=value - 50),
        picks.with_columns(value_f64=pl.lit(-5.0)),
        picks.with_columns(ts=ts + timedelta(minutes=20)),
        picks.with_columns(ts=ts + timedelta(minutes=3), value_f64=value + 0.5),
        picks.with_columns(invalid=pl.lit(True), value_f64=None),
        soc.with_columns(ts=ts + timedelta(seconds=1), value_f64=(value - 30).abs()),
        soc.with_columns(ts=ts + timedelta(seconds=2)),
    ]
    same_day = pl.col("ts").dt.date() == frame["ts"].dt.date().min()
    messy = pl.concat([frame, *(b.filter(same_day) for b in bad)])
    return messy.sample(fraction=1.0, shuffle=True, seed=frame.height)


@dataclass
class Fleet:
    root: Path

    def storage(self, name: str) -> Storage:
        """A fresh copy of the fleet's compressed days."""
        target = self.root.parent / name
        source = Storage(str(self.root))
        storage = Storage(str(target))
        for key in source.list("compressed"):
            storage.write_bytes(key, source.read_bytes(key))
        return storage


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """Two providers' wire formats on one root (so a day's batch needs two mappings), every
    mess of the simulator on, and glitches added to every compressed file."""
    root = tmp_path_factory.mktemp("batch") / "fleet"
    storage = Storage(str(root))
    for provider, fmt, seed in (("tesla", "fleet-api-json", 3), ("bmw", "cardata-stream", 4)):
        config = SimConfig(
            start=START, vehicles=2, days=3, seed=seed, provider=provider, format=fmt
        )
        simulate_fleet(config, storage)
    assert run_compact(storage, now=NOW, workers=1).failures == []
    for key in storage.list("compressed"):
        storage.write_parquet(key, glitches(storage.read_parquet(key)))
    return Fleet(root)


def cleaned(storage: Storage, batch_size: int) -> tuple[dict[str, bytes], list[QualityRecord]]:
    summary = run_clean(storage, workers=1, now=NOW, batch_size=batch_size)
    assert summary.failures == []
    files = {key: storage.read_bytes(key) for key in storage.list("clean")}
    return files, [r.quality for r in summary.results]


def test_batches_give_the_files_and_records_of_one_vehicle_at_a_time(fleet: Fleet) -> None:
    alone_files, alone_quality = cleaned(fleet.storage("alone"), batch_size=1)
    for size in (3, 100):  # uneven batches of a day's four vehicles, and the whole day at once
        files, quality = cleaned(fleet.storage(f"batch-{size}"), batch_size=size)
        assert files == alone_files
        assert quality == alone_quality
    assert len(alone_files) == 12
    # the comparison means something: every kind of glitch was judged, in both providers
    dropped = {reason for q in alone_quality for reason in q.dropped}
    assert dropped >= {"duplicate", "future_ts", "out_of_range", "soc_jump", "odometer_backwards"}
    assert sum(q.superseded for q in alone_quality) > 0
    assert sum(q.clamped_ts for q in alone_quality) > 0
    assert {q.provider for q in alone_quality} == {"tesla", "bmw"}


def test_the_core_cleans_many_vehicles_as_it_cleans_each() -> None:
    def day(vin: str, soc: float) -> pl.DataFrame:
        return day_of(*(msg(at(9, m), vin=vin, soc=soc - m, odo=100.0 + m) for m in range(5)))

    together = clean_frame(pl.concat([day(VIN2, 50.0), day(VIN, 80.0)]), MAPPING, day=START)
    apart = [
        clean_frame(day(vin, soc), MAPPING, day=START) for vin, soc in ((VIN, 80.0), (VIN2, 50.0))
    ]
    frame = together.frame.collect()
    assert frame["vin"].to_list() == [VIN] * 5 + [VIN2] * 5  # sorted by vin, ts
    assert frame.equals(pl.concat([a.frame.collect() for a in apart]))
    assert together.quality == [q for a in apart for q in a.quality]


def put(storage: Storage, day: date, vin: str, frame: pl.DataFrame) -> str:
    key = storage.day_key("compressed", day, vin)
    storage.write_parquet(key, frame)
    return key


def test_a_file_with_rows_of_another_vehicle_is_refused_by_name(storage: Storage) -> None:
    """On a local root and on S3 (one scan for the batch): a file named for one VIN that holds
    rows of another is not read in part (its other rows were dropped silently before)."""
    put(storage, START, VIN, day_of(msg(at(9), soc=80.0), msg(at(10), vin=VIN2, soc=10.0)))
    put(storage, START, VIN2, msg(at(9), vin=VIN2, soc=50.0))
    keys = day_files(storage, START, [VIN, VIN2, "5YJ3E1EA7KF000002"])
    with pytest.raises(DataContractError) as caught:
        read_compressed(storage, keys)
    assert str(caught.value) == (
        f"'compressed/2025/03/01/{VIN}.parquet' in {storage.url} holds rows of another "
        f"vehicle: 1 of its 2 rows are not of {VIN}, the VIN of its name (VIN {VIN2})"
    )
    rows = read_compressed(storage, {VIN2: keys[VIN2]})
    assert rows is not None
    assert rows.select("vin", "value_f64").rows() == [(VIN2, 50.0)]


def test_a_file_of_another_layer_is_refused_by_name(storage: Storage) -> None:
    """A clean file copied into compressed/ has a VIN and instants but no provider or key:
    refused, even under its own VIN's name (its rows read as nothing before)."""
    put(storage, START, VIN, msg(at(9), soc=80.0))
    clean = pl.DataFrame({"vin": [VIN2] * 2, "ts": [at(9), at(10)], "soc_pct": [50.0, 49.0]})
    put(storage, START, VIN2, clean)
    with pytest.raises(DataContractError) as caught:
        read_compressed(storage, day_files(storage, START, [VIN, VIN2]))
    assert str(caught.value) == (
        f"'compressed/2025/03/01/{VIN2}.parquet' in {storage.url} is not a compressed file: "
        "required column(s) provider, key missing (2 rows; its columns: vin, ts, soc_pct)"
    )


def test_files_without_optional_columns_scan_with_the_others(tmp_path: Path) -> None:
    """An older file without ``received_at``, ``unit``, ``invalid`` and the value columns it
    does not use scans with a complete one: every row read, the missing columns null."""
    storage = Storage(str(tmp_path))
    old = msg(at(9), provider="tesla", Soc=80.0)
    put(storage, START, VIN, old.select("vin", "provider", "ts", "key", "value_f64"))
    put(storage, START, VIN2, msg(at(9), vin=VIN2, provider="tesla", Soc=50.0))
    rows = read_compressed(storage, day_files(storage, START, [VIN, VIN2]))
    assert rows is not None
    assert rows.schema == pl.Schema({name: COMPRESSED_SCHEMA[name] for name in COLUMNS})
    assert rows.select("vin", "value_f64", "received_at", "unit").sort("vin").rows() == [
        (VIN, 80.0, None, None),
        (VIN2, 50.0, at(9, second=1), None),
    ]
    results = clean_batch(CleanJob(storage), [(VIN, START), (VIN2, START)])
    assert [(r.vin, r.quality.rows_in, r.quality.rows_out) for r in results] == [
        (VIN, 1, 1),
        (VIN2, 1, 1),
    ]


def test_files_of_other_layouts_are_read_one_by_one(tmp_path: Path) -> None:
    """An older file without ``received_at`` and ``invalid``, and one with its numbers in
    32 bits, cannot be scanned as one: each is read and conformed on its own."""
    storage = Storage(str(tmp_path))
    old = msg(at(9), soc=80.0).drop("received_at", "invalid")
    narrow = msg(at(9), vin=VIN2, soc=50.5).with_columns(pl.col("value_f64").cast(pl.Float32))
    keys = {VIN: put(storage, START, VIN, old), VIN2: put(storage, START, VIN2, narrow)}
    rows = read_compressed(storage, keys)
    assert rows is not None
    assert rows.schema == pl.Schema({name: COMPRESSED_SCHEMA[name] for name in COLUMNS})
    assert rows.select("vin", "value_f64", "received_at", "invalid").sort("vin").rows() == [
        (VIN, 80.0, None, False),
        (VIN2, 50.5, at(9, second=1), False),
    ]


def test_a_batch_cleans_an_empty_file_and_skips_a_missing_one(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    soc = [msg(at(h), provider="tesla", Soc=80.0 - h) for h in (9, 10)]
    put(storage, START, VIN, day_of(*soc))
    put(storage, START, VIN2, msg(at(9), vin=VIN2, provider="tesla", Soc=50.0).clear())
    gone = "5YJ3E1EA7KF000002"  # listed by the run, deleted before its batch ran
    job = CleanJob(storage)
    results = clean_batch(job, [(VIN, START), (gone, START), (VIN2, START)])
    assert [(r.vin, r.written, r.quality.rows_out) for r in results] == [
        (VIN, True, 2),
        (gone, False, 0),
        (VIN2, True, 0),
    ]
    assert results[1].quality == QualityRecord(gone, START)
    assert not storage.exists(storage.day_key("clean", START, gone))
    together = {
        vin: storage.read_bytes(storage.day_key("clean", START, vin)) for vin in (VIN, VIN2)
    }
    for vin in (VIN, VIN2):
        storage.delete(storage.day_key("clean", START, vin))
        [alone] = clean_batch(job, [(vin, START)])
        assert alone.written
        assert storage.read_bytes(storage.day_key("clean", START, vin)) == together[vin]
