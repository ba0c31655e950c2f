"""``run_segment``: which (VIN, day) partitions to segment, and running them.

A partition reads the clean files of its day and of the days before and after it, cuts the
sessions that start on its day (``segment_day``) and writes ``segments/YYYY/MM/DD/{VIN}.parquet``
(only when its bytes change). A session at an edge of those three days is followed into the
files beyond (``follow.follow_open_sessions``). The output depends on the clean files only, so days
can be segmented in any order, in parallel, and again, with the same result.

The partitions run in day batches (``bibev.pipeline.partitions.run_batches``): the VINs of a
batch are read and segmented in one query (``segment_batch``), which costs little more than one
vehicle (a small partition costs mostly query planning); a batch that fails is run again one
partition at a time, so a bad partition fails alone. The files are the same for any batch size.

A session still open at the end of the data (``open_end``: the next day was not there yet) is
completed when a later day is segmented: selecting a day also selects the day that left its
last session open (the day before, or an earlier one when that session covers the days
between; ``select.py``), so running tonight's day completes it instead of cutting or
duplicating it.

The ``segments`` table is updated in this process after the partitions ran, one (VIN, day) per
transaction (delete, then insert). While a run works on a day it holds the lock
``segment/YYYY-MM-DD``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Any

import polars as pl

from bibev.errors import ConfigError
from bibev.executors import OnProgress, PartitionResult
from bibev.pipeline.changes import notes_for, settle
from bibev.pipeline.partitions import log_done, raise_for_failures, run_batches, take_day_locks
from bibev.pipeline.segment.day import segment_day_reach
from bibev.pipeline.segment.files import encode, read_windows, write_segments
from bibev.pipeline.segment.follow import follow_open_sessions, span
from bibev.pipeline.segment.params import DEFAULT_PARAMS, SegmentParams
from bibev.pipeline.segment.select import Partition, covered, seams, select_partitions
from bibev.storage import Storage

if TYPE_CHECKING:  # workers import this module: not the database layer they never use
    from sqlalchemy import Engine

logger = logging.getLogger(__name__)


#: VINs of a day segmented in one query (see ``run_segment``).
DEFAULT_BATCH_SIZE = 100
#: Rounds of redoing the days next to the redone ones whose sessions no longer meet them.
MAX_SEAM_ROUNDS = 3


def lock_name(day: date) -> str:
    return f"segment/{day:%Y-%m-%d}"


@dataclass(frozen=True)
class SegmentJob:
    """Everything a worker needs to segment a partition (picklable)."""

    storage: Storage
    params: SegmentParams = DEFAULT_PARAMS
    lookaround_days: int = 1
    #: The first and last day of ``clean/`` (listed once per run); ``None``: listed when needed.
    clean_span: tuple[date, date] | None = None


@dataclass(frozen=True)
class SegmentResult:
    """What segmenting one (VIN, day) did; ``sessions`` holds the day's rows for the table."""

    vin: str
    day: date
    rows_in: int
    sessions: pl.DataFrame
    written: bool
    bytes_out: int

    def counts(self) -> Counter[str]:
        counted: Counter[str] = Counter(self.sessions["kind"].cast(pl.String).to_list())
        counted["offline"] = int(self.sessions["offline"].sum())
        return counted


def segment_batch(job: SegmentJob, batch: Sequence[Partition]) -> list[SegmentResult]:
    """Segment the partitions of ``batch``, one query per day of it; one result per partition,
    in the batch's order. Module-level so that it can run in a worker."""
    days: dict[date, list[str]] = {}
    for vin, day in batch:
        days.setdefault(day, []).append(vin)
    done: dict[Partition, SegmentResult] = {}
    for day, vins in days.items():
        done |= {(r.vin, day): r for r in _segment_day_batch(job, day, vins)}
    return [done[partition] for partition in batch]


def segment_partition(job: SegmentJob, partition: Partition) -> SegmentResult:
    """Segment one (VIN, day): a batch of one."""
    return segment_batch(job, [partition])[0]


def _segment_day_batch(job: SegmentJob, day: date, vins: list[str]) -> list[SegmentResult]:
    storage = job.storage
    rows, rows_in = read_windows(storage, vins, day, job.lookaround_days)
    sessions, reach = segment_day_reach(rows.lazy(), day, job.params)
    # No session of its own on the day (no rows, or an earlier session covers its rows): one
    # laid in a telemetry gap around the day may still start there, once both sides are seen.
    unowned = set(vins) - set(sessions["vin"].to_list())
    sessions = follow_open_sessions(job, day, rows, sessions, reach, unowned)
    by_vin = sessions.partition_by("vin", as_dict=True, maintain_order=True)
    frames = {vin: by_vin.get((vin,), sessions.clear()) for vin in vins}
    stored = write_segments(storage, day, frames)
    return [SegmentResult(vin, day, rows_in[vin], frames[vin], *stored[vin]) for vin in vins]


@dataclass(frozen=True)
class SegmentSummary:
    """The outcome of a run: one result per partition done, and the failed partitions."""

    results: list[SegmentResult]
    failures: list[tuple[str, str]]
    days: list[date]
    seconds: float
    stored: int = 0

    def totals(self) -> dict[str, Any]:
        """The counts recorded in the ``runs`` table and printed by the CLI."""
        counted: Counter[str] = Counter()
        for result in self.results:
            counted.update(result.counts())
        return {
            "days": len(self.days),
            "vehicles": len({r.vin for r in self.results}),
            "partitions": len(self.results) + len(self.failures),
            "failed": len(self.failures),
            "rows_in": sum(r.rows_in for r in self.results),
            "sessions": sum(r.sessions.height for r in self.results),
            "charging": counted["charging"],
            "driving": counted["driving"],
            "idle": counted["idle"],
            "offline": counted["offline"],
            "files_written": sum(r.written for r in self.results),
            "files_unchanged": sum(not r.written for r in self.results),
            "rows_stored": self.stored,
            "seconds": round(self.seconds, 3),
        }

    def raise_for_failures(self) -> None:
        """``PartialFailure`` (exit 5) listing the failed partitions, if there are any."""
        raise_for_failures(self.failures, self.totals()["partitions"])


def run_segment(
    storage: Storage,
    engine: Engine | None = None,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    vins: Sequence[str] | None = None,
    params: SegmentParams | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    on_progress: OnProgress | None = None,
    lock_wait: float = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    changed: bool = False,
    also: Sequence[Partition] = (),
) -> SegmentSummary:
    """Segment every selected (VIN, day) (see the module doc) and replace their rows in the
    ``segments`` table of ``engine`` (when given). Failed partitions are listed in the summary,
    never raised: ``summary.raise_for_failures()`` does that.

    ``changed`` selects instead the (VIN, day)s that the clean files written since the last
    such run touch (``bibev.pipeline.changes``). ``also``: more (VIN, day)s whose clean file
    changed (``transform all`` passes those its clean step cleaned before the range).

    The VINs of a day are segmented ``batch_size`` at a time, in one query: a worker's memory
    is bounded by a batch (clean rows of three days of ``batch_size`` vehicles); the files are
    the same for any batch size."""
    if batch_size < 1:
        raise ConfigError(f"a batch holds at least one vehicle, not {batch_size}")
    started = time.monotonic()
    everything = not (date_from or date_to or vins)
    notes = notes_for(storage, "clean", changed=changed, everything=everything)
    partitions = select_partitions(
        storage,
        date_from=date_from,
        date_to=date_to,
        vins=vins,
        changed=notes.partitions if changed else None,
        also=also,
    )
    if not partitions:
        storage.check_root()  # nothing to do, or a mistyped root: say which
    days = sorted({day for _, day in partitions})
    logger.info("segment: %d partition(s) over %d day(s)", len(partitions), len(days))
    storage.sweep_tmp()  # files a killed writer left under _tmp/ more than a day ago
    if storage.protocol == "memory" and (workers != 1 or dask_address):
        logger.info("memory:// roots live in this process: segmenting inline")
        workers, dask_address = 1, None
    job = SegmentJob(
        storage, params or DEFAULT_PARAMS, clean_span=span(storage.days("clean"), date.today())
    )
    run = partial(
        run_batches,
        partial(segment_batch, job),
        batch_size=batch_size,
        workers=workers,
        dask_address=dask_address,
        on_progress=on_progress,
    )
    with ExitStack() as stack:
        refused = take_day_locks(stack, storage, days, lock_name, lock_wait)
        results = run([p for p in partitions if p[1] not in refused])
        attempted = list(partitions)
        for _ in range(MAX_SEAM_ROUNDS):
            unmet = seams(storage, {r.partition for r in results if r.ok}) - set(attempted)
            if not unmet:
                break
            logger.info("segment: %d day(s) no longer meet the sessions redone: redone", len(unmet))
            more_days = sorted({day for _, day in unmet} - {day for _, day in attempted})
            refused |= take_day_locks(stack, storage, more_days, lock_name, lock_wait)
            attempted += sorted(unmet, key=lambda p: (p[1], p[0]))
            results += run([p for p in sorted(unmet) if p[1] not in refused])
    failures = [(f"{vin} {day}", reason) for vin, day in attempted if (reason := refused.get(day))]
    failures += _failures(results)
    done = [r.value for r in results if r.ok]
    stored = 0
    if engine is not None and done:
        from bibev.db.segments import replace_segments

        stored = replace_segments(engine, ((r.vin, r.day, r.sessions) for r in done))
    # the files and rows made from the changed clean files are there
    if everything and not failures:
        settle(storage, notes, set(notes.partitions))  # every day done
    else:
        redone = {(r.vin, r.day) for r in done}
        first = job.clean_span[0] if job.clean_span else date.today()
        settle(storage, notes, covered(storage, notes.partitions, redone, first))
    summary = SegmentSummary(
        results=done,
        failures=sorted(failures),
        days=days,
        seconds=time.monotonic() - started,
        stored=stored,
    )
    log_done(logger, "segment", summary.totals())
    return summary


def _failures(results: Sequence[PartitionResult[Partition]]) -> list[tuple[str, str]]:
    return [(f"{r.partition[0]} {r.partition[1]}", r.error or "") for r in results if not r.ok]


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SegmentJob",
    "SegmentResult",
    "SegmentSummary",
    "encode",
    "lock_name",
    "read_windows",
    "run_segment",
    "segment_batch",
    "segment_partition",
    "select_partitions",
]
