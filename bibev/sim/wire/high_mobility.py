"""High Mobility Auto API: push v2 messages (each property a list of data points, delivered at
least once: a re-sent message keeps its ``message_id``) and REST vehicle data (the last known
value of every property, with the time it was measured). Percentages are fractions; measured
values carry a unit word.
"""

from __future__ import annotations

import polars as pl

from bibev.sim.wire.fields import ENUM, FLOAT, LOCATION, Field, RenderInput, WireFormat
from bibev.sim.wire.render import (
    BAD_TIMESTAMP,
    COPY_BAD_TS,
    COPY_NO_VIN,
    envelope_head,
    field_table,
    finish_tail,
    iso_ms,
    kafka_source,
    payload_time,
    per_datum,
    render_lines,
    url_source,
    value_text,
)

# Tesla-style charge phases (Disconnected … Stopped) in High Mobility's vocabulary.
STATUS = (
    "cable_unplugged",
    "ready_for_charging",
    "initialising",
    "charging",
    "charging_complete",
    "charging_paused",
)
CURRENT_TYPE = (None, "alternating_current", "direct_current")
_C = ("charging",)

FIELDS: tuple[Field, ...] = (
    Field("battery_level", "soc_pct", FLOAT, 3, scale=0.01, interval=30, path=_C),
    Field("status", "phase", ENUM, names=STATUS, interval=1, path=_C),
    Field("current_type", "charger_kind", ENUM, names=CURRENT_TYPE, interval=1, path=_C),
    Field("plugged_in", "plugged", ENUM, names=("unplugged", "plugged_in"), interval=1, path=_C),
    Field("charging_rate", "charging_power_kw", FLOAT, 2, interval=30, unit="kilowatts", path=_C),
    Field(
        "battery_current",
        "pack_current_a",
        FLOAT,
        1,
        interval=30,
        unit="amperes",
        invalidable=True,
        path=_C,
    ),
    Field(
        "battery_voltage",
        "pack_voltage_v",
        FLOAT,
        1,
        interval=30,
        unit="volts",
        invalidable=True,
        path=_C,
    ),
    Field("battery_temperature", "pack_temp_c", FLOAT, 1, interval=60, unit="celsius", path=_C),
    Field("estimated_range", "range_km", FLOAT, 1, interval=60, unit="kilometers", path=_C),
    Field(
        "battery_energy",
        "energy_remaining_kwh",
        FLOAT,
        2,
        interval=60,
        unit="kilowatt_hours",
        path=_C,
    ),
    Field("charge_limit", "charge_limit_pct", FLOAT, 2, scale=0.01, interval=300, path=_C),
    Field("state_of_health", "oem_soh_pct", FLOAT, 3, scale=0.01, interval=3600, path=_C),
    Field(
        "energy_charged",
        "energy_added_kwh",
        FLOAT,
        3,
        interval=30,
        unit="kilowatt_hours",
        path=("charging_session",),
    ),
    Field(
        "outside_temperature",
        "outside_temp_c",
        FLOAT,
        1,
        interval=300,
        unit="celsius",
        path=("climate",),
    ),
    Field(
        "odometer",
        "odometer_km",
        FLOAT,
        1,
        interval="odometer",
        unit="kilometers",
        path=("diagnostics",),
    ),
    Field(
        "speed",
        "speed_kmh",
        FLOAT,
        0,
        interval="speed",
        unit="kilometers_per_hour",
        path=("diagnostics",),
    ),
    Field("coordinates", "location", LOCATION, interval=30, path=("vehicle_location",)),
)


def _point(inp: RenderInput, stamp: pl.Expr) -> pl.Expr:
    """``{"data": …, "timestamp": …}`` of each datum, or a ``failure`` when invalid."""
    opens = ['{"data":{"value":' if f.unit else '{"data":' for f in inp.fmt.fields]
    closes = [f',"unit":"{f.unit}"}}' if f.unit else "" for f in inp.fmt.fields]
    good = pl.concat_str(
        field_table(inp.fmt, opens),
        value_text(inp.fmt),
        field_table(inp.fmt, closes),
        pl.lit(',"timestamp":"'),
        stamp,
        pl.lit('"}'),
    )
    failure = pl.concat_str(
        pl.lit('{"timestamp":"'),
        stamp,
        pl.lit('","failure":{"reason":"oem_error","description":"value not available"}}'),
    )
    return pl.when(pl.col("invalid")).then(failure).otherwise(good)


def _vin() -> pl.Expr:
    return (
        pl.when(pl.col("copy") == COPY_NO_VIN)
        .then(pl.lit(""))
        .otherwise(pl.concat_str(pl.lit('"vin":"'), pl.col("vin"), pl.lit('",')))
    )


def _push(inp: RenderInput) -> tuple[pl.Series, pl.Series, pl.Series]:
    head = pl.concat_str(
        envelope_head(inp.fmt, kafka_source(pl.lit("hm_push_v2"))),
        pl.lit('{"version":2,"message_id":"'),
        pl.col("message_id"),
        pl.lit('","application_id":"bibev-sim",'),
        _vin(),
        pl.lit('"data":{'),
    )
    names = [f'"{f.key}":[' for f in inp.fmt.fields]
    stamp = per_datum(inp, payload_time(pl.col("payload_us")))
    leaf = pl.concat_str(field_table(inp.fmt, names), _point(inp, stamp), pl.lit("]"))
    return render_lines(inp, head, finish_tail(pl.lit("}}")), leaf)


def _rest(inp: RenderInput) -> tuple[pl.Series, pl.Series, pl.Series]:
    url = pl.concat_str(
        pl.lit("https://api.high-mobility.com/v1/vehicle-data/autoapi-13/"), pl.col("vin")
    )
    head = pl.concat_str(
        envelope_head(inp.fmt, url_source(url)),
        pl.lit('{"request_id":"'),
        pl.col("message_id"),
        pl.lit('",'),
        _vin(),
    )
    measured = (
        pl.when(pl.col("copy") == COPY_BAD_TS)
        .then(pl.lit(BAD_TIMESTAMP))
        .otherwise(iso_ms(pl.col("sample_us")))
    )
    names = [f'"{f.key}":' for f in inp.fmt.fields]
    leaf = pl.concat_str(field_table(inp.fmt, names), _point(inp, per_datum(inp, measured)))
    return render_lines(inp, head, finish_tail(pl.lit("}")), leaf)


PUSH = WireFormat(
    provider="high-mobility",
    name="push-v2",
    fields=FIELDS,
    mode="stream",
    render=_push,
    description="push v2 messages (MQTT/Kafka/S3 delivery), at least once",
)
REST = WireFormat(
    provider="high-mobility",
    name="auto-api-rest",
    fields=FIELDS,
    mode="poll",
    render=_rest,
    strings="never",
    description="REST vehicle data, polled; a sleeping car answers with its last known values",
)

FORMATS = (PUSH, REST)
