"""Fleet API ``vehicle_data`` JSON → compressed rows.

Every leaf becomes a row keyed by its dotted path (``charge_state.battery_level``; list items by
index, ``…​.0``), null leaves included (value ``None``: the API said "no value", which is
information). Empty objects and lists have no leaf and give no row. A leaf's time is the
``timestamp`` (epoch ms) of its top-level section (``charge_state``, ``drive_state``, …);
top-level leaves (``vin``, ``state``, …) and sections without one take the response's own
``timestamp``, or else the latest section timestamp. A response with no timestamp at all is
unreadable. ``message_id`` is ``{vin}:{that time}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from bibev.errors import DataContractError
from bibev.providers.base import FlatRow, Value
from bibev.providers.tesla.mapping import FLEET_API_UNITS
from bibev.providers.tesla.timestamps import iso_z, parse_epoch

SOURCE = "tesla fleet api vehicle_data"
SECTIONS = (
    "charge_state",
    "climate_state",
    "drive_state",
    "gui_settings",
    "vehicle_config",
    "vehicle_state",
)


def is_vehicle_data(doc: dict[str, Any]) -> bool:
    """A ``{"response": …}`` envelope or a bare response object with a known section."""
    return "response" in doc or any(section in doc for section in SECTIONS)


def rows_from_vehicle_data(doc: dict[str, Any]) -> list[FlatRow]:
    """Rows of one ``vehicle_data`` response (with or without its ``response`` envelope)."""
    response = doc.get("response", doc) if "response" in doc else doc
    if not isinstance(response, dict):
        reason = doc.get("error") or doc.get("error_description")
        raise DataContractError(
            "vehicle_data has no response object",
            value=str(reason)[:80] if reason else type(response).__name__,
            source=SOURCE,
        )
    vin = response.get("vin")
    if not isinstance(vin, str) or not vin.strip():
        raise DataContractError("vehicle_data has no vin", value=repr(vin)[:40], source=SOURCE)
    vin = vin.strip()
    section_ts = {
        name: parse_epoch(child["timestamp"], source=f"{SOURCE} {name}.timestamp")
        for name, child in response.items()
        if isinstance(child, dict) and child.get("timestamp") is not None
    }
    message_ts = _message_ts(response, section_ts, vin)
    message_id = f"{vin}:{iso_z(message_ts)}"
    rows = []
    for name, child in response.items():
        ts = section_ts.get(name, message_ts)
        for key, value in _leaves(child, name):
            rows.append(FlatRow(vin, ts, key, value, _unit(key), message_id))
    return rows


def _message_ts(response: dict[str, Any], section_ts: dict[str, datetime], vin: str) -> datetime:
    if response.get("timestamp") is not None:
        return parse_epoch(response["timestamp"], source=f"{SOURCE} timestamp")
    if section_ts:
        return max(section_ts.values())
    raise DataContractError("vehicle_data has no timestamp", value=vin, source=SOURCE)


def _leaves(node: Any, path: str) -> Iterator[tuple[str, Value]]:
    if isinstance(node, dict):
        for name, child in node.items():
            yield from _leaves(child, f"{path}.{name}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _leaves(child, f"{path}.{index}")
    elif node is None or isinstance(node, bool | int | float | str):
        yield path, node
    else:
        yield path, repr(node)


def _unit(key: str) -> str | None:
    if key.endswith(".timestamp"):
        return "ms"
    return FLEET_API_UNITS.get(key)
