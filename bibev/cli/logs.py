"""Logging on stderr: rich on a terminal, plain text otherwise, JSON lines on request.

Every handler carries a filter that masks the configured secrets, so a secret that slips into a
log message (a URL with a password, a token in an error) is never written out.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from rich.logging import RichHandler

from bibev.cli.common import err
from bibev.log_handlers import route_logs

LEVELS = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
MASK = "***"


class SecretFilter(logging.Filter):
    """Replace every known secret value in a record's rendered message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask ``secrets`` too (longest first, so a secret holding another is masked whole)."""
        known = {*self.secrets, *(s for s in secrets if s and len(s) >= 4)}
        self.secrets = sorted(known, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, MASK)
            record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _skip = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in record.__dict__.items() if k not in self._skip})
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(data, default=str)


def configure_logging(
    *, verbosity: int, log_format: str, secrets: Iterable[str] = (), debug: bool = False
) -> None:
    level = LEVELS[max(-2, min(1, verbosity))]
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif err.is_terminal:
        handler = RichHandler(console=err, show_path=debug, rich_tracebacks=False, markup=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(secrets))
    route_logs(handler, level, ("bibev", "bench"))
    # stamina would log each scheduled retry as a bare "stamina.retry_scheduled" line with its
    # details out of sight; bibev logs its retries itself, naming what failed and why.
    from stamina.instrumentation import set_on_retry_hooks

    set_on_retry_hooks([])


def mask_secrets(secrets: Iterable[str]) -> None:
    """Mask more secrets in every log line from now on (those a command learns from its own
    options, such as Kafka credentials given with ``--consumer-config``)."""
    values = list(secrets)
    for handler in logging.getLogger("bibev").handlers:
        for found in handler.filters:
            if isinstance(found, SecretFilter):
                found.add(values)
