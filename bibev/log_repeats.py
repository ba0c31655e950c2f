"""``RepeatFilter``: one line for a burst of the same warning.

A Kafka client that cannot reach its broker logs the same failure every few hundred
milliseconds, with only its counters changing; written out, that buries every other line.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

_NUMBERS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Lets a WARNING or worse through only when no record like it (same level, same text once
    its numbers are masked) passed in the last ``every`` seconds; the next one that passes says
    how many were held back. Lower levels always pass."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        self._seen: dict[tuple[int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.levelno, _NUMBERS.sub("#", record.getMessage()))
        now = self.clock()
        with self._lock:
            passed, held = self._seen.get(key, (now - self.every, 0))
            if now - passed < self.every:
                self._seen[key] = (passed, held + 1)
                return False
            self._seen[key] = (now, 0)
        if held:
            note = f" ({held} more like it in the last {now - passed:.0f} s)"
            record.msg, record.args = record.getMessage() + note, None
        return True
