"""High Mobility Auto API properties → canonical clean columns.

Percentages are fractions (``0.78``), hence ``scale=100``. Measured values carry a unit word;
``scale`` assumes the usual one (named in ``note``), and a row sent in another unit
(``diagnostics.odometer`` in ``miles``) is converted with ``bibev.providers._json.unit_factor``
from the row's ``unit`` instead.
"""

from __future__ import annotations

from bibev.providers.base import SignalMap

#: ``charging.status``: the Auto API's 14 values (auto-api 13). ``not_charging`` does not say
#: whether a cable is in (``cable_unplugged`` and ``ready_for_charging`` do): ``unknown``.
CHARGING_STATUS: dict[str, str] = {
    "not_charging": "unknown",
    "charging": "charging",
    "charging_complete": "complete",
    "initialising": "charging",
    "charging_paused": "stopped",
    "charging_error": "error",
    "cable_unplugged": "disconnected",
    "slow_charging": "charging",
    "fast_charging": "charging",
    "discharging": "plugged",
    "foreign_object_detected": "error",
    "conditioning": "plugged",
    "flap_open": "unknown",
    "ready_for_charging": "plugged",
}

CURRENT_TYPE: dict[str, str] = {"alternating_current": "ac", "direct_current": "dc"}

MAPPING: tuple[SignalMap, ...] = (
    SignalMap("charging.battery_level", "soc_pct", scale=100.0, note="fraction 0–1 → %"),
    SignalMap(
        "charging.status", "charging_state", enum=CHARGING_STATUS, cast="str", note="14 values"
    ),
    SignalMap(
        "charging.current_type", "charger_kind", enum=CURRENT_TYPE, cast="str", note="AC or DC"
    ),
    SignalMap("charging.charging_rate", "charging_power_kw", note="kilowatts"),
    SignalMap("charging.battery_current", "pack_current_a", note="amperes, positive = charging"),
    SignalMap("charging.battery_voltage", "pack_voltage_v", note="volts, high-voltage pack"),
    SignalMap(
        "charging.battery_temperature",
        "battery_temp_min_c",
        note="celsius; the one pack temperature is both the lowest and the highest known",
    ),
    SignalMap("charging.battery_temperature", "battery_temp_max_c", note="celsius"),
    SignalMap("charging.estimated_range", "range_km", note="kilometers"),
    SignalMap("charging.battery_energy", "energy_remaining_kwh", note="kilowatt_hours"),
    SignalMap("charging.charge_limit", "charge_limit_pct", scale=100.0, note="fraction → %"),
    SignalMap(
        "charging.state_of_health",
        "oem_soh_pct",
        scale=100.0,
        note="fraction → %; may exceed 100 (kept)",
    ),
    SignalMap("charging_session.energy_charged", "energy_added_kwh", note="kilowatt_hours"),
    SignalMap("diagnostics.odometer", "odometer_km", note="kilometers (or miles: see unit)"),
    SignalMap("diagnostics.speed", "speed_kmh", note="kilometers_per_hour"),
    SignalMap("climate.outside_temperature", "outside_temp_c", note="celsius"),
    SignalMap("vehicle_location.coordinates.latitude", "latitude", note="WGS84 degrees"),
    SignalMap("vehicle_location.coordinates.longitude", "longitude", note="WGS84 degrees"),
)

#: Properties read often but deliberately left unmapped (their rows stay in the compressed layer).
UNMAPPED: dict[str, str] = {
    "diagnostics.battery_voltage": "the 12 V battery, not the pack",
    "charging.charging_rate_kw": "deprecated; charging.charging_rate is used",
    "diagnostics.mileage": "deprecated; diagnostics.odometer is used",
    "charging.plugged_in": "plugged_in/unplugged; one key feeds charging_state",
    "charging.charger_voltage": "charger (grid side) voltage, not the pack",
}
