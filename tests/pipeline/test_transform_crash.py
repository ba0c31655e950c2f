"""Crash safety of ``bibev transform all``: the command is killed with SIGKILL three times, at
points inside cleaning and inside segmenting, and run again each time; the files and database
rows it leaves in the end are those of a run that was never killed."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from bibev.db import open_database
from bibev.db.quality import clean_quality_rows
from bibev.db.segments import load_segments
from bibev.pipeline.changes import RUNNING_STALE, pending
from bibev.pipeline.compact import run_compact
from bibev.sim.run import SimConfig, simulate_fleet
from bibev.storage import Storage

FIRST_DAY = date(2025, 3, 3)
NOW = datetime(2025, 6, 1, tzinfo=UTC)
OUTPUTS = ("clean", "segments")


def command(root: Path, *extra: str) -> list[str]:
    """``transform all`` in its own process, one (VIN, day) per query: many small steps, so
    that a kill lands between some of them."""
    database = f"sqlite:///{root / 'bibev.db'}"
    argv = [sys.executable, "-m", "bibev", "--root", str(root), "--database-url", database]
    options = ["--workers", "1", "--batch-size", "1", *extra]
    return [*argv, "--no-progress", "transform", "all", *options]


def files(root: Path, stage: str) -> list[Path]:
    return sorted((root / stage).rglob("*.parquet"))


def snapshot(root: Path) -> dict[str, Any]:
    """Every output file's bytes, and the database rows the stages keep."""
    found = {str(p.relative_to(root)): p.read_bytes() for s in OUTPUTS for p in files(root, s)}
    engine = open_database(f"sqlite:///{root / 'bibev.db'}")
    try:
        return {
            "files": found,
            "segments": load_segments(engine),
            # when each record was written is the only thing that may differ
            "quality": [
                {k: v for k, v in row.items() if k != "cleaned_at"}
                for row in clean_quality_rows(engine)
            ],
        }
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def compacted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six simulated vehicles over four days, every mess on, compacted."""
    root = tmp_path_factory.mktemp("compacted") / "root"
    storage = Storage(str(root))
    config = SimConfig(start=FIRST_DAY, vehicles=6, days=4, seed=11)
    simulate_fleet(config, storage)
    run_compact(storage, now=NOW, workers=1)
    shutil.rmtree(root / "temp", ignore_errors=True)
    assert storage.list("changes/compressed")  # compact's notes, for --changed
    return root


@pytest.fixture(scope="module")
def uninterrupted(compacted: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("reference") / "root"
    shutil.copytree(compacted, root)
    subprocess.run(command(root), check=True, capture_output=True, timeout=300)
    result = snapshot(root)
    assert len(result["files"]) == 2 * len(files(root, "compressed")) > 0
    assert result["segments"]
    assert len(result["quality"]) == len(files(root, "clean"))
    return result


def killed_when(root: Path, ready: Callable[[], bool], jitter: float, *extra: str) -> None:
    """Start the command, SIGKILL it ``jitter`` seconds after ``ready()`` holds; it must still
    be running then (the kill lands inside the work, not after it)."""
    process = subprocess.Popen(
        command(root, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert process.poll() is None, "the command ended before the kill point"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(jitter)
        assert process.poll() is None, "the command ended before the kill"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    ("seed", "extra"),
    [(1, ()), (2, ()), (3, ("--changed",))],
    ids=["every-day-1", "every-day-2", "changed"],
)
def test_three_kills_then_a_run_leave_what_an_uninterrupted_run_leaves(
    seed: int,
    extra: tuple[str, ...],
    compacted: Path,
    uninterrupted: dict[str, Any],
    tmp_path: Path,
) -> None:
    """With ``--changed``, the days come from the notes compact left: each killed run leaves
    them (and clean's notes of what it wrote) for the next one."""
    rng = random.Random(seed)
    root = tmp_path / "root"
    shutil.copytree(compacted, root)
    total = len(files(root, "compressed"))

    def written(stage: str, count: int) -> Callable[[], bool]:
        return lambda: len(files(root, stage)) >= count

    # inside cleaning; inside segmenting; later inside segmenting
    killed_when(root, written("clean", rng.randint(1, total // 2)), rng.uniform(0, 0.01), *extra)
    killed_when(root, written("segments", rng.randint(1, total // 3)), rng.uniform(0, 0.01), *extra)
    later = rng.randint(total // 2, total - 4)
    killed_when(root, written("segments", later), rng.uniform(0, 0.01), *extra)
    assert len(files(root, "segments")) < total

    done = subprocess.run(command(root, *extra), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert snapshot(root) == uninterrupted

    # Every note is done but the killed runs' own, left to them for an hour; once that old,
    # the next run takes them as a dead writer's, redoes what they name and removes them.
    storage = Storage(str(root))
    left = [n for layer in ("compressed", "clean") for n in pending(storage, layer).notes]
    assert left
    assert all(n.running for n in left)
    for item in left:
        aged = item.written_at - RUNNING_STALE
        name = f"{aged:%Y%m%dT%H%M%S%fZ}-{item.key.rsplit('-', 2)[-2]}-running.json"
        storage.write_bytes(item.key.rsplit("/", 1)[0] + "/" + name, storage.read_bytes(item.key))
        storage.delete(item.key)
    done = subprocess.run(command(root, *extra), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert snapshot(root) == uninterrupted
    assert not (root / "changes").exists()
