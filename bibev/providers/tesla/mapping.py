"""Tesla keys → canonical clean columns, and the units of the raw keys.

The table is declarative: each ``SignalMap`` converts one key row by row
(``canonical = value * scale + offset``, enum names case-insensitive; a name missing from an
``enum`` table maps to null). Where several keys feed one column they are listed in order of
preference, and the ``note`` says when the cleaner must do more than take the first non-null.
"""

from __future__ import annotations

from bibev.providers.base import SignalMap

MILE_KM = 1.609344

# Units of raw Fleet Telemetry keys, stored on the compressed rows (the vehicle always sends
# miles and mph, whatever the driver's display setting).
TELEMETRY_UNITS: dict[str, str] = {
    **dict.fromkeys(("Soc", "BatteryLevel", "ChargeLimitSoc", "BrickSocMinPercent"), "%"),
    **dict.fromkeys(
        ("Odometer", "RatedRange", "EstBatteryRange", "IdealBatteryRange", "MilesToArrival"), "mi"
    ),
    **dict.fromkeys(("VehicleSpeed", "CurrentLimitMph"), "mph"),
    **dict.fromkeys(("PackVoltage", "BrickVoltageMax", "BrickVoltageMin", "ChargerVoltage"), "V"),
    **dict.fromkeys(("PackCurrent", "ChargeAmps", "ChargeCurrentRequest"), "A"),
    **dict.fromkeys(("ChargeCurrentRequestMax",), "A"),
    **dict.fromkeys(("ACChargingPower", "DCChargingPower"), "kW"),
    **dict.fromkeys(
        (
            "ACChargingEnergyIn",
            "DCChargingEnergyIn",
            "EnergyRemaining",
            "LifetimeEnergyUsed",
            "LifetimeEnergyUsedDrive",
            "LifetimeEnergyGainedRegen",
            "LifetimeEnergyChargedKwh",
            "LifetimeDcChargeEnergyKwh",
            "NominalFullPackEnergyKwh",
        ),
        "kWh",
    ),
    **dict.fromkeys(("ModuleTempMax", "ModuleTempMin", "InsideTemp", "OutsideTemp"), "°C"),
    **dict.fromkeys(
        (
            "Location.latitude",
            "Location.longitude",
            "OriginLocation.latitude",
            "OriginLocation.longitude",
            "DestinationLocation.latitude",
            "DestinationLocation.longitude",
            "GpsHeading",
        ),
        "°",
    ),
    "TimeToFullCharge": "h",
}

# Units of Fleet API ``vehicle_data`` leaves (dotted paths); every ``*.timestamp`` is epoch ms.
FLEET_API_UNITS: dict[str, str] = {
    **dict.fromkeys(
        (
            "charge_state.battery_level",
            "charge_state.usable_battery_level",
            "charge_state.charge_limit_soc",
            "charge_state.charge_limit_soc_min",
            "charge_state.charge_limit_soc_max",
            "charge_state.charge_limit_soc_std",
        ),
        "%",
    ),
    **dict.fromkeys(
        (
            "vehicle_state.odometer",
            "charge_state.battery_range",
            "charge_state.est_battery_range",
            "charge_state.ideal_battery_range",
            "charge_state.charge_miles_added_rated",
            "charge_state.charge_miles_added_ideal",
        ),
        "mi",
    ),
    "drive_state.speed": "mph",
    "drive_state.gps_as_of": "s",
    "charge_state.charge_rate": "mph",
    **dict.fromkeys(("charge_state.charger_power", "drive_state.power"), "kW"),
    "charge_state.charge_energy_added": "kWh",
    "charge_state.charger_voltage": "V",
    **dict.fromkeys(
        (
            "charge_state.charger_actual_current",
            "charge_state.charge_current_request",
            "charge_state.charge_current_request_max",
            "charge_state.charger_pilot_current",
            "charge_state.charge_amps",
        ),
        "A",
    ),
    **dict.fromkeys(
        (
            "drive_state.latitude",
            "drive_state.longitude",
            "drive_state.native_latitude",
            "drive_state.native_longitude",
            "drive_state.heading",
        ),
        "°",
    ),
    **dict.fromkeys(("climate_state.inside_temp", "climate_state.outside_temp"), "°C"),
    "charge_state.time_to_full_charge": "h",
    "charge_state.minutes_to_full_charge": "min",
}

DETAILED_CHARGE_STATE: dict[str, str] = {
    **{
        f"DetailedChargeState{name}": state
        for name, state in (
            ("Disconnected", "disconnected"),
            ("NoPower", "plugged"),
            ("Starting", "charging"),
            ("Charging", "charging"),
            ("Complete", "complete"),
            ("Stopped", "stopped"),
            ("Unknown", "unknown"),
        )
    },
}
# The same vocabulary without a prefix: Fleet API ``charging_state`` and string-typed values.
CHARGE_STATE_NAMES: dict[str, str] = {
    name.removeprefix("DetailedChargeState"): state for name, state in DETAILED_CHARGE_STATE.items()
}
CHARGING_STATE_MAP: dict[str, str] = {
    **DETAILED_CHARGE_STATE,
    **CHARGE_STATE_NAMES,
    **{f"ChargeState{name}": state for name, state in CHARGE_STATE_NAMES.items()},
}
GEAR_MAP: dict[str, str] = {
    **{f"ShiftState{gear}": gear for gear in "PRND"},
    **{gear: gear for gear in "PRND"},
}
_CHARGER_TYPES = {
    "Supercharger": "dc",
    "CHAdeMO": "dc",
    "GB": "dc",
    "Combo": "dc",
    "ACSingleWireCAN": "ac",
    "MCSingleWireCAN": "ac",
}
CHARGER_TYPE_MAP: dict[str, str] = {
    **{f"FastCharger{name}": kind for name, kind in _CHARGER_TYPES.items()},
    **_CHARGER_TYPES,
}
FAST_CHARGER_PRESENT_MAP: dict[str, str] = {"true": "dc", "false": "none"}

_KIND_NOTE = (
    "'none' from a false FastChargerPresent while charging_state is charging means an AC "
    "session: the cleaner sets 'ac' then. A fast-charger type, when present, wins."
)
_POWER_NOTE = (
    "AC and DC each have their own key and the idle one reads 0: take the DC key when "
    "charger_kind is dc, the AC key otherwise (the larger one when the kind is unknown)."
)
_ENERGY_NOTE = (
    "Battery-side per-session counter that resets: take the DC key when charger_kind is dc and "
    "ignore ACChargingEnergyIn during DC sessions, the AC key during AC sessions, and the key "
    "of the last session's kind while unplugged."
)

MAPPING: tuple[SignalMap, ...] = (
    # Fleet Telemetry
    SignalMap("Soc", "soc_pct", note="BMS state of charge (decimal); BatteryLevel is the display"),
    SignalMap("Odometer", "odometer_km", scale=MILE_KM, note="always miles"),
    SignalMap("VehicleSpeed", "speed_kmh", scale=MILE_KM, note="mph"),
    SignalMap("Gear", "gear", enum=GEAR_MAP, cast="str", note="Invalid/SNA/Unknown → null"),
    SignalMap("DetailedChargeState", "charging_state", enum=CHARGING_STATE_MAP, cast="str"),
    SignalMap(
        "ChargeState",
        "charging_state",
        enum=CHARGING_STATE_MAP,
        cast="str",
        note="deprecated by the vehicle: only where DetailedChargeState is absent",
    ),
    SignalMap("FastChargerType", "charger_kind", enum=CHARGER_TYPE_MAP, cast="str"),
    SignalMap(
        "FastChargerPresent",
        "charger_kind",
        enum=FAST_CHARGER_PRESENT_MAP,
        cast="bool",
        note=_KIND_NOTE,
    ),
    SignalMap("DCChargingPower", "charging_power_kw", note=_POWER_NOTE),
    SignalMap("ACChargingPower", "charging_power_kw", note=_POWER_NOTE),
    SignalMap("DCChargingEnergyIn", "energy_added_kwh", note=_ENERGY_NOTE),
    SignalMap("ACChargingEnergyIn", "energy_added_kwh", note=_ENERGY_NOTE),
    SignalMap("PackVoltage", "pack_voltage_v"),
    SignalMap("PackCurrent", "pack_current_a", note="sign as the vehicle reports it"),
    SignalMap("EnergyRemaining", "energy_remaining_kwh"),
    SignalMap("ModuleTempMin", "battery_temp_min_c", note="documented int, often sent as double"),
    SignalMap("ModuleTempMax", "battery_temp_max_c", note="documented int, often sent as double"),
    SignalMap("OutsideTemp", "outside_temp_c"),
    SignalMap("RatedRange", "range_km", scale=MILE_KM, note="always miles"),
    SignalMap("Location.latitude", "latitude"),
    SignalMap("Location.longitude", "longitude"),
    SignalMap("ChargeLimitSoc", "charge_limit_pct"),
    # Fleet API vehicle_data
    SignalMap("charge_state.battery_level", "soc_pct", note="integer, as displayed"),
    SignalMap("vehicle_state.odometer", "odometer_km", scale=MILE_KM, note="always miles"),
    SignalMap("drive_state.speed", "speed_kmh", scale=MILE_KM, note="mph; null when parked"),
    SignalMap("drive_state.shift_state", "gear", enum=GEAR_MAP, cast="str"),
    SignalMap("charge_state.charging_state", "charging_state", enum=CHARGING_STATE_MAP, cast="str"),
    SignalMap("charge_state.fast_charger_type", "charger_kind", enum=CHARGER_TYPE_MAP, cast="str"),
    SignalMap(
        "charge_state.fast_charger_present",
        "charger_kind",
        enum=FAST_CHARGER_PRESENT_MAP,
        cast="bool",
        note=_KIND_NOTE,
    ),
    SignalMap("charge_state.charger_power", "charging_power_kw", note="integer kW, AC or DC"),
    SignalMap(
        "charge_state.charge_energy_added",
        "energy_added_kwh",
        note="per-session counter; stays at the last session's value after unplugging",
    ),
    SignalMap("charge_state.battery_range", "range_km", scale=MILE_KM, note="rated, miles"),
    SignalMap("drive_state.latitude", "latitude"),
    SignalMap("drive_state.longitude", "longitude"),
    SignalMap("charge_state.charge_limit_soc", "charge_limit_pct"),
    SignalMap("climate_state.outside_temp", "outside_temp_c"),
)
