"""A whole day without rows inside a telemetry gap: the sessions laid in the gap may start on
it, and the day is segmented like any other, so the sessions still tile the timeline."""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from bibev.pipeline.clean import run_clean
from bibev.pipeline.compact import run_compact
from bibev.pipeline.segment import run_segment, segment_series
from bibev.sim.run import SimConfig, simulate_fleet
from bibev.storage import Storage

FIRST = date(2025, 3, 1)
DAYS = [FIRST + timedelta(days=n) for n in range(5)]
MISSING = date(2025, 3, 3)


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated car over five days whose 3 March never arrived: its clean days are 1, 2,
    4 and 5 March, with a gap of a day and a half that hid some driving."""
    root = tmp_path_factory.mktemp("gap") / "root"
    storage = Storage(str(root))
    simulate_fleet(SimConfig(start=FIRST, vehicles=1, days=5, seed=5), storage)
    (vin,) = [p.name for p in (root / "temp").iterdir()]
    shutil.rmtree(root / "temp" / vin / f"{MISSING}")
    run_compact(storage, now=datetime(2025, 6, 1, tzinfo=UTC), workers=1)
    run_clean(storage, workers=1)
    assert storage.days("clean") == [d for d in DAYS if d != MISSING]
    return root


def sessions(storage: Storage) -> pl.DataFrame:
    frames = [storage.read_parquet(key) for key in storage.list("segments")]
    return pl.concat(frames).sort("start").select(pl.col("kind").cast(pl.String), "start", "end")


def whole_series(storage: Storage) -> pl.DataFrame:
    rows = pl.concat([storage.read_parquet(key) for key in storage.list("clean")])
    found = segment_series(rows.lazy()).collect().sort("start")
    return found.select(pl.col("kind").cast(pl.String), "start", "end")


def check(storage: Storage) -> None:
    found = sessions(storage)
    assert found.equals(whole_series(storage))
    for (_, _, end), (_, start, _) in itertools.pairwise(found.iter_rows()):
        assert end == start  # they tile the timeline
    starts = found["start"].dt.date().to_list()
    assert MISSING in starts  # the case: a session laid in the gap starts on the missing day
    day_file = storage.read_parquet(storage.list(f"segments/{MISSING:%Y/%m/%d}")[0])
    assert day_file.height > 0
    assert set(day_file["day"].to_list()) == {MISSING}


def test_all_at_once(cleaned: Path, tmp_path: Path) -> None:
    shutil.copytree(cleaned, tmp_path / "root")
    storage = Storage(str(tmp_path / "root"))
    run_segment(storage, workers=1)
    check(storage)


def test_night_by_night(cleaned: Path, tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "root"))
    for day in DAYS:  # tonight's run sees the clean days up to yesterday
        folder = cleaned / "clean" / f"{day:%Y/%m/%d}"
        if folder.exists():
            shutil.copytree(folder, tmp_path / "root" / "clean" / f"{day:%Y/%m/%d}")
            run_segment(storage, workers=1, date_from=day, date_to=day)
    check(storage)


def _changed_night(storage: Storage) -> None:
    run_compact(storage, now=datetime(2025, 6, 1, tzinfo=UTC), workers=1)
    run_clean(storage, workers=1, changed=True)
    run_segment(storage, workers=1, changed=True)


@pytest.mark.parametrize(
    ("seed", "vin", "never", "late"),
    [
        # a day that arrives late inside a span an earlier idle covered
        (1, "5YJSA1E24MF150626", ["2025-03-06"], "2025-03-03"),
        # a day that arrives late after a gap where a drive was laid across midnight
        (5, "LRW3E1EB9PF878884", ["2025-03-03", "2025-03-04"], "2025-03-05"),
    ],
)
def test_a_late_day_redoes_the_days_whose_sessions_met_it(
    tmp_path: Path, seed: int, vin: str, never: list[str], late: str
) -> None:
    """`compact` then `--changed`, one vehicle's day arriving a night late: the sessions end
    as in one run over every day with that day there from the start, with no hole or
    overlap."""
    config = SimConfig(start=FIRST, vehicles=6, days=6, seed=seed)
    nightly, reference = Storage(str(tmp_path / "n")), Storage(str(tmp_path / "r"))
    for storage in (nightly, reference):
        simulate_fleet(config, storage)
        for day in never:
            shutil.rmtree(Path(storage.url) / "temp" / vin / day)
    held = tmp_path / "held"
    shutil.move(Path(nightly.url) / "temp" / vin / late, held)
    _changed_night(nightly)
    (Path(nightly.url) / "temp" / vin).mkdir(parents=True, exist_ok=True)
    shutil.move(held, Path(nightly.url) / "temp" / vin / late)
    _changed_night(nightly)

    run_compact(reference, now=datetime(2025, 6, 1, tzinfo=UTC), workers=1)
    run_clean(reference, workers=1)
    run_segment(reference, workers=1)
    keys = reference.list("segments")
    assert keys
    assert nightly.list("segments") == keys
    assert [nightly.read_bytes(k) for k in keys] == [reference.read_bytes(k) for k in keys]
    assert nightly.list("changes") == []
