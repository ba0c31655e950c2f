"""The day partitions cut each vehicle's sessions exactly as segmenting its whole series at once
does, whatever days are missing. Each case draws a fleet from its seed (provider, size) and
drops a random share of its vehicle-days before compaction, so that gaps of one to several
days, with sessions laid inside them, cross the day boundaries.

``BIBEV_SEGMENT_CASES=N`` runs N cases instead of the default few (a deeper search)."""

from __future__ import annotations

import itertools
import os
import random
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from bibev.pipeline.clean import run_clean
from bibev.pipeline.compact import run_compact
from bibev.pipeline.segment import SEGMENT_SCHEMA, run_segment, segment_series
from bibev.sim.run import SimConfig, simulate_fleet
from bibev.storage import Storage

pytestmark = pytest.mark.timeout(600)

CASES = int(os.environ.get("BIBEV_SEGMENT_CASES", "4"))
PROVIDERS = ("tesla", "sim", "bmw", "high-mobility")
#: What the files and the whole series are compared on (the id and day are the files' own).
COLUMNS = [name for name in SEGMENT_SCHEMA if name not in ("segment_id", "day")]


def files_of(storage: Storage, vin: str) -> pl.DataFrame:
    keys = [key for key in storage.list("segments") if key.endswith(f"/{vin}.parquet")]
    frames = [storage.read_parquet(key) for key in keys]
    return pl.concat(frames).sort("start").select(COLUMNS)


def whole_series(storage: Storage, vin: str) -> pl.DataFrame:
    keys = [key for key in storage.list("clean") if key.endswith(f"/{vin}.parquet")]
    rows = pl.concat([storage.read_parquet(key) for key in keys])
    found = segment_series(rows.lazy()).collect().sort("start")
    return found.with_columns(kind=pl.col("kind").cast(pl.String)).select(COLUMNS)


@pytest.mark.parametrize("case", range(CASES))
def test_day_files_hold_the_sessions_of_the_whole_series(tmp_path: Path, case: int) -> None:
    rng = random.Random(case)
    config = SimConfig(
        start=date(2025, 3, 1),
        vehicles=rng.randint(2, 4),
        days=6,
        seed=3000 + case,
        provider=rng.choice(PROVIDERS),
    )
    storage = Storage(str(tmp_path / "root"))
    simulate_fleet(config, storage)
    folders = sorted((tmp_path / "root" / "temp").glob("*/*"))
    dropped = [f"{f.parent.name}/{f.name}" for f in folders if rng.random() < 0.25]
    for name in dropped:
        shutil.rmtree(tmp_path / "root" / "temp" / name)
    run_compact(storage, now=datetime(2025, 6, 1, tzinfo=UTC), workers=1)
    run_clean(storage, workers=1)
    run_segment(storage, workers=1)

    vins = sorted({key.rsplit("/", 1)[1][:17] for key in storage.list("clean")})
    assert vins
    for vin in vins:
        found, expected = files_of(storage, vin), whole_series(storage, vin)
        where = f"case {case}: {config}, {vin}, dropped {dropped}"
        assert found["start"].to_list() == expected["start"].to_list(), where
        assert found.equals(expected), where
        for end, start in itertools.pairwise(found.select("end", "start").iter_rows()):
            assert end[0] == start[1], where  # no hole, no overlap


def test_a_gap_laid_out_from_an_odometer_read_days_before(tmp_path: Path) -> None:
    """A BMW whose 3 March is missing: the drive hidden in the gap from the evening of 2 March
    to the morning of 4 March is laid out from the odometer before the gap, the last reading
    (on 1 March) plus the distance driven since. Segmenting 4 March must read back that far,
    or its hidden drive starts 25 s before the idle of 1 March ends: an overlap."""
    storage = Storage(str(tmp_path / "root"))
    config = SimConfig(start=date(2025, 3, 1), vehicles=3, days=5, seed=2, provider="bmw")
    simulate_fleet(config, storage)
    run_compact(storage, now=datetime(2025, 6, 1, tzinfo=UTC), workers=1)
    vin = "WBA11FJ05PD232838"
    storage.delete(storage.day_key("compressed", date(2025, 3, 3), vin))
    run_clean(storage, workers=1)
    run_segment(storage, workers=1)

    found, expected = files_of(storage, vin), whole_series(storage, vin)
    hidden = found.filter(pl.col("offline") & (pl.col("start").dt.date() == date(2025, 3, 4)))
    assert hidden["kind"].to_list() == ["driving"]
    assert found.equals(expected)
    for end, start in itertools.pairwise(found.select("end", "start").iter_rows()):
        assert end[0] == start[1]
