"""Run one function over many partitions: inline, in a local process pool, or on Dask.

A partition is one unit of work, usually a (VIN, day). A failure in one partition never stops
the others: each result says whether its partition succeeded, and the stage decides whether the
run is a partial success. Memory is bounded by what one partition needs, times the workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import traceback
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bibev.errors import BibevError, ConfigError
from bibev.worker_logs import forwarded_logs

logger = logging.getLogger(__name__)

P = TypeVar("P", bound=Hashable)
OnProgress = Callable[[int, int], None]

# How long a Dask client tries to reach its scheduler before the run gives up.
DASK_CONNECT_TIMEOUT = "10s"


@dataclass(frozen=True)
class PartitionResult(Generic[P]):
    partition: P
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _call(func: Callable[[P], Any], partition: P) -> PartitionResult[P]:
    """Run one partition and turn any failure into a result (pickles across processes)."""
    try:
        return PartitionResult(partition, func(partition))
    except BibevError as exc:
        return PartitionResult(partition, error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        logger.debug("partition %s failed:\n%s", partition, traceback.format_exc())
        return PartitionResult(partition, error=f"unexpected {type(exc).__name__}: {exc}")


def default_workers() -> int:
    """Worker processes when none are asked for: half the cores this process may use, at least
    one. polars and pyarrow already spread one process's work over every core, and a worker
    process spends about a second importing them before its first partition: on 2 cores, one
    process ran ``compact`` about 2x and ``transform clean``/``segment`` 2 to 4x faster than two
    (docs/configuration.md), so a 2-core machine works in-process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // 2)


def run_partitions(
    func: Callable[[P], Any],
    partitions: Sequence[P],
    *,
    workers: int | None = None,
    dask_address: str | None = None,
    on_progress: OnProgress | None = None,
) -> list[PartitionResult[P]]:
    """Run ``func`` on every partition; results come back in the order of ``partitions``.

    ``func`` must be a module-level function (it is pickled to the workers). ``workers=1`` runs
    inline in this process, which is also what happens for a single partition.
    """
    total = len(partitions)
    progress = on_progress or (lambda done, total: None)
    progress(0, total)
    if dask_address:
        results = _run_dask(func, partitions, dask_address, progress)
    elif total <= 1 or (workers or default_workers()) == 1:
        results = []
        for done, partition in enumerate(partitions, start=1):
            results.append(_call(func, partition))
            progress(done, total)
    else:
        results = _run_pool(func, partitions, workers or default_workers(), progress)
    order = {p: i for i, p in enumerate(partitions)}
    return sorted(results, key=lambda r: order[r.partition])


def _run_pool(
    func: Callable[[P], Any], partitions: Sequence[P], workers: int, progress: OnProgress
) -> list[PartitionResult[P]]:
    # spawn, not fork: polars and pyarrow thread pools do not survive a fork safely
    context = multiprocessing.get_context("spawn")
    results: list[PartitionResult[P]] = []
    with (
        forwarded_logs(context) as (initializer, initargs),
        ProcessPoolExecutor(
            max_workers=min(workers, len(partitions)),
            mp_context=context,
            initializer=initializer,
            initargs=initargs,
        ) as pool,
    ):
        futures = {pool.submit(_call, func, p): p for p in partitions}
        for future in as_completed(futures):
            try:
                results.append(future.result())
            except Exception as exc:  # the worker process itself died
                results.append(PartitionResult(futures[future], error=f"worker died: {exc}"))
            progress(len(results), len(partitions))
    return results


def _run_dask(
    func: Callable[[P], Any], partitions: Sequence[P], address: str, progress: OnProgress
) -> list[PartitionResult[P]]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError as exc:
        raise ConfigError("--dask needs the dask extra: pip install 'bibev[dask]'") from exc
    check_dask_address(address)
    try:
        client = Client(address, timeout=DASK_CONNECT_TIMEOUT)
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
    results: list[PartitionResult[P]] = []
    with client:
        futures = client.map(_call, [func] * len(partitions), partitions, pure=False)
        by_key = {f.key: p for f, p in zip(futures, partitions, strict=True)}
        for future in dask_completed(futures):
            try:
                results.append(future.result())
            except Exception as exc:
                results.append(
                    PartitionResult(by_key[future.key], error=f"dask task failed: {exc}")
                )
            progress(len(results), len(partitions))
    return results


def check_dask_address(address: str) -> None:
    """A malformed scheduler address is a ``ConfigError`` before any connection is tried
    (distributed itself raises a bare ``ValueError``, or waits out its timeout). Schemes without
    a host and port (``inproc://`` of an in-process cluster) are left to distributed."""
    from distributed.comm.addressing import parse_address
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)
        host, port = get_backend(scheme).get_address_host_port(location)
    except NotImplementedError:
        return
    except ValueError as exc:  # "invalid literal for int()" when the port is not a number
        reason = "its port is not a number" if "int()" in str(exc) else str(exc)
    else:
        if host and 1 <= port <= 65535:
            return
        reason = "it needs a host and a port between 1 and 65535"
    raise ConfigError(f"{address!r} is not a Dask scheduler address ([tcp://]HOST:PORT): {reason}")
