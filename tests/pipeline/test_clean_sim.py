"""End to end on the simulator: sim → compact → clean, against the simulator's truth, for every
provider's wire format, and the same bytes on S3 as on a local disk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl
import pytest

from bibev.pipeline.clean.run import CleanSummary, run_clean
from bibev.pipeline.compact import run_compact
from bibev.sim import SimConfig, simulate_fleet
from bibev.storage import Storage

START = date(2025, 3, 1)
NOW = datetime(2025, 3, 10, tzinfo=UTC)
PROVIDERS = ("tesla", "bmw", "high-mobility", "mobilisight", "sim")


@dataclass
class Cleaned:
    storage: Storage
    summary: CleanSummary
    clean: pl.DataFrame
    truth: pl.DataFrame


def simulate_and_clean(storage: Storage, provider: str) -> CleanSummary:
    config = SimConfig(start=START, vehicles=3, days=2, seed=7, provider=provider)
    simulate_fleet(config, storage)
    compacted = run_compact(storage, now=NOW, workers=1)
    assert compacted.failures == []
    return run_clean(storage, workers=1)


def clean_files(storage: Storage) -> dict[str, bytes]:
    return {key: storage.read_bytes(key) for key in storage.list("clean")}


@pytest.fixture(scope="module", params=PROVIDERS)
def cleaned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Cleaned:
    storage = Storage(str(tmp_path_factory.mktemp(f"sim-{request.param}")))
    summary = simulate_and_clean(storage, request.param)
    clean = pl.concat([storage.read_parquet(key) for key in storage.list("clean")])
    truth = storage.read_parquet(storage.truth_key("sessions.parquet"))
    return Cleaned(storage, summary, clean, truth)


def test_every_vehicle_day_is_cleaned(cleaned: Cleaned) -> None:
    assert cleaned.summary.failures == []
    assert len(cleaned.summary.results) == len(cleaned.storage.list("compressed"))
    assert cleaned.clean["vin"].n_unique() == 3


def test_one_row_per_instant_in_order(cleaned: Cleaned) -> None:
    per_vin = cleaned.clean.group_by("vin").agg(
        sorted=pl.col("ts").is_sorted(), unique=pl.col("ts").n_unique() == pl.len()
    )
    assert per_vin["sorted"].all()
    assert per_vin["unique"].all()


def test_clean_odometer_never_goes_backwards(cleaned: Cleaned) -> None:
    steps = (
        cleaned.clean.sort("vin", "ts")
        .filter(pl.col("odometer_km").is_not_null())
        .select(step=pl.col("odometer_km").diff().over("vin"))
    )
    assert steps["step"].min() >= 0


def test_soc_and_odometer_track_the_truth_at_drive_starts(cleaned: Cleaned) -> None:
    starts = (
        cleaned.truth.filter((pl.col("kind") == "driving") & ~pl.col("offline"))
        .select("vin", pl.col("start").alias("ts"), "soc_start", "odometer_start_km")
        .sort("vin", "ts")
    )
    rows = cleaned.clean.select("vin", "ts", "soc_pct", "odometer_km").sort("vin", "ts")
    # Both sides are sorted by (vin, ts), which is what an as-of join by VIN needs.
    joined = starts.join_asof(
        rows, on="ts", by="vin", strategy="forward", tolerance="3m", check_sortedness=False
    )
    matched = joined.drop_nulls(["soc_pct", "odometer_km"]).with_columns(
        soc_error=(pl.col("soc_pct") - pl.col("soc_start")).abs(),
        odometer_error=(pl.col("odometer_km") - pl.col("odometer_start_km")).abs(),
    )
    assert matched.height >= 3
    # The reported SoC carries the BMS's own error (a few percent); the odometer is exact
    # once the polled formats' few minutes of driving are allowed for.
    assert matched["soc_error"].max() < 3.0
    assert matched["odometer_error"].median() < 0.5
    assert matched["odometer_error"].max() < 3.0


def test_the_real_world_mess_is_not_mistaken_for_glitches(cleaned: Cleaned) -> None:
    quality = [r.quality for r in cleaned.summary.results]
    observations = sum(q.observations for q in quality)
    dropped = sum(q.dropped_total for q in quality)
    assert observations > 0
    assert dropped <= 0.005 * observations
    assert sum(q.rows_out for q in quality) == cleaned.clean.height


def test_running_again_gives_identical_files(cleaned: Cleaned) -> None:
    before = clean_files(cleaned.storage)
    again = run_clean(cleaned.storage, workers=1)
    assert again.totals()["files_written"] == 0
    assert clean_files(cleaned.storage) == before


@pytest.fixture(scope="module")
def local_tesla(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    storage = Storage(str(tmp_path_factory.mktemp("sim-tesla-reference")))
    simulate_and_clean(storage, "tesla")
    return clean_files(storage)


def test_the_same_files_on_every_storage(storage: Storage, local_tesla: dict[str, bytes]) -> None:
    summary = simulate_and_clean(storage, "tesla")
    assert summary.failures == []
    assert summary.totals()["files_written"] == len(local_tesla)
    assert clean_files(storage) == local_tesla
