"""Timestamps as Tesla sends them: RFC 3339 strings, protobuf ``Timestamp`` and epoch millis."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bibev.errors import DataContractError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Below this an epoch number is read as seconds, not milliseconds (1e11 ms is March 1973).
_SECONDS_BELOW = 10**11
# RFC 3339 with any number of fractional digits; Python's parser stops at microseconds.
_FRACTION = re.compile(r"(\.\d{6})\d+")


def from_seconds_nanos(seconds: int, nanos: int, *, source: str) -> datetime:
    """A protobuf ``Timestamp`` as a UTC datetime, truncated to microseconds."""
    try:
        return EPOCH + timedelta(seconds=int(seconds), microseconds=int(nanos) // 1000)
    except (OverflowError, ValueError, TypeError) as exc:
        raise DataContractError(
            "timestamp out of range", value=f"{seconds}s {nanos}ns", source=source
        ) from exc


def parse_rfc3339(text: str, *, source: str) -> datetime:
    """``2025-03-01T10:00:00.123456789Z`` → aware UTC datetime (µs). A string without an offset
    is taken as UTC."""
    cleaned = _FRACTION.sub(r"\1", text.strip())
    if cleaned[-1:] in ("z", "Z"):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise DataContractError("unparseable timestamp", value=text[:64], source=source) from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_epoch(value: object, *, source: str) -> datetime:
    """Epoch milliseconds (a number or a numeric string) → UTC datetime. Numbers too small to be
    milliseconds of this era are read as seconds."""
    number: float
    if isinstance(value, bool) or value is None:
        raise DataContractError("unparseable epoch timestamp", value=value, source=source)
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError as exc:
            raise DataContractError(
                "unparseable epoch timestamp", value=value[:64], source=source
            ) from exc
    else:
        raise DataContractError(
            "unparseable epoch timestamp", value=repr(value)[:64], source=source
        )
    millis = number * 1000 if abs(number) < _SECONDS_BELOW else number
    try:
        return EPOCH + timedelta(milliseconds=millis)
    except (OverflowError, ValueError) as exc:
        raise DataContractError("timestamp out of range", value=value, source=source) from exc


def iso_z(ts: datetime) -> str:
    """Stable text form used in message ids: ``2025-03-01T10:00:00.123000Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
