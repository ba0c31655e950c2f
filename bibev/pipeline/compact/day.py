"""Compact (VIN, day) partitions: the I/O shell around the pure steps.

Partitions are compacted a few at a time, so that the fixed cost of one vectorised pass is
shared; memory stays bounded by ``CHUNK_BYTES`` of input (or one partition, if larger). For each
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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from bibev.errors import BibevError
from bibev.schema import COMPRESSED_SCHEMA
from bibev.storage import Storage

from .failpoints import crash_point
from .flatten import FlatBatch, flatten_files
from .generic import Adapters
from .locking import lock_name, take_lock
from .merge import compact_frames, conform
from .outputs import SourceFile, delete_inputs, quarantine_records, reroutes, write_quarantine
from .parquet import encode, write_verified
from .route import split_by_day

logger = logging.getLogger(__name__)

Partition = tuple[str, date]
CHUNK_BYTES = 32 * 1024 * 1024
_EMPTY = pl.DataFrame(schema=COMPRESSED_SCHEMA)
_READ_THREADS = 8


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


@dataclass
class _Input:
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
) -> list[Outcome]:
    """Compact each (VIN, day) of ``partitions``; one outcome per partition, in order."""
    outcomes: dict[Partition, Outcome] = {}
    pending = sorted(set(partitions), key=lambda p: (p[1], p[0]))
    while pending:
        with ExitStack() as stack:
            chunk: list[_Input] = []
            while pending and sum(item.size for item in chunk) < CHUNK_BYTES:
                vin, day = pending.pop(0)
                try:
                    take_lock(stack, storage, lock_name(vin, day), wait=lock_wait)
                    keys = storage.temp_files(day, [vin]).get(vin, [])
                    chunk.append(_Input(vin, day, keys, _read_all(storage, keys)))
                except BibevError as exc:
                    outcomes[(vin, day)] = Outcome((vin, day), error=exc)
            crash_point("after-lock")
            for outcome in _compact_chunk(storage, chunk, adapters):
                outcomes[outcome.partition] = outcome
    return [outcomes[p] for p in partitions]


def _compact_chunk(storage: Storage, chunk: list[_Input], adapters: Adapters) -> list[Outcome]:
    work = [item for item in chunk if item.keys]
    done = [Outcome((i.vin, i.day), CompactResult(i.vin, i.day)) for i in chunk if not i.keys]
    if not work:
        return done
    sources = [SourceFile(key, item.vin, item.day) for item in work for key in item.keys]
    owner = [n for n, item in enumerate(work) for _ in item.keys]
    files = [data for item in work for data in item.files]
    try:
        batch = flatten_files(files, [source.vin for source in sources], adapters=adapters)
    except BibevError as exc:
        return done + [Outcome((item.vin, item.day), error=exc) for item in work]
    folder_day = batch.per_line("folder_day", [source.day for source in sources], pl.Date())
    split = split_by_day(batch.rows.with_columns(folder_day.gather(batch.rows.get_column("line"))))
    failed: dict[int, BaseException] = {}
    moved = reroutes(sources, batch, split.reroute)
    for file_index, targets in moved.items():
        for target, name, body in targets:
            source = sources[file_index]
            _guarded(
                failed,
                owner[file_index],
                storage.write_bytes,
                storage.temp_key(source.vin, target, name),
                body,
            )
    crash_point("after-reroute")
    for file_index, records in quarantine_records(sources, batch).items():
        _guarded(failed, owner[file_index], write_quarantine, storage, sources[file_index], records)
    crash_point("after-quarantine")
    facts = _Facts(work, sources, owner, batch, moved)
    return done + _merge_and_finish(storage, facts, split.rows, failed)


def _guarded(failed: dict[int, BaseException], owner: int, step: Callable, *args: object) -> None:
    """Run ``step(*args)`` for partition ``owner`` unless it has failed; record a failure."""
    if owner in failed:
        return
    try:
        step(*args)
    except BibevError as exc:
        failed[owner] = exc


@dataclass(frozen=True)
class _Facts:
    """What the chunk read, to count per partition."""

    work: list[_Input]
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


def _read_existing(storage: Storage, key: str) -> pl.DataFrame | None:
    return conform(storage.read_parquet(key)) if storage.exists(key) else None


def _merge_and_finish(
    storage: Storage, facts: _Facts, new: pl.DataFrame, failed: dict[int, BaseException]
) -> list[Outcome]:
    """Merge every live partition with its existing day in one pass, then write each one and
    delete its inputs."""
    existing: dict[int, pl.DataFrame | None] = {}
    for n, item in enumerate(facts.work):
        if n in failed:
            continue
        try:
            existing[n] = _read_existing(storage, storage.day_key("compressed", item.day, item.vin))
        except BibevError as exc:
            failed[n] = exc
    old = [frame for frame in existing.values() if frame is not None]
    merged = compact_frames(pl.concat(old) if old else None, new)
    day = pl.col("ts").dt.date().alias("day")
    parts = merged.with_columns(day).partition_by("vin", "day", as_dict=True)
    counts = {(v, d): c for v, d, c in new.group_by("vin", day).len().iter_rows()}
    outcomes = []
    for n, item in enumerate(facts.work):
        partition = (item.vin, item.day)
        if n in failed:
            outcomes.append(Outcome(partition, error=failed[n]))
            continue
        frame = parts[partition].drop("day") if partition in parts else _EMPTY
        try:
            bytes_out = _write_day(storage, item, frame, existing.get(n))
            crash_point("after-write")
            delete_inputs(storage, item.keys)
            crash_point("after-delete")
        except BibevError as exc:
            outcomes.append(Outcome(partition, error=exc))
            continue
        before = 0 if existing.get(n) is None else existing[n].height  # type: ignore[union-attr]
        rows_in = counts.get(partition, 0)
        result = facts.result(
            n,
            rows_in=rows_in,
            rows_existing=before,
            rows_out=frame.height,
            duplicates=before + rows_in - frame.height,
            bytes_out=bytes_out,
            written=bytes_out > 0,
            existing=existing.get(n) is not None,
        )
        logger.info(
            "compacted %s %s: %d files, %d rows in, %d rows out, %d quarantined, %d rerouted",
            item.vin,
            item.day,
            result.files,
            result.rows_in,
            result.rows_out,
            result.quarantined,
            result.rerouted,
        )
        outcomes.append(Outcome(partition, result))
    return outcomes


def _write_day(
    storage: Storage, item: _Input, frame: pl.DataFrame, existing: pl.DataFrame | None
) -> int:
    """Write the merged day unless nothing changed; returns the bytes written."""
    if frame.height == 0 and existing is None:
        return 0
    if existing is not None and frame.equals(existing):
        return 0
    data = encode(frame)
    write_verified(storage, storage.day_key("compressed", item.day, item.vin), data, frame.height)
    return len(data)


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
