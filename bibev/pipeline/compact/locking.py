"""The lock of one (VIN, day) partition, and taking over a lock whose holder died."""

from __future__ import annotations

import logging
import os
import socket
import time
from contextlib import ExitStack
from datetime import date

from bibev.errors import LockedError
from bibev.storage import Storage

logger = logging.getLogger(__name__)

STAGE = "compact"


def lock_name(vin: str, day: date) -> str:
    """``compact/YYYY-MM-DD/VIN``: one lock per partition, so vehicles never wait on each other."""
    return f"{STAGE}/{day:%Y-%m-%d}/{vin}"


def holder_is_gone(holder: object) -> bool:
    """Whether a lock's holder was a process on this host that no longer runs."""
    host, pid = getattr(holder, "host", None), getattr(holder, "pid", -1)
    if os.name != "posix" or host != socket.gethostname() or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def take_lock(stack: ExitStack, storage: Storage, name: str, *, wait: float) -> None:
    """Take lock ``name`` until ``stack`` closes; ``LockedError`` when another run holds it.

    A lock left by a crashed run on this host (its process is gone) is taken over at once, so
    that running again repairs a crash without waiting for the lock to go stale. Only a lock at
    least half as old as the dead one can be broken this way: one taken since by a live run is
    younger and stays.
    """
    try:
        stack.enter_context(storage.lock(name, wait=wait))
        return
    except LockedError as exc:
        holder = getattr(exc, "holder", None)
        if not holder_is_gone(holder):
            raise
        age = time.time() - float(getattr(holder, "since", time.time()))
    logger.warning("lock %s was left by a process that is gone: taking it over", name)
    stack.enter_context(storage.lock(name, stale_after=max(age / 2, 0.001), wait=wait))
