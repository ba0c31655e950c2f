"""The last steps of a chunk: merge each day with its compressed file, write it, delete inputs.

The merge is one vectorised pass over every live partition of the chunk. Writing (encode,
atomic durable write, read-back check) and deleting are per partition and independent of each
other, so they run on threads, while the caller goes on with the next chunk; for each partition
they run in order, and its inputs are deleted only after its own file is durable and verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from datetime import date
from functools import partial

import polars as pl

from bibev.errors import BibevError
from bibev.schema import COMPRESSED_SCHEMA
from bibev.storage import Storage

from .failpoints import crash_point
from .inputs import Input
from .merge import compact_frames, conform
from .outputs import delete_inputs
from .parquet import encode, write_verified
from .threads import run_all

Partition = tuple[str, date]
_EMPTY = pl.DataFrame(schema=COMPRESSED_SCHEMA)


@dataclass(frozen=True)
class Written:
    """What finishing one partition did: rows before and after, rows new to it, bytes out."""

    rows_existing: int
    rows_in: int
    rows_out: int
    bytes_out: int
    existing: bool


def _read_existing(storage: Storage, item: Input) -> pl.DataFrame | None:
    key = storage.day_key("compressed", item.day, item.vin)
    return conform(storage.read_parquet(key)) if storage.exists(key) else None


def _write_day(
    storage: Storage, item: Input, frame: pl.DataFrame, existing: pl.DataFrame | None
) -> int:
    """Write the merged day unless nothing changed; returns the bytes written."""
    if frame.height == 0 and existing is None:
        return 0
    if existing is not None and frame.equals(existing):
        return 0
    data = encode(frame)
    write_verified(storage, storage.day_key("compressed", item.day, item.vin), data, frame.height)
    return len(data)


def _finish_one(
    storage: Storage, item: Input, frame: pl.DataFrame, existing: pl.DataFrame | None
) -> int:
    bytes_out = _write_day(storage, item, frame, existing)
    crash_point("after-write")
    delete_inputs(storage, item.keys)
    crash_point("after-delete")
    return bytes_out


@dataclass
class Writing:
    """The partitions of a chunk being written: ``collect`` waits for them."""

    futures: dict[int, Future[int]]
    counts: dict[int, Written]
    outcome: dict[int, Written | BibevError]

    def wait(self) -> None:
        wait_for(self.futures.values())

    def collect(self) -> dict[int, Written | BibevError]:
        """Index → what finishing that partition did, or why it failed."""
        self.wait()
        outcome = dict(self.outcome)
        for n, future in self.futures.items():
            error = future.exception()
            if isinstance(error, BibevError):
                outcome[n] = error
            elif error is not None:
                raise error
            else:
                counted = self.counts[n]
                bytes_out = future.result()
                outcome[n] = Written(
                    counted.rows_existing,
                    counted.rows_in,
                    counted.rows_out,
                    bytes_out,
                    counted.existing,
                )
        return outcome


def _days(merged: pl.DataFrame) -> dict[tuple[str, date], pl.DataFrame]:
    """The rows of each (VIN, day) of ``merged``. They are contiguous (``compact_frames`` sorts
    by VIN, then time), so each day is a slice of ``merged``, not a copy."""
    runs = merged.select(
        pl.struct("vin", pl.col("ts").dt.date().alias("day")).rle().struct.unnest()
    ).unnest("value")
    days: dict[tuple[str, date], pl.DataFrame] = {}
    offset = 0
    for length, vin, day in runs.iter_rows():
        if (vin, day) in days:
            raise RuntimeError(f"merged rows of {vin} {day} are not contiguous")
        days[(vin, day)] = merged.slice(offset, length)
        offset += length
    return days


def merge_and_write(
    pool: Executor,
    writers: Executor,
    storage: Storage,
    items: Sequence[Input],
    new: pl.DataFrame,
    failed: dict[int, BaseException],
) -> Writing:
    """Merge every live partition of ``items`` (``failed`` ones are skipped) with its existing
    day in one pass, then start writing each one and deleting its inputs on ``writers``.
    ``new`` holds the chunk's rows of the partitions' own days."""
    live = [n for n in range(len(items)) if n not in failed]
    found = run_all(pool, [partial(_read_existing, storage, items[n]) for n in live])
    existing: dict[int, pl.DataFrame | None] = {}
    outcome: dict[int, Written | BibevError] = {}
    for n, frame in zip(live, found, strict=True):
        if isinstance(frame, BibevError):
            outcome[n] = frame
        elif isinstance(frame, Exception):
            raise frame
        else:
            existing[n] = frame
    old = [frame for frame in existing.values() if frame is not None]
    merged = compact_frames(pl.concat(old) if old else None, new)
    parts = _days(merged)
    day = pl.col("ts").dt.date().alias("day")
    rows_in = {(v, d): c for v, d, c in new.group_by("vin", day).len().iter_rows()}
    futures: dict[int, Future[int]] = {}
    counts: dict[int, Written] = {}
    for n, before in existing.items():
        item = items[n]
        frame = parts.get((item.vin, item.day), _EMPTY)
        futures[n] = writers.submit(_finish_one, storage, item, frame, before)
        counts[n] = Written(
            rows_existing=0 if before is None else before.height,
            rows_in=rows_in.get((item.vin, item.day), 0),
            rows_out=frame.height,
            bytes_out=0,
            existing=before is not None,
        )
    return Writing(futures, counts, outcome)
