"""The log records of worker processes, written by the parent as its own.

A worker process is started fresh (``spawn``), with logging unconfigured: its INFO and DEBUG
records would be lost and its warnings written raw by Python's last-resort handler, unmasked.
``forwarded_logs`` instead gives each worker a handler that sends the records of the ``bibev``
loggers (at the parent's level) and the warnings through a queue, and a thread of the parent
hands every record to the parent's logger of the same name, whose handlers filter, mask and
format it like any other line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from logging.handlers import QueueHandler, QueueListener
from typing import Any

from bibev.log_handlers import route_logs

WorkerInit = tuple[Callable[..., None], tuple[Any, ...]]


class _ToParentLoggers(logging.Handler):
    """Hands a worker's record to this process's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        log = logging.getLogger(record.name)
        if log.isEnabledFor(record.levelno):
            log.handle(record)


@contextlib.contextmanager
def forwarded_logs(context: Any) -> Iterator[WorkerInit]:
    """``(initializer, initargs)`` for the workers of a process pool made with ``context``
    (a ``multiprocessing`` context); their records are written until the block ends, which
    must be after the pool has shut down."""
    queue = context.Queue()
    listener = QueueListener(queue, _ToParentLoggers())
    listener.start()
    try:
        yield _log_to_queue, (queue, logging.getLogger("bibev").getEffectiveLevel())
    finally:
        listener.stop()  # handles every record already queued, then returns
        queue.close()
        queue.join_thread()


def _log_to_queue(queue: Any, level: int) -> None:
    """The initializer of a worker process: its ``bibev`` records and warnings go to ``queue``."""
    route_logs(QueueHandler(queue), level)
