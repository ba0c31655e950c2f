"""Mobilisight (Stellantis connected fleet): car states of the v2 export, one per line.

A car state is a snapshot of everything the car reported, sent while it is awake; there is no
public schema, so this follows the known shape (``odometer``, ``electricity.level``,
``residualAutonomy``, ``capacity`` in Wh, ``battery.stateOfHealth``, ``charging``).
"""

from __future__ import annotations

import polars as pl

from bibev.sim.wire.fields import BOOL, ENUM, FLOAT, INT, Field, RenderInput, WireFormat
from bibev.sim.wire.render import (
    COPY_NO_VIN,
    envelope_head,
    field_table,
    finish_tail,
    iso_ms,
    payload_time,
    render_lines,
    url_source,
    value_text,
)

# Tesla-style charge phases (Disconnected … Stopped) in Mobilisight's vocabulary.
STATUS = ("disconnected", "stopped", "in-progress", "in-progress", "finished", "stopped")
MODE = ("No", "Slow", "Quick")
_E = ("electricity",)

FIELDS: tuple[Field, ...] = (
    Field("value", "odometer_km", FLOAT, 1, unit="km", path=("odometer",)),
    Field("percentage", "displayed_soc_pct", INT, path=(*_E, "level")),
    Field("value", "range_km", FLOAT, 0, unit="km", path=(*_E, "residualAutonomy")),
    Field("value", "nominal_wh", FLOAT, 0, unit="Wh", path=(*_E, "capacity")),
    Field("percentage", "oem_soh_pct", FLOAT, 1, path=(*_E, "battery", "stateOfHealth")),
    Field("plugged", "plugged", BOOL, path=(*_E, "charging")),
    Field("status", "phase", ENUM, names=STATUS, path=(*_E, "charging")),
    Field("mode", "charger_kind", ENUM, names=MODE, path=(*_E, "charging")),
    Field("rate", "charge_rate_kmh", FLOAT, 0, path=(*_E, "charging")),
)


def _render(inp: RenderInput) -> tuple[pl.Series, pl.Series, pl.Series]:
    names = [f'"{f.key}":' for f in inp.fmt.fields]
    units = [f',"unit":"{f.unit}"' if f.unit else "" for f in inp.fmt.fields]
    leaf = pl.concat_str(
        field_table(inp.fmt, names), value_text(inp.fmt), field_table(inp.fmt, units)
    )
    url = pl.lit("https://api.mobilisight.com/connected-fleet/api/exports/car-states.json?v=2")
    vin = (
        pl.when(pl.col("copy") == COPY_NO_VIN)
        .then(pl.lit(""))
        .otherwise(pl.concat_str(pl.lit('"vin":"'), pl.col("vin"), pl.lit('",')))
    )
    head = pl.concat_str(
        envelope_head(inp.fmt, url_source(url)),
        pl.lit("{"),
        vin,
        pl.lit('"datetime":"'),
        payload_time(pl.col("payload_us")),
        pl.lit('","datetimeSending":"'),
        iso_ms((pl.col("received_us") // 1000) * 1000 - 50_000),
        pl.lit('",'),
    )
    return render_lines(inp, head, finish_tail(pl.lit("}")), leaf)


CAR_STATE = WireFormat(
    provider="mobilisight",
    name="car-state-v2",
    fields=FIELDS,
    mode="poll",
    render=_render,
    poll_awake_only=True,
    poll_interval_s=120,
    strings="never",
    description="car states of the v2 export, sent while the car is awake",
)

FORMATS = (CAR_STATE,)
