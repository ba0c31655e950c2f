"""BMW CarData keys → canonical clean columns.

One key feeds one column, so that two keys never compete for the same instant. Values of the
REST API are strings; ``cast`` says how the cleaner reads them.
"""

from __future__ import annotations

from bibev.providers.base import SignalMap

#: ``vehicle.drivetrain.electricEngine.charging.status`` → canonical charging state.
#: ``NOCHARGING`` only says that no charge is running, not whether a cable is in: it maps to
#: ``unknown`` (the plug lives in ``vehicle.body.chargingPort.status``, kept unmapped).
#: ``INITIALIZATION`` is the start of a charge and counts as charging, like Tesla ``Starting``.
CHARGING_STATUS: dict[str, str] = {
    "NOCHARGING": "unknown",
    "INITIALIZATION": "charging",
    "CHARGINGACTIVE": "charging",
    "CHARGINGPAUSED": "stopped",
    "CHARGINGINTERRUPTED": "stopped",
    "CHARGINGDISRUPTED": "stopped",
    "CHARGINGENDED": "complete",
    "CHARGINGERROR": "error",
    "INVALID": "unknown",
}

MAPPING: tuple[SignalMap, ...] = (
    SignalMap(
        "vehicle.drivetrain.batteryManagement.header",
        "soc_pct",
        note="high-voltage battery state of charge, % (the BMS value, not the displayed one)",
    ),
    SignalMap("vehicle.vehicle.travelledDistance", "odometer_km", note="km"),
    SignalMap(
        "vehicle.drivetrain.electricEngine.kombiRemainingElectricRange",
        "range_km",
        note="electric range shown in the instrument cluster, km",
    ),
    SignalMap(
        "vehicle.drivetrain.electricEngine.charging.power",
        "charging_power_kw",
        scale=0.001,
        note="W → kW",
    ),
    SignalMap(
        "vehicle.drivetrain.electricEngine.charging.status",
        "charging_state",
        enum=CHARGING_STATUS,
        cast="str",
        note="NOCHARGING → unknown: it does not say whether the cable is in",
    ),
    SignalMap(
        "vehicle.powertrain.electric.battery.stateOfCharge.target",
        "charge_limit_pct",
        note="charge target set by the driver, %",
    ),
    SignalMap(
        "vehicle.cabin.infotainment.navigation.currentLocation.latitude",
        "latitude",
        note="WGS84 degrees",
    ),
    SignalMap(
        "vehicle.cabin.infotainment.navigation.currentLocation.longitude",
        "longitude",
        note="WGS84 degrees",
    ),
)

#: Keys read often but deliberately left unmapped (their rows stay in the compressed layer).
_P = "vehicle.drivetrain."
UNMAPPED: dict[str, str] = {
    "vehicle.powertrain.electric.battery.stateOfCharge.displayed": "displayed SoC; soc_pct is BMS",
    _P + "electricEngine.charging.hvStatus": "older vocabulary; charging.status is used",
    "vehicle.body.chargingPort.status": "CONNECTED/DISCONNECTED; one key feeds charging_state",
    _P + "batteryManagement.maxEnergy": "usable energy at 100 %, kWh: no canonical column",
    _P + "batteryManagement.batterySizeMax": "battery size, kWh: no canonical column",
}
