import logging
import os
import warnings

import pytest

from bibev import executors
from bibev.cli.logs import SecretFilter
from bibev.errors import ConfigError, StorageError
from bibev.executors import PartitionResult, default_workers, run_partitions


def square_or_fail(n: int) -> int:
    if n == 3:
        raise StorageError("disk full on partition 3")
    if n == 4:
        raise ValueError("bug on 4")
    return n * n


def pid_of(_: int) -> int:
    return os.getpid()


def log_in_worker(n: int) -> int:
    log = logging.getLogger("bibev.tests.worker")
    log.debug("partition %d: detail", n)
    log.info("partition %d in pid %d with token s3cr3t-token", n, os.getpid())
    if n == 2:
        warnings.warn("partition 2 looks odd", UserWarning, stacklevel=1)
    return os.getpid()


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def bibev_handler():
    """A handler of the ``bibev`` logger at INFO, masking one secret, as the CLI sets one up."""
    handler = Collect()
    handler.addFilter(SecretFilter(["s3cr3t-token"]))
    bibev, warned = logging.getLogger("bibev"), logging.getLogger("py.warnings")
    saved = [(log, log.handlers[:], log.level, log.propagate) for log in (bibev, warned)]
    for log in (bibev, warned):
        log.handlers[:] = [handler]
        log.setLevel(logging.INFO)
        log.propagate = False
    yield handler
    for log, handlers, level, propagate in saved:
        log.handlers[:], log.level, log.propagate = handlers, level, propagate


def test_worker_logs_reach_the_parents_handlers(bibev_handler):
    results = run_partitions(log_in_worker, [1, 2, 3], workers=2)
    pids = {r.value for r in results}
    assert os.getpid() not in pids
    lines = sorted(r.getMessage() for r in bibev_handler.records if r.name == "bibev.tests.worker")
    assert [line.split(" in pid")[0] for line in lines] == [f"partition {n}" for n in (1, 2, 3)]
    assert {int(line.split()[4]) for line in lines} == pids  # written by the workers
    assert all(line.endswith("with token ***") for line in lines)  # masked by the parent
    assert not any("detail" in r.getMessage() for r in bibev_handler.records)  # below INFO
    warned = [r.getMessage() for r in bibev_handler.records if r.name == "py.warnings"]
    assert len(warned) == 1
    assert "partition 2 looks odd" in warned[0]


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


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("notanaddress", "missing port number"),
        ("tcp://scheduler", "missing port number"),
        ("scheduler:notaport", "its port is not a number"),
        ("foo://scheduler:8786", "unknown address scheme 'foo'"),
        ("tcp://:8786", "a host and a port between 1 and 65535"),
        ("scheduler:99999", "a host and a port between 1 and 65535"),
    ],
)
def test_a_malformed_dask_address_is_a_config_error(address, reason):
    pytest.importorskip("distributed")
    with pytest.raises(ConfigError, match="is not a Dask scheduler address") as info:
        run_partitions(square_or_fail, [1, 2], dask_address=address)
    assert reason in str(info.value)


def test_an_unreachable_dask_scheduler_is_a_config_error(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(executors, "DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at "):
        run_partitions(square_or_fail, [1, 2], dask_address="tcp://127.0.0.1:1")
