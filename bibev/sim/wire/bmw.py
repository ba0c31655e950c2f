"""BMW CarData: the MQTT stream (typed values, partial updates) and the REST ``telematicData``
(every value a string, each with the time it was last measured; the REST answer for a car
asleep repeats its last known values). The REST body is stored wrapped with its VIN, as the
ingest core does: ``{"vin", "telematicData"}``.
"""

from __future__ import annotations

import polars as pl

from bibev.sim.wire.fields import ENUM, FLOAT, INT, Field, RenderInput, WireFormat
from bibev.sim.wire.render import (
    BAD_TIMESTAMP,
    COPY_BAD_TS,
    COPY_NO_VIN,
    envelope_head,
    field_table,
    finish_tail,
    iso_ms,
    mqtt_source,
    payload_time,
    per_datum,
    render_lines,
    url_source,
    value_text,
)

# Tesla-style charge phases (Disconnected … Stopped) in BMW's vocabulary.
CHARGING_STATUS = (
    "NOCHARGING",
    "NOCHARGING",
    "INITIALIZATION",
    "CHARGINGACTIVE",
    "CHARGINGENDED",
    "CHARGINGPAUSED",
)
_D = "vehicle.drivetrain."

FIELDS: tuple[Field, ...] = (
    Field(_D + "batteryManagement.header", "soc_pct", INT, interval=30, unit="%"),
    Field(
        "vehicle.powertrain.electric.battery.stateOfCharge.displayed",
        "displayed_soc_pct",
        INT,
        interval=60,
        unit="%",
    ),
    Field("vehicle.vehicle.travelledDistance", "odometer_km", INT, interval="odometer", unit="km"),
    Field(
        _D + "electricEngine.kombiRemainingElectricRange", "range_km", INT, interval=60, unit="km"
    ),
    Field(
        _D + "electricEngine.charging.power",
        "charging_power_kw",
        FLOAT,
        0,
        scale=1000.0,
        interval=30,
        unit="W",
    ),
    Field(_D + "electricEngine.charging.status", "phase", ENUM, names=CHARGING_STATUS, interval=1),
    Field(
        "vehicle.body.chargingPort.status",
        "plugged",
        ENUM,
        names=("DISCONNECTED", "CONNECTED"),
        interval=1,
    ),
    Field(_D + "batteryManagement.maxEnergy", "usable_kwh", FLOAT, 1, interval=3600, unit="kWh"),
    Field(
        _D + "batteryManagement.batterySizeMax",
        "nominal_wh",
        FLOAT,
        1,
        scale=0.001,
        interval=3600,
        unit="kWh",
    ),
    Field(
        "vehicle.powertrain.electric.battery.stateOfCharge.target",
        "charge_limit_pct",
        INT,
        interval=60,
        unit="%",
    ),
    Field(
        "vehicle.cabin.infotainment.navigation.currentLocation.latitude",
        "latitude",
        FLOAT,
        6,
        interval=30,
    ),
    Field(
        "vehicle.cabin.infotainment.navigation.currentLocation.longitude",
        "longitude",
        FLOAT,
        6,
        interval=30,
    ),
)


def _leaf(inp: RenderInput, stamp: pl.Expr) -> pl.Expr:
    units = ["null" if f.unit is None else f'"{f.unit}"' for f in inp.fmt.fields]
    names = [f'"{f.key}":{{"value":' for f in inp.fmt.fields]
    return pl.concat_str(
        field_table(inp.fmt, names),
        value_text(inp.fmt),
        pl.lit(',"unit":'),
        field_table(inp.fmt, units),
        pl.lit(',"timestamp":"'),
        stamp,
        pl.lit('"}'),
    )


def _vin(prefix: str) -> pl.Expr:
    return (
        pl.when(pl.col("copy") == COPY_NO_VIN)
        .then(pl.lit(""))
        .otherwise(pl.concat_str(pl.lit(f'{prefix}"vin":"'), pl.col("vin"), pl.lit('",')))
    )


def _stream(inp: RenderInput) -> tuple[pl.Series, pl.Series, pl.Series]:
    topic = pl.concat_str(pl.lit("bibev-sim/"), pl.col("vin"))
    head = pl.concat_str(
        envelope_head(inp.fmt, mqtt_source(topic)),
        pl.lit("{"),
        _vin(""),
        pl.lit('"entityId":"'),
        pl.col("message_id"),
        pl.lit('","topic":"'),
        topic,
        pl.lit('","timestamp":"'),
        payload_time(pl.col("payload_us")),
        pl.lit('","data":{'),
    )
    leaf = _leaf(inp, per_datum(inp, payload_time(pl.col("payload_us"))))
    return render_lines(inp, head, finish_tail(pl.lit("}}")), leaf)


def _rest(inp: RenderInput) -> tuple[pl.Series, pl.Series, pl.Series]:
    url = pl.concat_str(
        pl.lit("https://api-cardata.bmwgroup.com/customers/vehicles/"),
        pl.col("vin"),
        pl.lit("/telematicData?containerId=bibev-sim"),
    )
    head = pl.concat_str(
        envelope_head(inp.fmt, url_source(url)), pl.lit("{"), _vin(""), pl.lit('"telematicData":{')
    )
    measured = (
        pl.when(pl.col("copy") == COPY_BAD_TS)
        .then(pl.lit(BAD_TIMESTAMP))
        .otherwise(iso_ms(pl.col("sample_us")))
    )
    leaf = _leaf(inp, per_datum(inp, measured))
    return render_lines(inp, head, finish_tail(pl.lit("}}")), leaf)


STREAM = WireFormat(
    provider="bmw",
    name="cardata-stream",
    fields=FIELDS,
    mode="stream",
    render=_stream,
    description="CarData MQTT streaming messages (typed values, partial updates)",
)
REST = WireFormat(
    provider="bmw",
    name="cardata-rest",
    fields=FIELDS,
    mode="poll",
    render=_rest,
    poll_interval_s=1800,  # 48 requests a day: inside the 50-a-day quota
    strings="always",
    description="CarData telematicData REST answers every 30 minutes (string values)",
)

FORMATS = (STREAM, REST)
