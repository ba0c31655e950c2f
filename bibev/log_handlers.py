"""Where bibev's log records go: one handler for the ``bibev`` loggers, for warnings, and for
what other libraries log at WARNING and above (boto, s3fs, urllib3, …)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

#: Set on the handler ``route_logs`` puts on the root logger, to find it again.
_MARK = "_bibev_route"


def route_logs(handler: logging.Handler, level: int, names: Iterable[str] = ("bibev",)) -> None:
    """Send the records of the loggers ``names`` (at ``level`` and above) and every warning to
    ``handler`` alone, not to the root logger's handlers; and the records other loggers send to
    the root (WARNING and above, unless a library lowers its own level) to ``handler`` too, in
    place of the one an earlier call put there (other handlers of the root stay)."""
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.handlers[:] = [handler]
    warnings_logger.propagate = False
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    setattr(handler, _MARK, True)
    root.addHandler(handler)
