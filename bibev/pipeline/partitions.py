"""What the per-day stage orchestrators share: taking one lock per day, and turning failed
partitions into a ``PartialFailure``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import date

from bibev.errors import LockedError, PartialFailure
from bibev.storage import Storage


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
        raise PartialFailure(
            f"{len(failures)} of {total} partition(s) failed; the others are done", failures
        )
