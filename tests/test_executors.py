import os

import pytest

from bibev.errors import StorageError
from bibev.executors import PartitionResult, default_workers, run_partitions


def square_or_fail(n: int) -> int:
    if n == 3:
        raise StorageError("disk full on partition 3")
    if n == 4:
        raise ValueError("bug on 4")
    return n * n


def pid_of(_: int) -> int:
    return os.getpid()


def test_inline_results_in_order_and_failures_isolated():
    progress = []
    results = run_partitions(
        square_or_fail, [5, 3, 1, 4], workers=1, on_progress=lambda d, t: progress.append((d, t))
    )
    assert [r.partition for r in results] == [5, 3, 1, 4]
    assert [r.value for r in results] == [25, None, 1, None]
    assert results[1].error == "StorageError: disk full on partition 3"
    assert results[3].error == "unexpected ValueError: bug on 4"
    assert progress[0] == (0, 4)
    assert progress[-1] == (4, 4)


def test_process_pool_runs_in_other_processes():
    results = run_partitions(pid_of, list(range(4)), workers=2)
    assert all(r.ok for r in results)
    assert os.getpid() not in {r.value for r in results}
    results = run_partitions(square_or_fail, [1, 2, 3], workers=2)
    assert [r.value for r in results] == [1, 4, None]
    assert not results[2].ok


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 1), (3, 1), (8, 4), (64, 32)])
def test_default_workers_is_half_the_usable_cores(monkeypatch, cores, workers):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert default_workers() == workers


def test_empty_partitions():
    assert run_partitions(square_or_fail, [], workers=2) == []


@pytest.fixture(scope="module")
def dask_address():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def test_dask_cluster_gives_the_same_results(dask_address):
    results = run_partitions(square_or_fail, [5, 3, 1, 4], dask_address=dask_address)
    assert results == [
        PartitionResult(5, 25),
        PartitionResult(3, error="StorageError: disk full on partition 3"),
        PartitionResult(1, 1),
        PartitionResult(4, error="unexpected ValueError: bug on 4"),
    ]
