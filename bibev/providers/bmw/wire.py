"""BMW CarData wire formats: encoders (used by the simulator) and the flattener.

Two shapes are read:

* ``cardata-rest``: the body of ``GET /customers/vehicles/{vin}/telematicData``,
  ``{"telematicData": {key: {"value": "78", "unit": "%", "timestamp": "…"}}}``. Values are
  strings. The body carries no VIN, so the ingest core stores it wrapped with the VIN it asked
  for: ``{"vin": VIN, "telematicData": {…}}`` (any other top-level field of the body is kept
  next to it).
* ``cardata-stream``: one MQTT message, ``{"vin", "entityId", "topic", "timestamp",
  "data": {key: {"timestamp", "value", "unit"}}}``, with typed values and partial updates.

Rows: ``key`` is BMW's dotted key, ``value`` the value exactly as sent (``"78"`` stays a
string), ``unit`` the entry's unit, ``ts`` the entry's own timestamp, else the message
timestamp (stream) or ``received_at``. An object or list value is flattened below its key
(``key.sub``, ``key.0``). Any other field of an entry is kept as ``key.<field>``; any unknown
top-level field as a row of its own name. ``message_id`` is the stream's ``entityId`` (BMW
documents no per-message id; REST rows have none). ``topic`` is not kept: it is the delivery
address ``{gcid}/{vin}`` and lives in the raw envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bibev.errors import DataContractError
from bibev.providers._json import (
    format_ts,
    iter_leaves,
    join_key,
    leaf_value,
    load_message,
    parse_ts,
    require_object,
    require_vin,
    stable_id,
)
from bibev.providers.base import FlatRow

REST = "cardata-rest"
STREAM = "cardata-stream"

#: Units the encoders write when the caller gives a bare value for one of these keys.
DEFAULT_UNITS: dict[str, str] = {
    "vehicle.drivetrain.batteryManagement.header": "%",
    "vehicle.powertrain.electric.battery.stateOfCharge.displayed": "%",
    "vehicle.vehicle.travelledDistance": "km",
    "vehicle.drivetrain.electricEngine.kombiRemainingElectricRange": "km",
    "vehicle.drivetrain.electricEngine.charging.power": "W",
    "vehicle.drivetrain.batteryManagement.maxEnergy": "kWh",
    "vehicle.drivetrain.batteryManagement.batterySizeMax": "kWh",
}

_ENTRY_FIELDS = ("value", "unit", "timestamp")
_STREAM_ENVELOPE: tuple[str, ...] = ("vin", "entityId", "topic", "timestamp", "data")


# --- encoders -----------------------------------------------------------------------------


def _entry(key: str, raw: Any, ts: datetime, *, as_string: bool) -> dict[str, Any]:
    """One ``{"value", "unit", "timestamp"}`` entry. ``raw`` is a bare value, a
    ``(value, unit)`` pair or a dict with any of ``value``/``unit``/``timestamp``."""
    if isinstance(raw, Mapping):
        value, own_ts = raw.get("value"), raw.get("timestamp", ts)
        unit = raw.get("unit", DEFAULT_UNITS.get(key))
    elif isinstance(raw, tuple):
        (value, unit), own_ts = raw, ts
    else:
        value, unit, own_ts = raw, DEFAULT_UNITS.get(key), ts
    if as_string and value is not None:
        value = rest_string(value)
    stamp = format_ts(own_ts) if isinstance(own_ts, datetime) else own_ts
    return {"value": value, "unit": unit, "timestamp": stamp}


def rest_string(value: Any) -> str:
    """How the REST API spells a value: ``"78"``, ``"78.5"``, ``"true"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_rest(
    vin: str, ts: datetime, values: Mapping[str, Any], *, include_vin: bool = True
) -> dict[str, Any]:
    """A ``telematicData`` REST body for ``values`` (BMW key → value), every value as a string.

    A value is a bare value (its unit from ``DEFAULT_UNITS``), a ``(value, unit)`` pair, or a
    dict ``{"value", "unit", "timestamp"}`` to give one key its own timestamp. Every entry is
    stamped ``ts`` unless it has its own. With ``include_vin`` (default) the body is wrapped as
    the ingest core stores it, ``{"vin": …, "telematicData": …}``; without it, it is the bare
    HTTP response body.
    """
    data = {key: _entry(key, raw, ts, as_string=True) for key, raw in values.items()}
    return {"vin": vin, "telematicData": data} if include_vin else {"telematicData": data}


def encode_stream(
    vin: str,
    ts: datetime,
    values: Mapping[str, Any],
    *,
    gcid: str | None = None,
    entity_id: str | None = None,
) -> dict[str, Any]:
    """One CarData MQTT streaming message for ``values`` (BMW key → typed value).

    Values are written with their own JSON type; the accepted forms are those of
    ``encode_rest``. ``topic`` is ``{gcid}/{vin}`` (just ``vin`` without a gcid). ``entityId``
    defaults to a deterministic id derived from the VIN, the time and the keys.
    """
    data = {key: _entry(key, raw, ts, as_string=False) for key, raw in values.items()}
    return {
        "vin": vin,
        "entityId": entity_id or stable_id("bmw", vin, format_ts(ts), sorted(values)),
        "topic": f"{gcid}/{vin}" if gcid else vin,
        "timestamp": format_ts(ts),
        "data": data,
    }


# --- flattening ---------------------------------------------------------------------------


def detect_format(payload: Mapping[str, Any]) -> str:
    """``cardata-rest`` or ``cardata-stream``, or ``DataContractError`` for anything else."""
    if "telematicData" in payload:
        return REST
    if "data" in payload:
        return STREAM
    if "exveErrorId" in payload or "exveErrorMsg" in payload:
        raise DataContractError(
            f"message is a BMW error response ({payload.get('exveErrorId')}), not data",
            value=payload.get("exveErrorMsg"),
            source="bmw",
        )
    raise DataContractError(
        "neither 'telematicData' (REST) nor 'data' (stream) in message", source="bmw"
    )


def flatten_message(payload: Any, *, received_at: datetime | None) -> list[FlatRow]:
    """Rows of one REST body (wrapped with its VIN) or one streaming message."""
    message = load_message(payload, what="BMW message", source="bmw")
    fmt = detect_format(message)
    vin = require_vin(message.get("vin"), source=f"bmw {fmt}")
    if fmt == STREAM:
        entries_raw, envelope = message.get("data"), _STREAM_ENVELOPE
        raw_ts = message.get("timestamp")
        message_ts = None if raw_ts is None else parse_ts(raw_ts, source="bmw stream timestamp")
        entity = message.get("entityId")
        message_id = None if entity is None else str(entity)
    else:
        entries_raw, envelope = message.get("telematicData"), ("vin", "telematicData")
        message_ts, message_id = None, None
    entries = require_object(entries_raw, what=f"{fmt} entries", source="bmw")
    fallback = message_ts or received_at
    rows: list[FlatRow] = []
    for key, entry in entries.items():
        rows.extend(_entry_rows(vin, str(key), entry, fallback, message_id))
    for name, raw in message.items():
        if name not in envelope:
            ts = _need_ts(fallback, name)
            rows.extend(
                FlatRow(vin, ts, path, value, None, message_id)
                for path, value in iter_leaves(raw, name)
            )
    return rows


def _entry_rows(
    vin: str, key: str, entry: Any, fallback: datetime | None, message_id: str | None
) -> list[FlatRow]:
    if not isinstance(entry, Mapping):
        # A bare value instead of an entry object: keep it, there is just no unit or timestamp.
        entry = {"value": entry}
    raw_ts = entry.get("timestamp")
    ts = parse_ts(raw_ts, source=f"bmw {key}") if raw_ts is not None else _need_ts(fallback, key)
    unit = entry.get("unit")
    unit = None if unit is None else str(unit)
    raw_value = entry.get("value")
    rows: list[FlatRow]
    if isinstance(raw_value, Mapping | list):
        rows = [
            FlatRow(vin, ts, path, v, unit, message_id) for path, v in iter_leaves(raw_value, key)
        ]
    else:
        rows = [FlatRow(vin, ts, key, leaf_value(raw_value), unit, message_id)]
    for name, extra in entry.items():
        if name not in _ENTRY_FIELDS:
            rows.extend(
                FlatRow(vin, ts, path, v, None, message_id)
                for path, v in iter_leaves(extra, join_key(key, str(name)))
            )
    return rows


def _need_ts(fallback: datetime | None, key: str) -> datetime:
    if fallback is None:
        raise DataContractError(
            "value has no timestamp and the message gives none (pass received_at)",
            value=key,
            source="bmw",
        )
    return fallback
