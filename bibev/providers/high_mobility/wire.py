"""High Mobility Auto API wire formats: encoders (used by the simulator) and the flattener.

Two shapes are read:

* ``auto-api-rest``: ``GET /v1/vehicle-data/autoapi-13/{vin}`` →
  ``{"request_id", "vin", "<capability>": {"<property>": {"data", "timestamp"}}}``; a
  multi-instance property is a list of such data points.
* ``push-v2``: ``{"version": 2, "message_id", "application_id", "vin",
  "data": {"<capability>": {"<property>": [{"data", "timestamp"}, …]}}}``.

Rows: ``key`` is ``capability.property``; ``ts`` the data point's ``timestamp``, else
``received_at``; ``message_id`` the push ``message_id`` or the REST ``request_id``. A measured
value ``{"value": 312.0, "unit": "kilometers"}`` is one row with the unit word in ``unit``;
any other structured data is flattened by dotted path (``chassis.tire_pressures.location``,
``chassis.tire_pressures.pressure`` with its unit), all fields of one data point sharing its
``ts``. A data point with a ``failure`` instead of data is one row with ``invalid=True`` and the
failure ``reason`` as value (``"rate_limit"``); its ``description``, if any, is a second invalid
row ``<key>.failure.description``. Any other field of a data point is kept as ``<key>.<field>``
and any unknown top-level field as a row of its own name. ``version`` and ``application_id``
are delivery metadata and are not rows (they stay in the raw envelope).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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

REST = "auto-api-rest"
PUSH = "push-v2"

#: Units the encoders attach when the caller gives a bare number for a measured property.
DEFAULT_UNITS: dict[str, str] = {
    "charging.estimated_range": "kilometers",
    "charging.charging_rate": "kilowatts",
    "charging.battery_current": "amperes",
    "charging.charger_voltage": "volts",
    "charging.battery_voltage": "volts",
    "charging.battery_temperature": "celsius",
    "charging.battery_energy": "kilowatt_hours",
    "diagnostics.odometer": "kilometers",
    "diagnostics.battery_voltage": "volts",
}

_POINT_FIELDS = ("data", "timestamp", "failure")
_REST_ENVELOPE: tuple[str, ...] = ("vin", "request_id")
_PUSH_ENVELOPE: tuple[str, ...] = ("version", "message_id", "application_id", "vin", "data")


@dataclass(frozen=True)
class Failure:
    """A property the vehicle could not deliver (encoders write it as ``failure``)."""

    reason: str
    description: str = ""


# --- encoders -----------------------------------------------------------------------------


def _data_point(key: str, raw: Any, ts: datetime) -> dict[str, Any]:
    if isinstance(raw, Failure):
        failure = {"reason": raw.reason}
        if raw.description:
            failure["description"] = raw.description
        return {"timestamp": format_ts(ts), "failure": failure}
    if isinstance(raw, tuple):
        data: Any = {"value": raw[0], "unit": raw[1]}
    elif isinstance(raw, int | float) and not isinstance(raw, bool) and key in DEFAULT_UNITS:
        data = {"value": raw, "unit": DEFAULT_UNITS[key]}
    else:
        data = raw
    return {"data": data, "timestamp": format_ts(ts)}


def _capabilities(
    values: Mapping[str, Any], ts: datetime, *, as_lists: bool
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, raw in values.items():
        capability, sep, prop = key.partition(".")
        if not sep or not prop:
            raise ValueError(f"High Mobility key {key!r} is not 'capability.property'")
        items = raw if isinstance(raw, list) else [raw]
        points = [_data_point(key, item, ts) for item in items]
        out.setdefault(capability, {})[prop] = points if as_lists or len(points) != 1 else points[0]
    return out


def encode_rest(
    vin: str, ts: datetime, values: Mapping[str, Any], *, request_id: str | None = None
) -> dict[str, Any]:
    """A REST vehicle-data response for ``values`` (``capability.property`` → value).

    A value is a scalar (a number for a measured property in ``DEFAULT_UNITS`` gets that unit:
    ``{"value", "unit"}``), a ``(value, unit_word)`` pair, a dict written verbatim as ``data``,
    a ``Failure``, or a list of these for a multi-instance property. Every data point is
    stamped ``ts``. ``request_id`` defaults to a deterministic id.
    """
    body: dict[str, Any] = {
        "request_id": request_id or stable_id("hm-rest", vin, format_ts(ts), sorted(values)),
        "vin": vin,
    }
    body.update(_capabilities(values, ts, as_lists=False))
    return body


def encode_push(
    vin: str,
    ts: datetime,
    values: Mapping[str, Any],
    *,
    message_id: str | None = None,
    application_id: str = "bibev-sim",
) -> dict[str, Any]:
    """A push v2 message (MQTT/S3/Kafka delivery) for ``values``; every property is a list of
    data points. Values as in ``encode_rest``. ``message_id`` defaults to a deterministic id."""
    return {
        "version": 2,
        "message_id": message_id or stable_id("hm-push", vin, format_ts(ts), sorted(values)),
        "application_id": application_id,
        "vin": vin,
        "data": _capabilities(values, ts, as_lists=True),
    }


# --- flattening ---------------------------------------------------------------------------


def detect_format(payload: Mapping[str, Any]) -> str:
    if isinstance(payload.get("data"), Mapping) and (
        "message_id" in payload or "version" in payload
    ):
        return PUSH
    if "errors" in payload and "vin" not in payload:
        raise DataContractError(
            "message is a High Mobility error response, not data",
            value=payload.get("errors"),
            source="high-mobility",
        )
    return REST


def flatten_message(payload: Any, *, received_at: datetime | None) -> list[FlatRow]:
    """Rows of one REST response or one push v2 message."""
    message = load_message(payload, what="High Mobility message", source="high-mobility")
    fmt = detect_format(message)
    vin = require_vin(message.get("vin"), source=f"high-mobility {fmt}")
    if fmt == PUSH:
        version = message.get("version")
        if version is not None and version != 2 and version != "2":
            raise DataContractError(
                "unsupported push version", value=version, source="high-mobility"
            )
        capabilities: Mapping[str, Any] = require_object(
            message["data"], what="push data", source="high-mobility"
        )
        raw_id, envelope = message.get("message_id"), _PUSH_ENVELOPE
    else:
        capabilities = {k: v for k, v in message.items() if k not in _REST_ENVELOPE}
        raw_id, envelope = message.get("request_id"), _REST_ENVELOPE
    message_id = None if raw_id is None else str(raw_id)
    rows: list[FlatRow] = []
    for capability, properties in capabilities.items():
        if not isinstance(properties, Mapping):
            rows.extend(_loose_rows(vin, str(capability), properties, received_at, message_id))
            continue
        for prop, points in properties.items():
            key = f"{capability}.{prop}"
            for point in points if isinstance(points, list) else [points]:
                rows.extend(_point_rows(vin, key, point, received_at, message_id))
    if fmt == PUSH:
        for name, raw in message.items():
            if name not in envelope:
                rows.extend(_loose_rows(vin, str(name), raw, received_at, message_id))
    return rows


def _loose_rows(
    vin: str, key: str, raw: Any, received_at: datetime | None, message_id: str | None
) -> Iterator[FlatRow]:
    ts = _need_ts(received_at, key)
    for path, value in iter_leaves(raw, key):
        yield FlatRow(vin, ts, path, value, None, message_id)


def _point_rows(
    vin: str, key: str, point: Any, received_at: datetime | None, message_id: str | None
) -> list[FlatRow]:
    if not isinstance(point, Mapping):
        return list(_loose_rows(vin, key, point, received_at, message_id))
    raw_ts = point.get("timestamp")
    ts = (
        parse_ts(raw_ts, source=f"high-mobility {key}")
        if raw_ts is not None
        else _need_ts(received_at, key)
    )
    rows: list[FlatRow] = []
    if "failure" in point:
        rows.extend(_failure_rows(vin, ts, key, point["failure"], message_id))
    if "data" in point or "failure" not in point:
        rows.extend(
            FlatRow(vin, ts, path, value, unit, message_id)
            for path, value, unit in _data_leaves(point.get("data"), key)
        )
    for name, extra in point.items():
        if name not in _POINT_FIELDS:
            rows.extend(
                FlatRow(vin, ts, path, value, None, message_id)
                for path, value in iter_leaves(extra, join_key(key, str(name)))
            )
    return rows


def _failure_rows(
    vin: str, ts: datetime, key: str, failure: Any, message_id: str | None
) -> Iterator[FlatRow]:
    if not isinstance(failure, Mapping):
        yield FlatRow(
            vin, ts, key, None if failure is None else str(failure), None, message_id, True
        )
        return
    reason = failure.get("reason")
    yield FlatRow(vin, ts, key, None if reason is None else str(reason), None, message_id, True)
    for name, extra in failure.items():
        if name != "reason":
            for path, value in iter_leaves(extra, f"{key}.failure.{name}"):
                yield FlatRow(vin, ts, path, value, None, message_id, True)


def _data_leaves(data: Any, key: str) -> Iterator[tuple[str, Any, str | None]]:
    """(path, value, unit) of every leaf of a data value; ``{"value", "unit"}`` is one leaf."""
    if isinstance(data, Mapping):
        value = data.get("value")
        if "value" in data and not isinstance(value, Mapping | list):
            unit = data.get("unit")
            yield key, leaf_value(value), None if unit is None else str(unit)
            rest = {k: v for k, v in data.items() if k not in ("value", "unit")}
        else:
            rest = dict(data)
            if not rest:
                yield key, None, None
        for name, child in rest.items():
            yield from _data_leaves(child, join_key(key, str(name)))
    elif isinstance(data, list):
        if not data:
            yield key, None, None
        for index, child in enumerate(data):
            yield from _data_leaves(child, join_key(key, str(index)))
    else:
        yield key, leaf_value(data), None


def _need_ts(received_at: datetime | None, key: str) -> datetime:
    if received_at is None:
        raise DataContractError(
            "value has no timestamp (pass received_at)", value=key, source="high-mobility"
        )
    return received_at
