"""Tesla: Fleet Telemetry protojson (streamed) and Fleet API ``vehicle_data`` (polled).

Fleet Telemetry payloads are the protojson ``Payload`` that Tesla's server writes with
``transmit_decoded_records`` (what the Tesla adapter reads and the stream consumer stores):
camelCase value fields, enum names, ``createdAt`` in RFC 3339, ``isResend`` always written.
Distances are miles and speeds mph, as the vehicle always sends them.
"""

from __future__ import annotations

import polars as pl

from bibev.sim.trace import GEARS, PHASES
from bibev.sim.wire.fields import BOOL, ENUM, FLOAT, INT, LOCATION, Field, RenderInput, WireFormat
from bibev.sim.wire.render import (
    COPY_NO_VIN,
    COPY_RESEND,
    envelope_head,
    field_table,
    finish_tail,
    kafka_source,
    payload_time,
    render_lines,
    url_source,
    value_text,
)

MILE_KM = 1.609344
PER_MILE = 1 / MILE_KM
BMS_STATES = ("BMSStateStandby", "BMSStateDrive", "BMSStateCharge")
CAR_TYPES = ("CarTypeUnknown", "CarTypeModelS", "CarTypeModelX", "CarTypeModel3", "CarTypeModelY")

TELEMETRY_FIELDS: tuple[Field, ...] = (
    Field("Soc", "soc_pct", FLOAT, 3, interval=30),
    Field("BatteryLevel", "displayed_soc_pct", INT, interval=60),
    Field("Odometer", "odometer_km", FLOAT, 3, scale=PER_MILE, interval="odometer"),
    Field("VehicleSpeed", "speed_kmh", FLOAT, 0, scale=PER_MILE, interval="speed"),
    Field("Gear", "gear", ENUM, names=tuple(f"ShiftState{g}" for g in GEARS), interval=1),
    Field(
        "DetailedChargeState",
        "phase",
        ENUM,
        names=tuple(f"DetailedChargeState{p}" for p in PHASES),
        interval=1,
    ),
    Field("FastChargerPresent", "fast_charger_present", BOOL, interval=1),
    Field("ChargerPhases", "charger_phases", INT, interval=60),
    Field("ACChargingPower", "ac_power_kw", FLOAT, 2, interval=10),
    Field("DCChargingPower", "dc_power_kw", FLOAT, 2, interval=10),
    Field("ACChargingEnergyIn", "energy_ac_kwh", FLOAT, 3, interval=30),
    Field("DCChargingEnergyIn", "energy_dc_kwh", FLOAT, 3, interval=30),
    Field("PackVoltage", "pack_voltage_v", FLOAT, 2, interval=30, invalidable=True),
    Field("PackCurrent", "pack_current_a", FLOAT, 1, interval=30, invalidable=True),
    Field("ModuleTempMin", "battery_temp_min_c", FLOAT, 1, interval=60, invalidable=True),
    Field("ModuleTempMax", "battery_temp_max_c", FLOAT, 1, interval=60, invalidable=True),
    Field("OutsideTemp", "outside_temp_c", FLOAT, 1, interval=300, invalidable=True),
    Field("RatedRange", "range_km", FLOAT, 2, scale=PER_MILE, interval=60),
    Field("EnergyRemaining", "energy_remaining_kwh", FLOAT, 2, interval=60),
    Field("ChargeLimitSoc", "charge_limit_pct", INT, interval=60),
    Field("Location", "location", LOCATION, interval=10, invalidable=True),
    Field("BMSState", "bms_state", ENUM, names=BMS_STATES, interval=1),
    Field("CarType", "car_type", ENUM, names=CAR_TYPES, interval=3600),
)

_JSON_VALUE = {
    FLOAT: "doubleValue",
    INT: "intValue",
    BOOL: "booleanValue",
    LOCATION: "locationValue",
}
_ENUM_VALUE = {
    "Gear": "shiftStateValue",
    "DetailedChargeState": "detailedChargeStateValue",
    "BMSState": "bmsStateValue",
    "CarType": "carTypeValue",
}


def _telemetry(inp: RenderInput) -> tuple[pl.Series, pl.Series, pl.Series]:
    fields = inp.fmt.fields
    typed = [
        f'{{"key":"{f.key}","value":{{"{_ENUM_VALUE.get(f.key) or _JSON_VALUE[f.kind]}":'
        for f in fields
    ]
    as_text = [f'{{"key":"{f.key}","value":{{"stringValue":' for f in fields]
    invalid = [f'{{"key":"{f.key}","value":{{"invalid":true}}}}' for f in fields]
    leaf = (
        pl.when(pl.col("invalid"))
        .then(field_table(inp.fmt, invalid))
        .otherwise(
            pl.concat_str(
                pl.when(pl.col("as_string"))
                .then(field_table(inp.fmt, as_text))
                .otherwise(field_table(inp.fmt, typed)),
                value_text(inp.fmt),
                pl.lit("}}"),
            )
        )
    )
    head = pl.concat_str(
        envelope_head(inp.fmt, kafka_source(pl.lit("tesla_V"))), pl.lit('{"data":[')
    )
    vin = (
        pl.when(pl.col("copy") == COPY_NO_VIN)
        .then(pl.lit(""))
        .otherwise(pl.concat_str(pl.lit(',"vin":"'), pl.col("vin"), pl.lit('"')))
    )
    resend = pl.when(pl.col("copy") == COPY_RESEND).then(pl.lit("true")).otherwise(pl.lit("false"))
    tail = pl.concat_str(
        pl.lit('],"createdAt":"'),
        payload_time(pl.col("payload_us")),
        pl.lit('"'),
        vin,
        pl.lit(',"isResend":'),
        resend,
        pl.lit("}"),
    )
    return render_lines(inp, head, finish_tail(tail), leaf)


FLEET_TELEMETRY = WireFormat(
    provider="tesla",
    name="fleet-telemetry-json",
    fields=TELEMETRY_FIELDS,
    mode="stream",
    render=_telemetry,
    topic="tesla_V",
    description="Fleet Telemetry protojson records, as streamed on tesla_V",
)

_CHARGE = ("charge_state",)
_DRIVE = ("drive_state",)
FLEET_API_FIELDS: tuple[Field, ...] = (
    Field("battery_level", "displayed_soc_pct", INT, path=_CHARGE),
    Field("usable_battery_level", "displayed_soc_pct", INT, path=_CHARGE),
    Field("battery_range", "range_km", FLOAT, 2, scale=PER_MILE, path=_CHARGE),
    Field("charge_energy_added", "energy_added_kwh", FLOAT, 2, path=_CHARGE),
    Field("charger_power", "charging_power_kw", INT, path=_CHARGE),
    Field("charger_voltage", "charger_voltage_v", INT, path=_CHARGE),
    Field("charger_phases", "charger_phases", INT, path=_CHARGE),
    Field("charging_state", "phase", ENUM, names=PHASES, path=_CHARGE),
    Field("charge_limit_soc", "charge_limit_pct", INT, path=_CHARGE),
    Field("fast_charger_present", "fast_charger_present", BOOL, path=_CHARGE),
    Field(
        "fast_charger_type",
        "charger_kind",
        ENUM,
        names=("<invalid>", "<invalid>", "Supercharger"),
        path=_CHARGE,
    ),
    Field("timestamp", "epoch_ms", INT, path=_CHARGE),
    Field("shift_state", "gear", ENUM, names=GEARS, path=_DRIVE),
    Field("speed", "speed_kmh", INT, scale=PER_MILE, path=_DRIVE),
    Field("power", "drive_power_kw", INT, path=_DRIVE),
    Field("latitude", "latitude", FLOAT, 6, path=_DRIVE),
    Field("longitude", "longitude", FLOAT, 6, path=_DRIVE),
    Field("timestamp", "epoch_ms", INT, path=_DRIVE),
    Field("odometer", "odometer_km", FLOAT, 6, scale=PER_MILE, path=("vehicle_state",)),
    Field("timestamp", "epoch_ms", INT, path=("vehicle_state",)),
    Field("outside_temp", "outside_temp_c", FLOAT, 1, path=("climate_state",)),
    Field("timestamp", "epoch_ms", INT, path=("climate_state",)),
)


def _fleet_api(inp: RenderInput) -> tuple[pl.Series, pl.Series, pl.Series]:
    names = [f'"{f.key}":' for f in inp.fmt.fields]
    leaf = pl.concat_str(field_table(inp.fmt, names), value_text(inp.fmt))
    url = pl.concat_str(
        pl.lit("https://fleet-api.prd.eu.vn.cloud.tesla.com/api/1/vehicles/"),
        pl.col("vin"),
        pl.lit("/vehicle_data"),
    )
    vin = (
        pl.when(pl.col("copy") == COPY_NO_VIN)
        .then(pl.lit(""))
        .otherwise(pl.concat_str(pl.lit('"vin":"'), pl.col("vin"), pl.lit('",')))
    )
    head = pl.concat_str(
        envelope_head(inp.fmt, url_source(url)),
        pl.lit('{"response":{"id":'),
        pl.col("vehicle").cast(pl.String),
        pl.lit(","),
        vin,
        pl.lit('"state":"online",'),
    )
    when = (
        pl.when(pl.col("copy") == 4)
        .then(pl.lit('"soon"'))
        .otherwise((pl.col("payload_us") // 1000).cast(pl.String))
    )
    tail = pl.concat_str(pl.lit(',"timestamp":'), when, pl.lit("}}"))
    return render_lines(inp, head, finish_tail(tail), leaf)


FLEET_API = WireFormat(
    provider="tesla",
    name="fleet-api-json",
    fields=FLEET_API_FIELDS,
    mode="poll",
    render=_fleet_api,
    poll_awake_only=True,
    strings="never",
    description="Fleet API vehicle_data responses, polled while the car is awake",
)

FORMATS = (FLEET_TELEMETRY, FLEET_API)
