"""The lock of one (VIN, day) partition, and taking over a lock whose holder died."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from datetime import date

from bibev.storage import Storage

logger = logging.getLogger(__name__)

STAGE = "compact"


def lock_name(vin: str, day: date) -> str:
    """``compact/YYYY-MM-DD/VIN``: one lock per partition, so vehicles never wait on each other."""
    return f"{STAGE}/{day:%Y-%m-%d}/{vin}"


def hold_lock(storage: Storage, name: str, *, wait: float) -> AbstractContextManager[None]:
    """Take lock ``name`` and return it held: its ``__exit__`` releases it (so a lock taken in
    an I/O thread can be released by the thread that owns the partition). ``LockedError`` when
    another run holds it.

    A lock left by a crashed run on this host (its process is gone) is taken over at once by the
    storage layer, so running again repairs a crash without waiting for the lock to go stale.
    """
    lock = storage.lock(name, wait=wait)
    lock.__enter__()
    return lock
