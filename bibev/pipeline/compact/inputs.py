"""Opening the partitions of a chunk: lock, list and read each (VIN, day), several at once.

Each lock is registered with the chunk's ``ExitStack`` as soon as it is known to be held, so the
chunk releases every lock it took (all at once, on the I/O threads), whatever happened to the
other partitions. The keys are listed under the lock: exactly those files are read, and later
deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import date
from functools import partial
from types import TracebackType

from bibev.errors import BibevError
from bibev.storage import Storage

from .locking import hold_lock, lock_name
from .threads import io_threads, run_all

logger = logging.getLogger(__name__)

Partition = tuple[str, date]

# The input JSON of one chunk (plus at most ``io_threads - 1`` more partitions): enough to share
# the fixed cost of one vectorised pass over many small files, small enough that a batch has
# several chunks to pipeline (a worker holds two at a time).
CHUNK_BYTES = 8 * 1024 * 1024
_READ_THREADS = 8


@dataclass
class Input:
    """A locked partition: its temp keys (listed under the lock) and their content."""

    vin: str
    day: date
    keys: list[str]
    files: list[bytes]

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files)


def _read_all(storage: Storage, keys: Sequence[str]) -> list[bytes]:
    if storage.protocol != "s3" or len(keys) < 2:
        return [storage.read_bytes(key) for key in keys]
    # Object stores answer one request at a time slowly but many at once well.
    with ThreadPoolExecutor(min(_READ_THREADS, len(keys))) as pool:
        return list(pool.map(storage.read_bytes, keys))


def _open(
    storage: Storage, partition: Partition, wait: float
) -> tuple[AbstractContextManager[None] | None, Input | Exception]:
    """Lock, list and read one partition: (the lock if held, the input or what went wrong)."""
    vin, day = partition
    try:
        lock = hold_lock(storage, lock_name(vin, day), wait=wait)
    except Exception as exc:
        return None, exc
    try:
        keys = storage.temp_files(day, [vin]).get(vin, [])
        return lock, Input(vin, day, keys, _read_all(storage, keys))
    except Exception as exc:
        return lock, exc


def _release(
    pool: Executor,
    locks: Sequence[AbstractContextManager[None]],
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    traceback: TracebackType | None,
) -> bool:
    """Release every lock, all at once on the I/O threads (each is a read and a delete). A lock
    that cannot be released is raised, unless the chunk is already failing: then it is logged
    (as ``Storage.lock`` does), so that the original failure is the one reported."""
    released = run_all(pool, [partial(lock.__exit__, None, None, None) for lock in locks])
    errors = [result for result in released if isinstance(result, Exception)]
    if errors and exc is None:
        raise errors[0]
    for error in errors:
        logger.error("%s", error)
    return False


def open_chunk(
    pool: Executor, stack: ExitStack, storage: Storage, pending: list[Partition], *, wait: float
) -> tuple[list[Input], dict[Partition, BibevError]]:
    """Open partitions from the front of ``pending`` (taking them off it) until the chunk holds
    ``CHUNK_BYTES``; their locks are released when ``stack`` closes. Returns the inputs in
    order, and the partitions that could not be opened (locked by another run, unreadable)."""
    chunk: list[Input] = []
    failed: dict[Partition, BibevError] = {}
    held: list[AbstractContextManager[None]] = []
    stack.push(partial(_release, pool, held))
    size = 0
    while pending and size < CHUNK_BYTES:
        wave = [pending.pop(0) for _ in range(min(io_threads(storage), len(pending)))]
        opened = run_all(pool, [partial(_open, storage, p, wait) for p in wave])
        unexpected: Exception | None = None
        for partition, result in zip(wave, opened, strict=True):
            lock, item = (None, result) if isinstance(result, Exception) else result
            if lock is not None:
                held.append(lock)
            if isinstance(item, Input):
                chunk.append(item)
                size += item.size
            elif isinstance(item, BibevError):
                failed[partition] = item
            else:  # a bug, not a storage failure: raised once every lock is registered
                unexpected = unexpected or item
        if unexpected is not None:
            raise unexpected
    return chunk, failed
