"""What the per-day stage orchestrators share: taking one lock per day, running partitions in
day batches, logging a stage's end, and turning failed partitions into a ``PartialFailure``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from datetime import date
from typing import Any, TypeVar

from bibev.errors import LockedError, PartialFailure
from bibev.executors import OnProgress, PartitionResult, run_partitions
from bibev.storage import Storage

logger = logging.getLogger(__name__)

R = TypeVar("R")


def take_day_locks(
    stack: ExitStack,
    storage: Storage,
    days: Sequence[date],
    lock_name: Callable[[date], str],
    wait: float,
) -> dict[date, str]:
    """Lock every day (in order) until ``stack`` closes; returns the days that could not be
    locked, with why."""
    refused = {}
    for day in sorted(days):
        try:
            stack.enter_context(storage.lock(lock_name(day), wait=wait))
        except LockedError as exc:
            refused[day] = str(exc)
    return refused


def raise_for_failures(failures: Sequence[tuple[str, str]], total: int) -> None:
    """``PartialFailure`` (exit 5) listing the failed partitions, if there are any."""
    if failures:
        rest = "" if len(failures) >= total else "; the others are done"
        raise PartialFailure(f"{len(failures)} of {total} partition(s) failed{rest}", failures)


Partition = tuple[str, date]
Batch = tuple[Partition, ...]


def day_batches(partitions: Sequence[Partition], size: int) -> list[Batch]:
    """The partitions grouped by day (in the order given), at most ``size`` VINs per batch.

    One batch is one polars query over many vehicles: small (VIN, day) partitions each cost a
    few milliseconds of query planning, which a batch pays once.
    """
    if size < 1:
        raise ValueError(f"a batch holds at least one partition, not {size}")
    by_day: dict[date, list[Partition]] = {}
    for partition in partitions:
        by_day.setdefault(partition[1], []).append(partition)
    batches: list[Batch] = []
    for members in by_day.values():
        count = -(-len(members) // size)
        step = -(-len(members) // count)  # even batches: 101 VINs at 100 → 51 + 50
        batches += [tuple(members[i : i + step]) for i in range(0, len(members), step)]
    return batches


def run_batches(
    func: Callable[[Batch], list[R]],
    partitions: Sequence[Partition],
    *,
    batch_size: int,
    workers: int | None = None,
    dask_address: str | None = None,
    on_progress: OnProgress | None = None,
) -> list[PartitionResult[Partition]]:
    """Run ``func`` on day batches of ``partitions``; one result per partition, in order.

    ``func`` (module level: it is pickled) returns one value per partition of its batch, in the
    batch's order. A batch that fails is run again one partition at a time, in this process, so
    that a bad partition fails alone and the rest of its batch still lands.
    """
    groups = day_batches(partitions, batch_size)
    sizes = [len(group) for group in groups]
    progress = on_progress or (lambda done, total: None)

    def batch_progress(done: int, total: int) -> None:
        progress(sum(sizes[:done]), len(partitions))

    outcomes: dict[Partition, PartitionResult[Partition]] = {}
    for result in run_partitions(
        func, groups, workers=workers, dask_address=dask_address, on_progress=batch_progress
    ):
        if result.ok:
            for partition, value in zip(result.partition, result.value, strict=True):
                outcomes[partition] = PartitionResult(partition, value)
            continue
        logger.warning(
            "a batch of %d partition(s) failed (%s); running them one at a time",
            len(result.partition),
            result.error,
        )
        for partition in result.partition:
            alone = run_partitions(func, [(partition,)], workers=1)[0]
            outcomes[partition] = (
                PartitionResult(partition, alone.value[0])
                if alone.ok
                else PartitionResult(partition, error=alone.error)
            )
    return [outcomes[p] for p in partitions]


def log_done(log: logging.Logger, stage: str, totals: Mapping[str, Any]) -> None:
    """One INFO line on ``log`` when a stage ends, with its totals (``summary.totals()``): a
    routine partition's own line is DEBUG (``-v`` shows it)."""
    counts = ", ".join(
        f"{name.replace('_', ' ')} {value}" for name, value in totals.items() if name != "seconds"
    )
    log.info("%s: done in %.1f s: %s", stage, totals["seconds"], counts)
