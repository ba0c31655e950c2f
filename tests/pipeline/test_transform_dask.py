"""``transform clean`` and ``transform segment`` on a Dask cluster of worker processes: the
partitions travel to the workers and back, and the files are those of one local process."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bibev.pipeline.clean import run_clean
from bibev.pipeline.compact import run_compact
from bibev.pipeline.segment import run_segment
from bibev.sim.run import SimConfig, simulate_fleet
from bibev.storage import Storage

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def compacted(root: Path) -> Storage:
    storage = Storage(str(root))
    simulate_fleet(SimConfig(start=date(2025, 3, 3), vehicles=4, days=2, seed=3), storage)
    assert not run_compact(storage, now=NOW).failures
    return storage


def outputs(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for layer in ("clean", "segments")
        for path in sorted((root / layer).rglob("*.parquet"))
    }


def test_clean_and_segment_on_a_dask_cluster_write_the_files_of_one_process(tmp_path) -> None:
    from distributed import LocalCluster

    local = compacted(tmp_path / "local")
    assert not run_clean(local, now=NOW, workers=1).failures
    assert not run_segment(local, workers=1).failures

    cluster_root = compacted(tmp_path / "cluster")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        address = cluster.scheduler_address
        cleaned = run_clean(cluster_root, now=NOW, dask_address=address, batch_size=2)
        segmented = run_segment(cluster_root, dask_address=address, batch_size=2)
        prefixes = cluster.scheduler.task_prefixes.values()
        computed = sum(prefix.state_counts["memory"] for prefix in prefixes)

    assert computed == 8  # 4 batches of 2 VINs of a day, for each stage, on the cluster
    assert (cleaned.failures, segmented.failures) == ([], [])
    assert cleaned.totals()["partitions"] == segmented.totals()["partitions"] == 8
    assert segmented.totals()["sessions"] > 10
    assert outputs(tmp_path / "cluster") == outputs(tmp_path / "local")
