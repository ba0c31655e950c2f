"""Compact (VIN, day) partitions: the I/O shell around the pure steps.

Partitions are compacted a few at a time, so that the fixed cost of one vectorised pass is
shared; memory stays bounded by ``CHUNK_BYTES`` of input (plus a few partitions). For each
chunk, under the lock of every partition in it, in this order (each step idempotent, so a crash
anywhere is repaired by running again):

1. read every temp file of each partition and flatten them all;
2. write the lines holding rows of other days into those days' temp folders (``route``);
3. write unreadable lines, with the reason, to ``quarantine/compact/``;
4. merge each day's rows with its existing compressed file, write it atomically, read it back;
5. delete exactly the temp files of that partition read in step 1.

Nothing is deleted before what replaces it is durable. Every file written in steps 2-4 has a
name derived from its input, so a re-run writes the same files again instead of new ones, and
the exact deduplication of the merge absorbs rows that were already compacted. A partition that
fails (locked, unreadable storage) fails alone; the others of its chunk carry on.

The storage work of steps 1-3 (locks, listings, reads, writes) runs on a pool of I/O threads,
every partition of the chunk at once, and each step waits for all of it before the next one
begins. Steps 4 (the write) and 5 run on a second pool, per partition and in that order, while
the next chunk goes through steps 1-4 (its merge): a chunk keeps its locks until all of its
files are written and its inputs deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from functools import partial

import polars as pl

from bibev.errors import BibevError
from bibev.storage import Storage

from .failpoints import crash_point
from .finish import Writing, Written, merge_and_write
from .flatten import FlatBatch, flatten_files
from .generic import Adapters
from .inputs import Input, open_chunk
from .outputs import SourceFile, quarantine_records, reroutes, write_quarantine
from .route import split_by_day
from .threads import io_pool, run_all

logger = logging.getLogger(__name__)

Partition = tuple[str, date]


@dataclass(frozen=True)
class CompactResult:
    """What compacting one (VIN, day) did (or, with ``dry_run``, would do)."""

    vin: str
    day: date
    files: int = 0
    messages: int = 0
    rows_in: int = 0
    rows_existing: int = 0
    rows_out: int = 0
    duplicates: int = 0
    quarantined: int = 0
    rerouted: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    written: bool = False
    existing: bool = False
    dry_run: bool = False
    rerouted_to: tuple[date, ...] = field(default=())


@dataclass(frozen=True)
class Outcome:
    """A partition's result, or the error that stopped it."""

    partition: Partition
    result: CompactResult | None = None
    error: BaseException | None = None


def plan_partition(storage: Storage, vin: str, day: date) -> CompactResult:
    """What compacting (``vin``, ``day``) would read, without reading, writing or locking."""
    keys = storage.temp_files(day, [vin]).get(vin, [])
    return CompactResult(
        vin,
        day,
        files=len(keys),
        bytes_in=sum(storage.size(key) for key in keys),
        existing=storage.exists(storage.day_key("compressed", day, vin)),
        dry_run=True,
    )


def compact_partitions(
    storage: Storage,
    partitions: Sequence[Partition],
    *,
    adapters: Adapters,
    lock_wait: float = 0.0,
    on_progress: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """Compact each (VIN, day) of ``partitions``; one outcome per partition, in order.

    While the files of one chunk are written, the next chunk is read and flattened (two chunks
    at most: each holds its locks until its last file is written and its inputs deleted).
    ``on_progress`` is told how many partitions are done after each chunk."""
    outcomes: dict[Partition, Outcome] = {}
    pending = sorted(set(partitions), key=lambda p: (p[1], p[0]))

    def finish(chunk: _Writing) -> None:
        outcomes.update((o.partition, o) for o in chunk.close())
        if on_progress is not None:
            on_progress(len(outcomes))

    with io_pool(storage) as pool, io_pool(storage) as writers:
        writing: list[_Writing] = []
        try:
            while pending:
                writing.append(_start_chunk(pool, writers, storage, pending, adapters, lock_wait))
                if len(writing) > 1:
                    finish(writing.pop(0))
            while writing:
                finish(writing.pop(0))
        finally:
            for chunk in writing:  # after a failure: wait for its writes, release its locks
                chunk.stack.close()
    return [outcomes[p] for p in partitions]


@dataclass
class _Writing:
    """A chunk whose files are being written, and the locks it holds until they are."""

    stack: ExitStack
    done: list[Outcome]
    facts: _Facts | None = None
    writing: Writing | None = None
    failed: dict[int, BaseException] = field(default_factory=dict)

    def close(self) -> list[Outcome]:
        """Wait for the writes, release the locks; one outcome per partition of the chunk."""
        with self.stack:
            if self.facts is None or self.writing is None:
                return self.done
            written = self.writing.collect()
            work = range(len(self.facts.work))
            return self.done + [
                _outcome(self.facts, n, written.get(n), self.failed.get(n)) for n in work
            ]


def _start_chunk(
    pool: Executor,
    writers: Executor,
    storage: Storage,
    pending: list[Partition],
    adapters: Adapters,
    lock_wait: float,
) -> _Writing:
    """Open the next chunk of ``pending``, compact it and start writing it."""
    with ExitStack() as stack:
        chunk, failed = open_chunk(pool, stack, storage, pending, wait=lock_wait)
        done = [Outcome(partition, error=error) for partition, error in failed.items()]
        crash_point("after-lock")
        started = _compact_chunk(pool, writers, storage, chunk, adapters)
        started.done[:0] = done
        if started.writing is not None:
            stack.callback(started.writing.wait)  # before the locks are released
        started.stack = stack.pop_all()
        return started


def _compact_chunk(
    pool: Executor, writers: Executor, storage: Storage, chunk: list[Input], adapters: Adapters
) -> _Writing:
    work = [item for item in chunk if item.keys]
    done = [Outcome((i.vin, i.day), CompactResult(i.vin, i.day)) for i in chunk if not i.keys]
    if not work:
        return _Writing(ExitStack(), done)
    sources = [SourceFile(key, item.vin, item.day) for item in work for key in item.keys]
    owner = [n for n, item in enumerate(work) for _ in item.keys]
    files = [data for item in work for data in item.files]
    try:
        batch = flatten_files(files, [source.vin for source in sources], adapters=adapters)
    except BibevError as exc:
        return _Writing(ExitStack(), done + [Outcome((i.vin, i.day), error=exc) for i in work])
    folder_day = batch.per_line("folder_day", [source.day for source in sources], pl.Date())
    split = split_by_day(batch.rows.with_columns(folder_day.gather(batch.rows.get_column("line"))))
    failed: dict[int, BaseException] = {}
    moved = reroutes(sources, batch, split.reroute)
    writes = [
        (
            owner[f],
            partial(storage.write_bytes, storage.temp_key(sources[f].vin, target, name), body),
        )
        for f, targets in moved.items()
        for target, name, body in targets
    ]
    _run_guarded(pool, failed, writes)
    crash_point("after-reroute")
    quarantine = [
        (owner[f], partial(write_quarantine, storage, sources[f], records))
        for f, records in quarantine_records(sources, batch).items()
    ]
    _run_guarded(pool, failed, quarantine)
    crash_point("after-quarantine")
    facts = _Facts(work, sources, owner, batch, moved)
    writing = merge_and_write(pool, writers, storage, work, split.rows, failed)
    return _Writing(ExitStack(), done, facts, writing, failed)


def _run_guarded(
    pool: Executor,
    failed: dict[int, BaseException],
    steps: Sequence[tuple[int, Callable[[], object]]],
) -> None:
    """Run each (partition, step) whose partition has not failed, all at once; record the
    partitions whose step failed (``BibevError``; anything else is a bug and is raised)."""
    live = [(owner, step) for owner, step in steps if owner not in failed]
    results = run_all(pool, [step for _, step in live])
    for (owner, _), result in zip(live, results, strict=True):
        if isinstance(result, BibevError):
            failed.setdefault(owner, result)
        elif isinstance(result, Exception):
            raise result


@dataclass(frozen=True)
class _Facts:
    """What the chunk read, to count per partition."""

    work: list[Input]
    sources: list[SourceFile]
    owner: list[int]
    batch: FlatBatch
    moved: dict[int, list[tuple[date, str, bytes]]]

    def result(self, n: int, **counts: object) -> CompactResult:
        item = self.work[n]
        mine = [f for f, o in enumerate(self.owner) if o == n]
        ends = [*self.batch.starts[1:], len(self.batch.lines)]
        quarantined = sum(
            1 for q in self.batch.quarantined if self.owner[self.batch.file_of(q.line)] == n
        )
        moved = [(target, body) for f in mine for target, _, body in self.moved.get(f, [])]
        return CompactResult(
            item.vin,
            item.day,
            files=len(item.keys),
            messages=sum(ends[f] - self.batch.starts[f] for f in mine),
            quarantined=quarantined,
            rerouted=sum(body.count(b"\n") for _, body in moved),
            bytes_in=item.size,
            rerouted_to=tuple(sorted({target for target, _ in moved})),
            **counts,  # type: ignore[arg-type]
        )


def _outcome(
    facts: _Facts, n: int, written: Written | BibevError | None, error: BaseException | None
) -> Outcome:
    item = facts.work[n]
    partition = (item.vin, item.day)
    if error is not None:
        return Outcome(partition, error=error)
    if not isinstance(written, Written):
        return Outcome(partition, error=written or BibevError("partition was not finished"))
    result = facts.result(
        n,
        rows_in=written.rows_in,
        rows_existing=written.rows_existing,
        rows_out=written.rows_out,
        duplicates=written.rows_existing + written.rows_in - written.rows_out,
        bytes_out=written.bytes_out,
        written=written.bytes_out > 0,
        existing=written.existing,
    )
    # A routine partition is a DEBUG line (-v); one that quarantined or rerouted is INFO.
    logger.log(
        logging.INFO if result.quarantined or result.rerouted else logging.DEBUG,
        "compacted %s %s: %d files, %d rows in, %d rows out, %d quarantined, %d rerouted",
        item.vin,
        item.day,
        result.files,
        result.rows_in,
        result.rows_out,
        result.quarantined,
        result.rerouted,
    )
    return Outcome(partition, result)


def compact_day(
    storage: Storage, vin: str, day: date, *, adapters: Adapters, lock_wait: float = 0.0
) -> CompactResult:
    """Compact the temp files of ``vin`` for ``day`` into ``compressed/YYYY/MM/DD/{VIN}.parquet``
    (raises what stopped it: ``LockedError``, ``StorageError``, …)."""
    [outcome] = compact_partitions(storage, [(vin, day)], adapters=adapters, lock_wait=lock_wait)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.result is not None
    return outcome.result
