"""The I/O threads of a compaction.

Much of compacting many small partitions is waiting for storage: a lock is a durable write, a
compressed file is fsynced before its inputs may go, and on S3 every listing, read and write is
a round trip. Pools of threads in each worker process wait for several partitions at once. The
CPU work they do besides (Parquet encoding) runs in native code that releases the GIL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from typing import TypeVar

from bibev.storage import Storage

T = TypeVar("T")

# Threads of a pool. On a local disk a few hide the waits (fsync, rename) behind the work of the
# others (more only add memory and switching: 4 were as fast as 8 on the medium bench); an object
# store answers each request slowly, but many at once well.
LOCAL_THREADS = 4
REMOTE_THREADS = 16


def io_threads(storage: Storage) -> int:
    """How many partitions of ``storage`` to lock, read or write at once."""
    return LOCAL_THREADS if storage.protocol in ("file", "memory") else REMOTE_THREADS


def io_pool(storage: Storage) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(io_threads(storage), thread_name_prefix="bibev-compact-io")


def run_all(pool: Executor, calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
    """Run every call in ``pool`` and wait for all of them; a call's exception is its result.

    Waiting for every call, rather than stopping at the first failure, means that nothing is
    still being written for a partition when the caller goes on (and releases its lock)."""
    futures = [pool.submit(call) for call in calls]
    wait(futures)
    results: list[T | Exception] = []
    for future in futures:
        error = future.exception()
        if error is None:
            results.append(future.result())
        elif isinstance(error, Exception):
            results.append(error)
        else:  # KeyboardInterrupt, SystemExit: not a partition's failure
            raise error
    return results
