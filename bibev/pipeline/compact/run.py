"""``run_compact``: which (VIN, day) partitions to compact, and running them.

Days: every complete UTC day (before today) that still has files in ``temp/``, optionally
limited to ``date_from``..``date_to``; today only with ``include_today``; never a later day.
Partitions run in parallel through ``bibev.executors``; a failed partition never stops the
others. Messages that belonged to another day are rerouted into that day's temp folder by the
first pass; a second pass compacts those days right away when they are selected too, so one run
leaves nothing behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from bibev.errors import BibevError, ConfigError
from bibev.executors import OnProgress, PartitionResult, default_workers, run_partitions
from bibev.pipeline.changes import note
from bibev.pipeline.partitions import log_done
from bibev.providers.registry import get_registry
from bibev.storage import Storage, validate_vin

from .day import CompactResult, Outcome, compact_partitions, plan_partition
from .generic import Adapters

logger = logging.getLogger(__name__)

Partition = tuple[str, date]
Batch = tuple[Partition, ...]
MAX_BATCH = 64

COUNTED = (
    "files",
    "messages",
    "rows_in",
    "rows_out",
    "duplicates",
    "quarantined",
    "rerouted",
    "bytes_in",
    "bytes_out",
)


@dataclass(frozen=True)
class DaySelection:
    """The days asked for: every complete day (the default), a range, or one day."""

    date_from: date | None = None
    date_to: date | None = None

    def __post_init__(self) -> None:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ConfigError(f"--from {self.date_from} is after --to {self.date_to}")

    def allows(self, day: date, *, last: date) -> bool:
        after_start = self.date_from is None or day >= self.date_from
        before_end = self.date_to is None or day <= self.date_to
        return after_start and before_end and day <= last


def last_day(today: date, *, include_today: bool) -> date:
    """The last day that may be compacted: yesterday, or today with ``include_today``."""
    return today if include_today else today - timedelta(days=1)


def select_days(
    available: Iterable[date], selection: DaySelection, *, today: date, include_today: bool
) -> list[date]:
    """The days of ``available`` to compact. Asking only for days that are not complete yet
    is a ``ConfigError`` (they would be skipped without a word otherwise)."""
    last = last_day(today, include_today=include_today)
    if selection.date_from is not None and selection.date_from > last:
        hint = "" if include_today or selection.date_from > today else "; add --include-today"
        raise ConfigError(
            f"{selection.date_from} is not a complete UTC day yet (today is {today}){hint}"
        )
    return sorted(day for day in set(available) if selection.allows(day, last=last))


@dataclass(frozen=True)
class CompactJob:
    """Everything a worker needs to compact a batch of partitions (picklable)."""

    storage: Storage
    plugins: tuple[str, ...] | None = None
    provider_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    lock_wait: float = 0.0
    dry_run: bool = False


def compact_batch(
    job: CompactJob, batch: Batch, on_progress: Callable[[int], None] | None = None
) -> list[Outcome]:
    """Compact a batch of partitions; module-level so that it can run in a worker.
    ``on_progress`` is told how many of them are done, chunk by chunk."""
    if job.dry_run:
        return [_planned(job.storage, vin, day) for vin, day in batch]
    adapters = Adapters(get_registry(job.plugins), job.provider_options)
    outcomes = compact_partitions(
        job.storage, batch, adapters=adapters, lock_wait=job.lock_wait, on_progress=on_progress
    )
    # Exceptions are sent back as text: a worker's exception may not survive pickling.
    return [
        o if o.error is None else Outcome(o.partition, error=_Failure(_describe(o.error)))
        for o in outcomes
    ]


class _Failure(Exception):
    """A partition's failure, described where it happened."""


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, _Failure) else f"{type(exc).__name__}: {exc}"


def _planned(storage: Storage, vin: str, day: date) -> Outcome:
    try:
        return Outcome((vin, day), plan_partition(storage, vin, day))
    except BibevError as exc:
        return Outcome((vin, day), error=_Failure(_describe(exc)))


def batches(partitions: Sequence[Partition], workers: int) -> list[Batch]:
    """Consecutive partitions in batches of even size for worker processes: at least two per
    worker (so that none waits for a slow one), at most ``MAX_BATCH`` partitions in one."""
    if not partitions:
        return []
    count = max(workers * 2, -(-len(partitions) // MAX_BATCH))
    size = -(-len(partitions) // count)
    return [tuple(partitions[i : i + size]) for i in range(0, len(partitions), size)]


@dataclass(frozen=True)
class CompactSummary:
    """The outcome of a run: one result per partition done, and the failed partitions."""

    results: list[CompactResult]
    failures: list[tuple[str, str]]
    days: list[date]
    seconds: float
    dry_run: bool = False

    def totals(self) -> dict[str, Any]:
        """The counts recorded in the ``runs`` table and printed by the CLI."""
        totals: dict[str, Any] = {
            "days": len({r.day for r in self.results} | set(self.days)),
            "vehicles": len({r.vin for r in self.results}),
            "partitions": len({(r.vin, r.day) for r in self.results}) + len(self.failures),
            "failed": len(self.failures),
        }
        for name in COUNTED:
            totals[name] = sum(getattr(r, name) for r in self.results)
        totals["seconds"] = round(self.seconds, 3)
        return totals


def _as_utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _run(
    job: CompactJob,
    partitions: Sequence[Partition],
    *,
    workers: int | None,
    dask_address: str | None,
    on_progress: OnProgress,
) -> list[Outcome]:
    """Run the partitions in batches; progress is counted in partitions."""
    if (workers or default_workers()) == 1 and not dask_address:
        return _run_here(job, partitions, on_progress)
    groups = batches(partitions, workers or default_workers())
    sizes = [len(group) for group in groups]

    def progress(done: int, total: int) -> None:
        on_progress(sum(sizes[:done]), len(partitions))

    results: list[PartitionResult[Batch]] = run_partitions(
        partial(compact_batch, job),
        groups,
        workers=workers,
        dask_address=dask_address,
        on_progress=progress,
    )
    outcomes: list[Outcome] = []
    for result in results:
        if result.ok:
            outcomes.extend(result.value)
        else:  # the batch itself failed (a worker died): every partition in it failed
            outcomes.extend(
                Outcome(p, error=_Failure(result.error or "")) for p in result.partition
            )
    return outcomes


def _run_here(
    job: CompactJob, partitions: Sequence[Partition], on_progress: OnProgress
) -> list[Outcome]:
    """Run every partition in this process as one batch: its chunks are pipelined from the
    first to the last (batches would each start and drain the pipeline), and progress is
    reported chunk by chunk. A failure of the batch itself fails all of it, as in a worker."""
    total = len(partitions)
    on_progress(0, total)
    try:
        outcomes = compact_batch(job, tuple(partitions), lambda done: on_progress(done, total))
    except Exception as exc:
        logger.debug("compacting %d partition(s) failed", total, exc_info=True)
        unexpected = "" if isinstance(exc, BibevError) else "unexpected "
        failure = _Failure(f"{unexpected}{type(exc).__name__}: {exc}")
        return [Outcome(partition, error=failure) for partition in partitions]
    on_progress(total, total)
    return outcomes


def run_compact(
    storage: Storage,
    *,
    now: datetime,
    date_from: date | None = None,
    date_to: date | None = None,
    vins: Sequence[str] | None = None,
    include_today: bool = False,
    dry_run: bool = False,
    workers: int | None = None,
    dask_address: str | None = None,
    on_progress: OnProgress | None = None,
    plugins: Sequence[str] | None = None,
    provider_options: Mapping[str, Mapping[str, Any]] | None = None,
    lock_wait: float = 0.0,
) -> CompactSummary:
    """Compact every selected (VIN, day) of ``temp/`` (see the module docstring).

    ``now`` decides which days are complete. ``vins`` are validated first (``DataContractError``
    for a bad one); ``lock_wait`` is how long to wait for a partition another run is compacting
    before counting it as failed.
    """
    started = time.monotonic()
    wanted = None if vins is None else sorted({validate_vin(vin) for vin in vins})
    selection = DaySelection(date_from, date_to)
    today = _as_utc(now).date()
    days = select_days(storage.temp_days(), selection, today=today, include_today=include_today)
    partitions = [(vin, day) for day in days for vin in storage.temp_files(day, wanted)]
    if not partitions:
        storage.check_root()  # nothing to do, or a mistyped root: say which
    logger.info("compact: %d partition(s) over %d day(s)", len(partitions), len(days))
    if storage.protocol == "memory" and (workers != 1 or dask_address):
        logger.info("memory:// roots live in this process: compacting inline")
        workers, dask_address = 1, None
    if not dry_run:
        storage.sweep_tmp()
    job = CompactJob(
        storage,
        None if plugins is None else tuple(plugins),
        dict(provider_options or {}),
        lock_wait,
        dry_run,
    )
    report = on_progress or (lambda done, total: None)
    run = partial(_run, job, workers=workers, dask_address=dask_address)
    # noted before they are written (a crash or a concurrent `transform clean --changed` then
    # cannot miss one), and again once done with only the files written
    intents = (
        [] if dry_run else [note(storage, "compressed", partitions, by="compact", running=True)]
    )
    outcomes = run(partitions, on_progress=report)
    last = last_day(today, include_today=include_today)
    second_pass = sorted(
        {
            (o.result.vin, target)
            for o in outcomes
            if o.result is not None
            for target in o.result.rerouted_to
            if selection.allows(target, last=last)
        }
    )
    if second_pass:
        logger.info("compact: %d partition(s) received rerouted messages", len(second_pass))
        offset = len(partitions)

        def progress(done: int, total: int) -> None:
            report(offset + done, offset + total)

        if not dry_run:
            intents.append(note(storage, "compressed", second_pass, by="compact", running=True))
        outcomes += run(second_pass, on_progress=progress)
    if not dry_run:
        # a failed partition may have written its file before it failed: noted as changed
        noted = [o.partition for o in outcomes if o.result is None or o.result.written]
        note(storage, "compressed", noted, by="compact")
        storage.delete_many(key for key in intents if key)
    summary = CompactSummary(
        results=[o.result for o in outcomes if o.result is not None],
        failures=[
            (f"{o.partition[0]} {o.partition[1]}", _describe(o.error))
            for o in outcomes
            if o.error is not None
        ],
        days=days,
        seconds=time.monotonic() - started,
        dry_run=dry_run,
    )
    log_done(logger, "compact", summary.totals())
    return summary
