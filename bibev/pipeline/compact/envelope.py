"""The temp/ line envelope: one JSON object per line wrapping one provider message.

::

    {"provider": "tesla", "format": "fleet-telemetry-json", "vin": "…",
     "received_at": "2025-03-01T10:00:01.200000+00:00", "source": {…}, "payload": <message>}

Compaction adds two keys when it moves a message to the temp folder of another day (see
``docs/compact.md``, "Messages of another day"):

- ``rows_of_day``: only the rows of this UTC day are still to be compacted from this line (the
  message's rows of other days were compacted from the original file);
- ``rerouted_from``: the temp key the line was first read from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from bibev.errors import DataContractError

ROWS_OF_DAY = "rows_of_day"
REROUTED_FROM = "rerouted_from"

# More than microsecond precision: Python's parser stops at six digits, so the rest is cut.
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True)
class Envelope:
    """What compaction needs from one temp line."""

    provider: str
    payload: Any
    received_at: datetime | None
    rows_of_day: date | None


def parse_instant(value: object, *, what: str) -> datetime:
    """An ISO 8601 / RFC 3339 instant as an aware UTC datetime, truncated to microseconds.

    ``Z`` and numeric offsets are understood; a text without an offset is taken as UTC.
    """
    if not isinstance(value, str) or not value.strip():
        raise DataContractError(f"{what} is not a timestamp text", value=repr(value)[:64])
    text = _FRACTION.sub(r"\1", value.strip())
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DataContractError(f"unparseable {what}", value=value[:64]) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_envelope(raw: bytes) -> Envelope:
    """One temp line → its envelope; ``DataContractError`` saying what is wrong with it."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataContractError(f"not JSON ({exc})") from None
    except RecursionError:
        raise DataContractError("JSON nested too deeply to read") from None
    if not isinstance(doc, dict):
        raise DataContractError("line is not a JSON object", value=type(doc).__name__)
    provider = doc.get("provider")
    if not isinstance(provider, str) or not provider:
        raise DataContractError("envelope has no provider", value=provider)
    if "payload" not in doc:
        raise DataContractError("envelope has no payload")
    received = doc.get("received_at")
    received_at = None if received is None else parse_instant(received, what="received_at")
    only = doc.get(ROWS_OF_DAY)
    return Envelope(provider, doc["payload"], received_at, None if only is None else _day(only))


def _day(value: object) -> date:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else _bad_day(value)
    except ValueError:
        return _bad_day(value)


def _bad_day(value: object) -> date:
    raise DataContractError(f"{ROWS_OF_DAY} is not a YYYY-MM-DD day", value=repr(value)[:40])


def rerouted_line(raw: bytes, *, day: date, source: str) -> bytes:
    """The line as it is written to the temp folder of ``day``: the same envelope and payload,
    marked with ``rows_of_day`` and ``rerouted_from`` (``raw`` must be a JSON object)."""
    doc = json.loads(raw)
    doc[ROWS_OF_DAY] = day.isoformat()
    doc.setdefault(REROUTED_FROM, source)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
