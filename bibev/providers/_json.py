"""Small pure helpers shared by the JSON providers (BMW, High Mobility, Mobilisight).

Timestamps are read and written here so that every adapter agrees on one rule: an ISO-8601
string (``Z`` or an offset; a naive string is taken as UTC) or a number of seconds or
milliseconds since the epoch, always returned as an aware UTC ``datetime``.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from bibev.errors import DataContractError
from bibev.providers.base import Value

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Epoch numbers above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_EPOCH_MS_THRESHOLD = 1e11
_ID_NAMESPACE = uuid.UUID("6f0b7f0e-3c52-4f8e-9a55-2f4f4a1d0b11")


def parse_ts(raw: Any, *, source: str) -> datetime:
    """Read one provider timestamp as an aware UTC datetime, or raise ``DataContractError``."""
    if isinstance(raw, datetime):
        return raw.replace(tzinfo=UTC) if raw.tzinfo is None else raw.astimezone(UTC)
    if isinstance(raw, bool):
        raise DataContractError("timestamp is a boolean", value=raw, source=source)
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise DataContractError("timestamp is not a finite number", value=raw, source=source)
        seconds = raw / 1000 if abs(raw) >= _EPOCH_MS_THRESHOLD else raw
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise DataContractError("timestamp out of range", value=raw, source=source) from exc
    if isinstance(raw, str):
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise DataContractError("unreadable timestamp", value=raw, source=source) from exc
    raise DataContractError("missing or unreadable timestamp", value=raw, source=source)


def format_ts(ts: datetime) -> str:
    """Write a timestamp the way the providers do: ISO-8601 UTC with ``Z``, milliseconds when
    the instant has them, microseconds only when needed (so ``parse_ts`` gives it back exactly)."""
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if ts.microsecond == 0:
        spec = "seconds"
    elif ts.microsecond % 1000 == 0:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    return ts.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def leaf_value(raw: Any) -> Value:
    """A JSON scalar as a row value, keeping its type. An integer outside int64 (which no
    typed column can hold) is kept as its decimal string, so nothing is lost."""
    if isinstance(raw, int) and not isinstance(raw, bool) and not INT64_MIN <= raw <= INT64_MAX:
        return str(raw)
    if raw is None or isinstance(raw, bool | int | float | str):
        return raw
    return str(raw)


def iter_leaves(node: Any, prefix: str) -> Iterator[tuple[str, Value]]:
    """Every scalar under ``node`` with its dotted path (list items by position: ``a.0.b``).
    An empty object or list is one ``None`` leaf, so its presence is not lost."""
    if isinstance(node, Mapping):
        if not node:
            yield prefix, None
        for name, child in node.items():
            yield from iter_leaves(child, join_key(prefix, str(name)))
    elif isinstance(node, list):
        if not node:
            yield prefix, None
        for index, child in enumerate(node):
            yield from iter_leaves(child, join_key(prefix, str(index)))
    else:
        yield prefix, leaf_value(node)


def join_key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def load_message(payload: Any, *, what: str, source: str) -> Mapping[str, Any]:
    """A message as a JSON object: a dict as it is, JSON text (``str`` or ``bytes``, as an MQTT
    or Kafka payload arrives) parsed; anything else is a ``DataContractError``."""
    if isinstance(payload, bytes | bytearray | memoryview):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataContractError(f"{what} is not UTF-8 text", source=source) from exc
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise DataContractError(
                f"{what} is not JSON", value=payload[:80], source=source
            ) from exc
    return require_object(payload, what=what, source=source)


def require_object(raw: Any, *, what: str, source: str) -> Mapping[str, Any]:
    """``raw`` as a JSON object, or ``DataContractError`` saying what was expected."""
    if not isinstance(raw, Mapping):
        raise DataContractError(
            f"{what} is not a JSON object", value=type(raw).__name__, source=source
        )
    return raw


def require_vin(raw: Any, *, source: str) -> str:
    """The message's VIN: a non-empty string (its ISO 3779 check belongs to the storage core)."""
    if not isinstance(raw, str) or not raw.strip():
        raise DataContractError("message has no VIN", value=raw, source=source)
    return raw.strip()


def stable_id(*parts: Any) -> str:
    """A deterministic id (UUID 5) for encoders that must invent one: same input, same id."""
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()
    return str(uuid.uuid5(_ID_NAMESPACE, digest))


def normalise_token(raw: str) -> str:
    """An enum word in one spelling: lower case, ``-`` and spaces as ``_``."""
    return raw.strip().lower().replace("-", "_").replace(" ", "_")


# --- unit words ---------------------------------------------------------------------------

#: Unit spellings the providers send (lower case) → (canonical unit, factor to it).
UNIT_WORDS: dict[str, tuple[str, float]] = {
    "km": ("km", 1.0),
    "kilometers": ("km", 1.0),
    "kilometres": ("km", 1.0),
    "m": ("km", 0.001),
    "meters": ("km", 0.001),
    "mi": ("km", 1.609344),
    "miles": ("km", 1.609344),
    "km/h": ("km/h", 1.0),
    "kmh": ("km/h", 1.0),
    "kilometers_per_hour": ("km/h", 1.0),
    "mph": ("km/h", 1.609344),
    "miles_per_hour": ("km/h", 1.609344),
    "w": ("kW", 0.001),
    "watts": ("kW", 0.001),
    "kw": ("kW", 1.0),
    "kilowatts": ("kW", 1.0),
    "wh": ("kWh", 0.001),
    "watt_hours": ("kWh", 0.001),
    "kwh": ("kWh", 1.0),
    "kilowatt_hours": ("kWh", 1.0),
    "v": ("V", 1.0),
    "volts": ("V", 1.0),
    "a": ("A", 1.0),
    "amperes": ("A", 1.0),
    "°c": ("°C", 1.0),
    "c": ("°C", 1.0),
    "celsius": ("°C", 1.0),
    "%": ("%", 1.0),
    "percent": ("%", 1.0),
}


def unit_factor(unit: str | None, canonical: str) -> float | None:
    """The factor that turns a value sent in ``unit`` into ``canonical`` (``"miles"``, ``"km"``
    → 1.609344), ``None`` if the unit word is unknown or measures something else. A mapping's
    ``scale`` assumes the provider's usual unit; this is how a row sent in another unit (High
    Mobility ``diagnostics.odometer`` in ``miles``) is read correctly."""
    if unit is None:
        return None
    found = UNIT_WORDS.get(unit.strip().lower())
    if found is None or found[0] != canonical:
        return None
    return found[1]
