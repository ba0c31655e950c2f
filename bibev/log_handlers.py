"""Where bibev's log records go: one handler for the ``bibev`` loggers and for warnings."""

from __future__ import annotations

import logging
from collections.abc import Iterable


def route_logs(handler: logging.Handler, level: int, names: Iterable[str] = ("bibev",)) -> None:
    """Send the records of the loggers ``names`` (at ``level`` and above) and every warning to
    ``handler`` alone, not to the root logger's handlers."""
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.handlers[:] = [handler]
    warnings_logger.propagate = False
