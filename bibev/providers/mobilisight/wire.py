"""Mobilisight (Stellantis connected fleet) car-state export v2: encoder and flattener.

The export ``GET {base}/connected-fleet/api/exports/car-states.json?v=2`` streams one car
state per line::

    {"vin", "datetime", "datetimeSending",
     "odometer": {"value", "unit", "datetime"},
     "electricity": {"level": {"percentage"}, "residualAutonomy": {"value", "unit"},
                     "capacity": {"value", "unit": "Wh"},
                     "battery": {"stateOfHealth": {…}},
                     "charging": {"plugged", "status", "mode", "rate", "remainingTime"}}}

There is no public schema, so the reader is tolerant: every leaf becomes a row keyed by its
dotted path (``electricity.level.percentage``; list items by position). ``unit`` next to
``value`` becomes that row's unit (``odometer.value`` with unit ``km``), and an object's
``datetime`` becomes the ``ts`` of every leaf under it (the nearest one wins), falling back to
the car state's ``datetime``; neither is a row of its own. ``datetimeSending`` is kept as a
string row. The export has no message id, so ``message_id`` is ``None``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from bibev.providers._json import (
    format_ts,
    join_key,
    leaf_value,
    load_message,
    parse_ts,
    require_vin,
)
from bibev.providers.base import FlatRow

CAR_STATE = "car-state-v2"

#: Units the encoder writes next to ``<path>.value`` when the caller gives none.
DEFAULT_UNITS: dict[str, str] = {
    "odometer": "km",
    "electricity.residualAutonomy": "km",
    "electricity.capacity": "Wh",
}


# --- encoder ------------------------------------------------------------------------------


def encode_car_state(
    vin: str, ts: datetime, values: Mapping[str, Any], *, sent_at: datetime | None = None
) -> dict[str, Any]:
    """One car state for ``values`` (dotted path → value), e.g.
    ``{"electricity.level.percentage": 78, "odometer.value": 41200.5, "odometer.unit": "km"}``.

    Paths are expanded into nested objects. A ``<path>.value`` without a ``<path>.unit`` gets
    the unit of ``DEFAULT_UNITS`` if it has one. A ``datetime`` value (e.g. for
    ``odometer.datetime``) is written as an ISO string. ``datetime`` is ``ts`` and
    ``datetimeSending`` is ``sent_at`` (default ``ts``).
    """
    state: dict[str, Any] = {
        "vin": vin,
        "datetime": format_ts(ts),
        "datetimeSending": format_ts(sent_at or ts),
    }
    for path, raw in values.items():
        _put(state, path, format_ts(raw) if isinstance(raw, datetime) else raw)
        parent, _, leaf = path.rpartition(".")
        if leaf == "value" and parent in DEFAULT_UNITS and f"{parent}.unit" not in values:
            _put(state, f"{parent}.unit", DEFAULT_UNITS[parent])
    return state


def _put(state: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = state
    for name in parents:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise ValueError(f"path {path!r} goes through the value at {name!r}")
        node = child
    node[leaf] = value


# --- flattening ---------------------------------------------------------------------------


def flatten_message(payload: Any, *, received_at: datetime | None) -> list[FlatRow]:
    """Rows of one car state (``received_at`` is not needed: the state has its own time)."""
    state = load_message(payload, what="Mobilisight car state", source="mobilisight")
    vin = require_vin(state.get("vin"), source="mobilisight car state")
    ts = parse_ts(state.get("datetime"), source="mobilisight car state datetime")
    body = {k: v for k, v in state.items() if k != "vin"}
    return [
        FlatRow(vin, row_ts, key, value, unit, None)
        for key, value, unit, row_ts in _object_leaves(body, "", ts)
    ]


def _object_leaves(
    node: Mapping[str, Any], prefix: str, ts: datetime
) -> Iterator[tuple[str, Any, str | None, datetime]]:
    own = node.get("datetime")
    if own is not None:
        ts = parse_ts(own, source=f"mobilisight {join_key(prefix, 'datetime')}")
    unit = node.get("unit")
    pairs_unit = "value" in node and not isinstance(node["value"], Mapping | list)
    if not node:
        yield prefix, None, None, ts
    for name, child in node.items():
        if name == "datetime" or (name == "unit" and pairs_unit):
            continue
        path = join_key(prefix, str(name))
        if isinstance(child, Mapping):
            yield from _object_leaves(child, path, ts)
        elif isinstance(child, list):
            yield from _list_leaves(child, path, ts)
        else:
            row_unit = (
                None if not (name == "value" and pairs_unit and unit is not None) else str(unit)
            )
            yield path, leaf_value(child), row_unit, ts


def _list_leaves(
    items: list[Any], prefix: str, ts: datetime
) -> Iterator[tuple[str, Any, str | None, datetime]]:
    if not items:
        yield prefix, None, None, ts
    for index, child in enumerate(items):
        path = join_key(prefix, str(index))
        if isinstance(child, Mapping):
            yield from _object_leaves(child, path, ts)
        elif isinstance(child, list):
            yield from _list_leaves(child, path, ts)
        else:
            yield path, leaf_value(child), None, ts
