"""Fleet Telemetry ``Payload`` → compressed rows, from protobuf bytes or protojson.

Both encodings go through the same value rules, so one message gives identical rows either way:

- the key is the ``Field`` name (``Soc``); a number the ``.proto`` does not declare is
  ``Field_<n>``, and a protojson name it does not know is kept as sent;
- ``Location`` (any location value) becomes ``<key>.latitude`` and ``<key>.longitude``;
- enum values keep their names (``DetailedChargeStateCharging``); an undeclared enum number
  stays an int;
- ``invalid: true`` is a row with value ``None`` and ``invalid=True``; a datum without a value is
  a row with value ``None``;
- ``floatValue`` is read as the shortest decimal that round-trips in 32 bits (``71.2``, not
  ``71.19999694824219``), as protojson prints it; int64 sent as a JSON string becomes an int;
  string values stay strings;
- a value field the ``.proto`` does not declare is kept with its raw value (an int for varints,
  hex text for bytes) under the datum's key;
- ``isResend: true`` becomes a row ``_isResend``; ``message_id`` is ``{vin}:{createdAt}``.

Unknown fields outside ``Value`` (in ``Datum`` or ``Payload``) are skipped.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from bibev.errors import DataContractError
from bibev.providers.base import FlatRow, Value
from bibev.providers.tesla import vehicle_data_pb2 as pb
from bibev.providers.tesla.codec import (
    SOURCE,
    UNKNOWN_FIELD_PREFIX,
    field_name,
    parse_payload,
    unknown_value_fields,
)
from bibev.providers.tesla.mapping import TELEMETRY_UNITS
from bibev.providers.tesla.timestamps import from_seconds_nanos, iso_z, parse_rfc3339

logger = logging.getLogger(__name__)

# protojson may use the camelCase json name or the proto field name.
_JSON_VALUE_FIELDS: dict[str, str] = {
    **{f.json_name: f.name for f in pb.Value.DESCRIPTOR.fields},
    **{f.name: f.name for f in pb.Value.DESCRIPTOR.fields},
}
_ENUM_FIELDS = {f.name: f.enum_type for f in pb.Value.DESCRIPTOR.fields if f.enum_type is not None}
_INT_FIELDS = {"int_value", "long_value"}
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

Leaf = tuple[str, Value, bool]  # (key suffix or "", value, invalid)


def rows_from_protobuf(raw: bytes) -> list[FlatRow]:
    """Rows of one protobuf ``Payload``."""
    message = parse_payload(raw)
    vin = _require_vin(message.vin)
    if not message.HasField("created_at"):
        raise DataContractError("Payload has no createdAt", value=vin, source=SOURCE)
    ts = from_seconds_nanos(message.created_at.seconds, message.created_at.nanos, source=SOURCE)
    data = [(field_name(d.key), _protobuf_leaves(d)) for d in message.data]
    return _rows(vin, ts, data, message.is_resend)


def rows_from_protojson(doc: dict[str, Any]) -> list[FlatRow]:
    """Rows of one protojson ``Payload`` dict."""
    vin = _require_vin(doc.get("vin"))
    ts = _protojson_ts(doc.get("createdAt", doc.get("created_at")), vin)
    data_doc = doc.get("data", [])
    if not isinstance(data_doc, list):
        raise DataContractError("Payload data is not a list", value=vin, source=SOURCE)
    data = []
    for datum in data_doc:
        if not isinstance(datum, dict):
            raise DataContractError("datum is not an object", value=repr(datum)[:64], source=SOURCE)
        data.append((_json_key(datum.get("key", 0)), _json_leaves(datum.get("value"))))
    is_resend = doc.get("isResend", doc.get("is_resend", False))
    return _rows(vin, ts, data, is_resend is True or is_resend == "true")


def _rows(
    vin: str, ts: datetime, data: list[tuple[str, list[Leaf]]], is_resend: bool
) -> list[FlatRow]:
    message_id = f"{vin}:{iso_z(ts)}"
    rows = []
    for key, leaves in data:
        for suffix, value, invalid in leaves:
            full_key = f"{key}.{suffix}" if suffix else key
            unit = TELEMETRY_UNITS.get(full_key)
            rows.append(FlatRow(vin, ts, full_key, value, unit, message_id, invalid))
    if is_resend:
        rows.append(FlatRow(vin, ts, "_isResend", True, None, message_id))
    return rows


def _require_vin(vin: object) -> str:
    if not isinstance(vin, str) or not vin.strip():
        raise DataContractError("Payload has no vin", value=repr(vin)[:40], source=SOURCE)
    return vin.strip()


def _protojson_ts(value: object, vin: str) -> datetime:
    if isinstance(value, str) and value.strip():
        return parse_rfc3339(value, source=SOURCE)
    if isinstance(value, dict) and "seconds" in value:
        return from_seconds_nanos(value["seconds"], value.get("nanos", 0), source=SOURCE)
    if value is None:
        raise DataContractError("Payload has no createdAt", value=vin, source=SOURCE)
    raise DataContractError("unparseable createdAt", value=repr(value)[:64], source=SOURCE)


def _json_key(key: object) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return field_name(key)
    if isinstance(key, str) and key.strip():
        return key
    return repr(key)


def shortest_float32(value: float) -> float:
    """The shortest decimal that is the same 32-bit float (what protojson prints)."""
    if not math.isfinite(value):
        return value
    try:
        single = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return value
    for precision in range(6, 18):
        candidate = float(f"{single:.{precision}g}")
        if struct.unpack("<f", struct.pack("<f", candidate))[0] == single:
            return candidate
    return single


def _protobuf_leaves(datum: pb.Datum) -> list[Leaf]:
    if not datum.HasField("value"):
        return [("", None, False)]
    value = datum.value
    kind = value.WhichOneof("value")
    if kind is None:
        unknown = unknown_value_fields(value)
        return [("", unknown[0][1], False)] if unknown else [("", None, False)]
    if kind == "location_value":
        loc = value.location_value
        return [("latitude", loc.latitude, False), ("longitude", loc.longitude, False)]
    if kind == "invalid":
        return [("", None, value.invalid)]
    raw = getattr(value, kind)
    if kind in _ENUM_FIELDS:
        return [("", _enum_name(kind, raw), False)]
    if kind == "float_value":
        return [("", shortest_float32(raw), False)]
    return [("", raw, False)]


def _enum_name(kind: str, raw: object) -> Value:
    if isinstance(raw, int) and not isinstance(raw, bool):
        named = _ENUM_FIELDS[kind].values_by_number.get(raw)
        return named.name if named is not None else raw
    return raw if isinstance(raw, str) else repr(raw)


def _json_leaves(value_doc: object) -> list[Leaf]:
    if not isinstance(value_doc, dict) or not value_doc:
        return [("", None, False)] if value_doc in (None, {}) else [("", _scalar(value_doc), False)]
    known = [(k, v) for k, v in value_doc.items() if k in _JSON_VALUE_FIELDS]
    if known:
        json_name, raw = known[0]
        return _json_known(_JSON_VALUE_FIELDS[json_name], raw)
    # A value field this .proto does not declare: keep whatever it carries.
    json_name, raw = next(iter(value_doc.items()))
    if not json_name.startswith(UNKNOWN_FIELD_PREFIX):
        logger.debug("undeclared Fleet Telemetry value field %s", json_name)
    if isinstance(raw, dict):
        return [(suffix, leaf, False) for suffix, leaf in _walk(raw)]
    return [("", _scalar(raw), False)]


def _json_known(kind: str, raw: Any) -> list[Leaf]:
    if kind == "location_value":
        loc = raw if isinstance(raw, dict) else {}
        return [
            ("latitude", _json_double(loc.get("latitude", 0.0)), False),
            ("longitude", _json_double(loc.get("longitude", 0.0)), False),
        ]
    if kind == "invalid":
        return [("", None, raw is True or raw == "true")]
    if kind in _ENUM_FIELDS:
        return [("", _enum_name(kind, raw) if raw is not None else None, False)]
    if kind in _INT_FIELDS:
        return [("", _json_int(raw), False)]
    if kind == "double_value":
        return [("", _json_double(raw), False)]
    if kind == "float_value":
        number = _json_double(raw)
        return [("", shortest_float32(number) if isinstance(number, float) else number, False)]
    return [("", _scalar(raw), False)]


def _json_int(raw: Any) -> Value:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            return raw
    return _scalar(raw)


def _json_double(raw: Any) -> Value:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        if raw in _FLOAT_WORDS:
            return _FLOAT_WORDS[raw]
        try:
            return float(raw.strip())
        except ValueError:
            return raw
    return _scalar(raw)


def _scalar(raw: Any) -> Value:
    """A JSON leaf as a row value; anything else (a list) is kept as its JSON text."""
    if raw is None or isinstance(raw, bool | int | float | str):
        return raw
    return json.dumps(raw, sort_keys=True, default=str)


def _walk(doc: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Value]]:
    for name, child in doc.items():
        path = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(child, dict):
            yield from _walk(child, path)
        else:
            yield path, _scalar(child)
