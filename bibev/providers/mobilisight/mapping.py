"""Mobilisight car-state paths → canonical clean columns.

The export has no public schema: paths follow the known car-state shape, and assumed ones say
so in ``note``.
"""

from __future__ import annotations

from bibev.providers.base import SignalMap

CHARGING_STATUS: dict[str, str] = {
    "disconnected": "disconnected",
    "in-progress": "charging",
    "failure": "error",
    "stopped": "stopped",
    "finished": "complete",
}

#: ``electricity.charging.mode`` (assumed to follow Stellantis' ``No``/``Slow``/``Quick``).
CHARGING_MODE: dict[str, str] = {"no": "none", "slow": "ac", "quick": "dc", "fast": "dc"}

MAPPING: tuple[SignalMap, ...] = (
    SignalMap("electricity.level.percentage", "soc_pct", note="%"),
    SignalMap("odometer.value", "odometer_km", note="km (unit from odometer.unit)"),
    SignalMap("electricity.residualAutonomy.value", "range_km", note="km"),
    SignalMap("electricity.charging.status", "charging_state", enum=CHARGING_STATUS, cast="str"),
    SignalMap(
        "electricity.charging.mode",
        "charger_kind",
        enum=CHARGING_MODE,
        cast="str",
        note="assumed vocabulary No/Slow/Quick",
    ),
    SignalMap(
        "electricity.battery.stateOfHealth.percentage",
        "oem_soh_pct",
        note="% (assumed field name, like electricity.level.percentage)",
    ),
    SignalMap(
        "electricity.battery.stateOfHealth.value",
        "oem_soh_pct",
        note="% (alternative spelling, {value, unit})",
    ),
)

#: Paths read often but deliberately left unmapped (their rows stay in the compressed layer).
UNMAPPED: dict[str, str] = {
    "electricity.capacity.value": "battery capacity in Wh: a vehicle property, not a signal",
    "electricity.charging.rate": "Stellantis reports it as range gained per hour, not power",
    "electricity.charging.plugged": "boolean plug; one key feeds charging_state",
    "electricity.charging.remainingTime": "time to full: no canonical column",
}
