"""bibev's own simple format, ``sim-json``: ``{"vin", "ts", "signals": {column: value}}``.

Keys are the canonical clean columns, in canonical units and vocabulary, so the ``sim``
adapter's mapping is the identity: a provider-free way to feed the pipeline.
"""

from __future__ import annotations

import polars as pl

from bibev.sim.trace import GEARS
from bibev.sim.wire.fields import ENUM, FLOAT, Field, RenderInput, WireFormat
from bibev.sim.wire.render import (
    COPY_NO_VIN,
    envelope_head,
    field_table,
    finish_tail,
    kafka_source,
    payload_time,
    render_lines,
    value_text,
)

#: Canonical charging state of each charge phase (Disconnected … Stopped).
CHARGING_STATES = ("disconnected", "plugged", "charging", "charging", "complete", "stopped")
CHARGER_KINDS = ("none", "ac", "dc")

FIELDS: tuple[Field, ...] = (
    Field("soc_pct", "soc_pct", FLOAT, 3, interval=30),
    Field("odometer_km", "odometer_km", FLOAT, 3, interval="odometer"),
    Field("speed_kmh", "speed_kmh", FLOAT, 1, interval="speed"),
    Field("gear", "gear", ENUM, names=GEARS, interval=1),
    Field("charging_state", "phase", ENUM, names=CHARGING_STATES, interval=1),
    Field("charger_kind", "charger_kind", ENUM, names=CHARGER_KINDS, interval=1),
    Field("charging_power_kw", "charging_power_kw", FLOAT, 2, interval=10),
    Field("energy_added_kwh", "energy_added_kwh", FLOAT, 3, interval=30),
    Field("pack_voltage_v", "pack_voltage_v", FLOAT, 2, interval=30),
    Field("pack_current_a", "pack_current_a", FLOAT, 1, interval=30),
    Field("energy_remaining_kwh", "energy_remaining_kwh", FLOAT, 2, interval=60),
    Field("battery_temp_min_c", "battery_temp_min_c", FLOAT, 1, interval=60),
    Field("battery_temp_max_c", "battery_temp_max_c", FLOAT, 1, interval=60),
    Field("outside_temp_c", "outside_temp_c", FLOAT, 1, interval=300),
    Field("range_km", "range_km", FLOAT, 2, interval=60),
    Field("latitude", "latitude", FLOAT, 6, interval=10),
    Field("longitude", "longitude", FLOAT, 6, interval=10),
    Field("charge_limit_pct", "charge_limit_pct", FLOAT, 0, interval=60),
    Field("oem_soh_pct", "oem_soh_pct", FLOAT, 1, interval=3600),
)


def _render(inp: RenderInput) -> tuple[pl.Series, pl.Series, pl.Series]:
    names = [f'"{f.key}":' for f in inp.fmt.fields]
    leaf = pl.concat_str(field_table(inp.fmt, names), value_text(inp.fmt))
    vin = (
        pl.when(pl.col("copy") == COPY_NO_VIN)
        .then(pl.lit(""))
        .otherwise(pl.concat_str(pl.lit('"vin":"'), pl.col("vin"), pl.lit('",')))
    )
    head = pl.concat_str(
        envelope_head(inp.fmt, kafka_source(pl.lit("bibev_sim"))),
        pl.lit("{"),
        vin,
        pl.lit('"ts":"'),
        payload_time(pl.col("payload_us")),
        pl.lit('","signals":{'),
    )
    return render_lines(inp, head, finish_tail(pl.lit("}}")), leaf)


SIM_JSON = WireFormat(
    provider="sim",
    name="sim-json",
    fields=FIELDS,
    mode="stream",
    render=_render,
    strings="never",
    topic="bibev_sim",
    description="canonical columns, canonical units",
)

FORMATS = (SIM_JSON,)
