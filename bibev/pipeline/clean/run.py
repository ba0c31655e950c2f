"""``run_clean``: which (VIN, day) partitions to clean, and running them.

Days: every day of ``compressed/`` (optionally limited to ``date_from``..``date_to``); VINs:
every file of those days (optionally limited to ``vins``). Cleaning is idempotent, so the
default simply cleans everything again and rewrites only the files that change. While a run
works on a day it holds the lock ``clean/YYYY-MM-DD``; a day another run holds is reported as
failed and the other days go on. Partitions run in day batches through
``bibev.pipeline.partitions.run_batches`` (a batch that fails is run again one partition at a
time, so a bad partition fails alone); the quality records of the partitions that succeeded are
stored in the database (one row per (VIN, day), replaced on every run).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from bibev.errors import ConfigError
from bibev.executors import OnProgress, PartitionResult
from bibev.pipeline.changes import around, existing, note, notes_for, settle
from bibev.pipeline.partitions import log_done, raise_for_failures, run_batches, take_day_locks
from bibev.storage import Storage, validate_vin

from .params import CleanParams
from .partition import CleanJob, CleanResult, clean_batch

if TYPE_CHECKING:  # sqlalchemy is heavy to import, and worker processes never touch it
    from sqlalchemy import Engine

logger = logging.getLogger(__name__)

#: VINs of a day cleaned in one query (see ``run_clean``).
DEFAULT_BATCH_SIZE = 100

Partition = tuple[str, date]


def lock_name(day: date) -> str:
    return f"clean/{day:%Y-%m-%d}"


def select_partitions(
    storage: Storage,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    vins: Sequence[str] | None = None,
) -> list[Partition]:
    """The (VIN, day) partitions of ``compressed/`` in the range, by day then VIN."""
    if date_from and date_to and date_from > date_to:
        raise ConfigError(f"--from {date_from} is after --to {date_to}")
    wanted = None if vins is None else {validate_vin(vin) for vin in vins}
    partitions = []
    for day in storage.days("compressed"):
        if (date_from and day < date_from) or (date_to and day > date_to):
            continue
        for vin in storage.day_keys("compressed", day):
            if wanted is None or vin in wanted:
                partitions.append((vin, day))
    return partitions


@dataclass(frozen=True)
class CleanSummary:
    """The outcome of a run: one result per partition done, and the failed partitions."""

    results: list[CleanResult]
    failures: list[tuple[str, str]]
    days: list[date]
    seconds: float
    quality_stored: int = 0
    #: the (VIN, day)s before the selection cleaned again (``_days_before``)
    before: tuple[Partition, ...] = ()
    #: the run took its selection from the notes of what compact changed
    changed: bool = False

    def totals(self) -> dict[str, Any]:
        """The counts recorded in the ``runs`` table and printed by the CLI."""
        quality = [r.quality for r in self.results]
        return {
            "days": len(self.days),
            "vehicles": len({r.vin for r in self.results}),
            "partitions": len(self.results) + len(self.failures),
            "failed": len(self.failures),
            "rows_in": sum(q.rows_in for q in quality),
            "observations": sum(q.observations for q in quality),
            "dropped": sum(q.dropped_total for q in quality),
            "rows_out": sum(q.rows_out for q in quality),
            "files_written": sum(r.written for r in self.results),
            "files_unchanged": sum(not r.written for r in self.results),
            "bytes_out": sum(r.bytes_out for r in self.results),
            "seconds": round(self.seconds, 3),
        }

    def raise_for_failures(self) -> None:
        """``PartialFailure`` (exit 5) listing the failed partitions, if there are any."""
        raise_for_failures(self.failures, self.totals()["partitions"])


def run_clean(
    storage: Storage,
    engine: Engine | None = None,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    vins: Sequence[str] | None = None,
    params: CleanParams | None = None,
    now: datetime | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    on_progress: OnProgress | None = None,
    plugins: Sequence[str] | None = None,
    lock_wait: float = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    changed: bool = False,
) -> CleanSummary:
    """Clean every selected (VIN, day) (see the module doc) and store the quality records in
    ``engine`` (when given). Failed partitions are listed in the summary, never raised:
    ``summary.raise_for_failures()`` does that.

    ``changed`` selects instead the (VIN, day)s that the compressed files ``compact`` wrote
    since the last such run touch (``bibev.pipeline.changes``): each of them and the same VIN's
    days before and after.

    The VINs of a day are cleaned ``batch_size`` at a time, in one query: a worker's memory is
    bounded by a batch (compressed rows of three days of ``batch_size`` vehicles); the files
    are the same for any batch size."""
    started = time.monotonic()
    everything = not (date_from or date_to or vins)
    notes = notes_for(storage, "compressed", changed=changed, everything=everything)
    params = params or CleanParams()
    if changed:
        readers = _silence_readers(storage, notes.partitions, params.gap_lookback_days)
        wanted = around(notes.partitions) | set(readers.values())
        partitions = existing(storage, "compressed", wanted)
    else:
        partitions = select_partitions(storage, date_from=date_from, date_to=date_to, vins=vins)
    if not partitions:
        storage.check_root()  # nothing to do, or a mistyped root: say which
    days = sorted({day for _, day in partitions})
    logger.info("clean: %d partition(s) over %d day(s)", len(partitions), len(days))
    storage.sweep_tmp()  # files a killed writer left under _tmp/ more than a day ago
    if storage.protocol == "memory" and (workers != 1 or dask_address):
        logger.info("memory:// roots live in this process: cleaning inline")
        workers, dask_address = 1, None
    job = CleanJob(storage, None if plugins is None else tuple(plugins), params, now)
    run = partial(
        run_batches,
        partial(clean_batch, job),
        batch_size=batch_size,
        workers=workers,
        dask_address=dask_address,
        on_progress=on_progress,
    )
    with ExitStack() as stack:
        refused = take_day_locks(stack, storage, days, lock_name, lock_wait)
        # noted before they are written, and again once done with only the files written
        intents = [note(storage, "clean", partitions, by="transform clean", running=True)]
        results = run([p for p in partitions if p[1] not in refused])
        # with --changed, only a day whose compressed file changed can change the day before
        before = _days_before(storage, partitions, results, notes.partitions if changed else None)
        if before:
            logger.info(
                "clean: %d (VIN, day)s before read their next day: cleaned again", len(before)
            )
            more_days = sorted({day for _, day in before} - set(days))
            refused |= take_day_locks(stack, storage, more_days, lock_name, lock_wait)
            intents.append(note(storage, "clean", before, by="transform clean", running=True))
            repairs = run([p for p in before if p[1] not in refused])
            # a day without rows of its own or from the range: nothing was done there
            results += [r for r in repairs if not r.ok or _found_rows(r.value)]
    failed = {p for p in partitions + before if p[1] in refused}
    failed |= {r.partition for r in results if not r.ok}
    failures = [
        (f"{vin} {day}", reason) for vin, day in partitions + before if (reason := refused.get(day))
    ]
    failures += _failures(results)
    done = [r.value for r in results if r.ok]
    days = sorted({r.day for r in done} | {day for _, day in partitions})
    # a failed batch may have written some files before it failed (its partitions then run
    # again alone, and find them unchanged): with failures, every partition is noted
    noted = partitions + before if failed else [(r.vin, r.day) for r in done if r.written]
    note(storage, "clean", noted, by="transform clean")
    storage.delete_many(key for key in intents if key)
    stored = 0
    if engine is not None and done:
        from bibev.db.quality import upsert_clean_quality

        stored = upsert_clean_quality(engine, [r.quality for r in done])
    # the files and rows made from the changed compressed files are there
    if everything and not failed:
        settle(storage, notes, set(notes.partitions))  # every day done
    else:
        covered = _covered(storage, notes.partitions, done, failed, params.gap_lookback_days)
        settle(storage, notes, covered)
    summary = CleanSummary(
        results=done,
        failures=sorted(failures),
        days=days,
        seconds=time.monotonic() - started,
        quality_stored=stored,
        before=tuple(r.partition for r in results if r.ok and r.partition in set(before)),
        changed=changed,
    )
    log_done(logger, "clean", summary.totals())
    return summary


def _days_before(
    storage: Storage,
    partitions: Sequence[Partition],
    results: Sequence[PartitionResult[Partition]],
    changed: frozenset[Partition] | None,
) -> list[Partition]:
    """The (VIN, day before) not selected of every partition cleaned with rows in its first
    minutes (which cleaning the day before reads: ``CleanResult.head``): it may have been
    cleaned before these rows were there, and gets them now. A day before without a compressed
    file only when some of those rows belong to it (``CleanResult.spill``). With ``changed``,
    only for the partitions among them (the others' first minutes are as they were)."""
    selected = set(partitions)
    one = timedelta(days=1)
    heads = [
        r.value
        for r in results
        if r.ok and r.value.head and (changed is None or r.partition in changed)
    ]
    compressed = {day: storage.day_keys("compressed", day) for day in {r.day - one for r in heads}}
    wanted = {(r.vin, r.day - one) for r in heads if r.spill or r.vin in compressed[r.day - one]}
    return sorted(wanted - selected, key=lambda p: (p[1], p[0]))


def _silence_readers(
    storage: Storage,
    partitions: Iterable[Partition],
    lookback: int,
    listed: dict[date, dict[str, str]] | None = None,
) -> dict[Partition, Partition]:
    """(VIN, day) → (VIN, later day), for those of ``partitions`` whose VIN has no compressed
    file the day after but one on a later day within ``lookback`` days (``CleanParams.
    gap_lookback_days``): the silence before that later day's first instant, in its quality
    record, is measured from this day's rows. One listing per day looked at; no day after
    today (``compact`` never writes one). ``listed``: the days already listed (day → VIN →
    key), completed here."""
    one = timedelta(days=1)
    today = datetime.now(UTC).date()
    listed = {} if listed is None else listed

    def has(vin: str, day: date) -> bool:
        if day not in listed:
            listed[day] = storage.day_keys("compressed", day)
        return vin in listed[day]

    readers = {}
    for vin, day in sorted(set(partitions), key=lambda p: (p[1], p[0])):
        if day + one > today or has(vin, day + one):
            continue
        later = (day + k * one for k in range(2, lookback + 1))
        found = next((d for d in later if d <= today and has(vin, d)), None)
        if found is not None:
            readers[(vin, day)] = (vin, found)
    return readers


def _covered(
    storage: Storage,
    noted: Iterable[Partition],
    done: Sequence[CleanResult],
    failed: set[Partition],
    lookback: int,
) -> set[Partition]:
    """The noted compressed (VIN, day)s whose clean files and quality records are up to date
    after this run: the day and the day after (it reads the day's tail) cleaned or without a
    compressed file, the day before not failed (it was cleaned again when the day's first
    minutes needed it), and, when there is no file the day after, the next day with one
    within the look-back cleaned (``_silence_readers``: its first silence began here)."""
    one = timedelta(days=1)
    noted = set(noted)
    cleaned = {(r.vin, r.day) for r in done}
    days = {day + shift for _, day in noted for shift in (0 * one, one)}
    present = {day: storage.day_keys("compressed", day) for day in days}
    readers = _silence_readers(storage, noted, lookback, present)

    def fresh(vin: str, day: date) -> bool:
        return (vin, day) in cleaned or vin not in present[day]

    def read_since(partition: Partition) -> bool:
        reader = readers.get(partition)
        return reader is None or reader in cleaned

    return {
        (vin, day)
        for vin, day in noted
        if fresh(vin, day)
        and fresh(vin, day + one)
        and (vin, day - one) not in failed
        and read_since((vin, day))
    }


def _found_rows(result: CleanResult) -> bool:
    return bool(result.quality.rows_in or result.quality.rows_out)


def _failures(results: Sequence[PartitionResult[Partition]]) -> list[tuple[str, str]]:
    return [(f"{r.partition[0]} {r.partition[1]}", r.error or "") for r in results if not r.ok]
