"""The ``sim`` provider: bibev's own simple format, ``sim-json``.

One message is ``{"vin": VIN, "ts": RFC 3339, "signals": {column: value}}`` where the keys are
the canonical clean columns, already in canonical units and vocabulary. The mapping is
therefore the identity: it lets the whole pipeline run without any third-party format, and it
is what ``bibev sim --provider sim`` writes. Unknown keys are kept as rows (and left unmapped);
a message without a VIN, a readable ``ts`` or a ``signals`` object is a ``DataContractError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from bibev.errors import DataContractError
from bibev.providers._json import leaf_value, parse_ts, require_object, require_vin
from bibev.providers.base import Adapter, FlatRow, SignalMap

FORMAT = "sim-json"
SOURCE = "sim"

GEARS = ("P", "R", "N", "D")
CHARGING_STATES = ("disconnected", "plugged", "charging", "complete", "stopped", "error", "unknown")
CHARGER_KINDS = ("ac", "dc", "none")

#: Canonical signal columns (``bibev.schema.SIGNAL_COLUMNS``) with their units. Kept here so
#: that listing plugins does not import polars; a test checks both lists agree.
UNITS: dict[str, str | None] = {
    "soc_pct": "%",
    "odometer_km": "km",
    "speed_kmh": "km/h",
    "gear": None,
    "charging_state": None,
    "charger_kind": None,
    "charging_power_kw": "kW",
    "energy_added_kwh": "kWh",
    "pack_voltage_v": "V",
    "pack_current_a": "A",
    "energy_remaining_kwh": "kWh",
    "battery_temp_min_c": "°C",
    "battery_temp_max_c": "°C",
    "outside_temp_c": "°C",
    "range_km": "km",
    "latitude": "°",
    "longitude": "°",
    "charge_limit_pct": "%",
    "oem_soh_pct": "%",
}
_VOCABULARIES = {"gear": GEARS, "charging_state": CHARGING_STATES, "charger_kind": CHARGER_KINDS}


def _signal_map(column: str) -> SignalMap:
    words = _VOCABULARIES.get(column)
    if words:
        return SignalMap(column, column, enum={w: w for w in words}, cast="str", note="identity")
    return SignalMap(column, column, note="identity")


MAPPING: tuple[SignalMap, ...] = tuple(_signal_map(column) for column in UNITS)


def flatten_sim(payload: Any) -> list[FlatRow]:
    """Rows of one ``sim-json`` message: one per signal, all at the message's ``ts``."""
    message = require_object(payload, what="sim message", source=SOURCE)
    vin = require_vin(message.get("vin"), source=SOURCE)
    ts = parse_ts(message.get("ts"), source=f"{SOURCE} ts")
    signals = message.get("signals")
    if not isinstance(signals, Mapping):
        raise DataContractError("sim message has no signals object", value=vin, source=SOURCE)
    message_id = f"{vin}:{ts.isoformat()}"
    return [
        FlatRow(vin, ts, str(key), leaf_value(value), UNITS.get(str(key)), message_id)
        for key, value in signals.items()
    ]


class SimAdapter(Adapter):
    """Messages written by ``bibev sim --provider sim`` (canonical columns, identity mapping)."""

    name: ClassVar[str] = "sim"
    formats: ClassVar[tuple[str, ...]] = (FORMAT,)
    description: ClassVar[str] = "bibev's simulator format: canonical columns, identity mapping"
    mapping: ClassVar[tuple[SignalMap, ...]] = MAPPING

    def flatten(self, payload: Any, *, received_at: datetime | None = None) -> list[FlatRow]:
        """One message → rows; ``received_at`` is not needed (every message has ``ts``)."""
        return flatten_sim(payload)
