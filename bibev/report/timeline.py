"""A timeline of sessions as inline SVG: one lane per vehicle, one bar per session.

Bars are coloured by kind; a session found inside a telemetry gap (``offline``) is hatched.
Each bar carries a ``<title>`` (the browser's tooltip) with its times and main features.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Any

import polars as pl

COLOURS = {"driving": "#2563eb", "charging": "#16a34a", "idle": "#d1d5db"}
LABEL_W = 140  # the VIN column
PLOT_W = 940
LANE_H = 18
AXIS_H = 20

HATCH = (
    '<defs><pattern id="gap" width="4" height="4" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="2" height="4" fill="#ffffff" '
    'fill-opacity="0.6"/></pattern></defs>'
)


def legend() -> str:
    """The key to the bars' colours, as HTML."""
    items = [f'<span style="background:{COLOURS[kind]}"></span>{kind}' for kind in COLOURS]
    items.append(
        f'<span style="background:repeating-linear-gradient(45deg,{COLOURS["charging"]} 0 3px,'
        '#ffffffaa 3px 5px)"></span>found inside a telemetry gap'
    )
    items.append('<span style="border:1px solid #d1d5db"></span>no session (no telemetry)')
    return f'<p class="legend">{"".join(items)}</p>'


def _tooltip(row: dict[str, Any]) -> str:
    kind = str(row["kind"])
    end = "%H:%M" if row["end"].date() == row["start"].date() else "%Y-%m-%d %H:%M"
    text = f"{kind} {row['start']:%Y-%m-%d %H:%M} → {row['end'].strftime(end)} UTC"
    if row.get("soc_start") is not None and row.get("soc_end") is not None:
        text += f", SoC {row['soc_start']:.0f} → {row['soc_end']:.0f} %"
    if kind == "driving" and row.get("distance_km") is not None:
        text += f", {row['distance_km']:.1f} km"
    if kind == "charging" and row.get("energy_added_kwh") is not None:
        text += f", {row['energy_added_kwh']:.1f} kWh ({row.get('charger_kind') or '?'})"
    if row.get("offline"):
        text += ", found inside a telemetry gap"
    return escape(text)


def _axis(start: datetime, days: int, height: int) -> list[str]:
    parts = []
    for n in range(days + 1):
        x = LABEL_W + PLOT_W * n / days
        parts.append(
            f'<line x1="{x:.1f}" y1="{AXIS_H - 4}" x2="{x:.1f}" y2="{height}" stroke="#9ca3af" '
            'stroke-width="0.5"/>'
        )
        if n < days:
            day = start + timedelta(days=n)
            parts.append(f'<text x="{x + 3:.1f}" y="{AXIS_H - 8}">{day:%a %d %b}</text>')
    return parts


def timeline_svg(segments: pl.DataFrame, start: datetime, days: int) -> str:
    """The sessions between ``start`` and ``start + days`` (cut to that window)."""
    vins = sorted(segments.get_column("vin").unique().to_list()) if segments.height else []
    height = AXIS_H + LANE_H * len(vins)
    span = timedelta(days=days).total_seconds()
    lane = {vin: AXIS_H + LANE_H * i for i, vin in enumerate(vins)}
    parts = [HATCH, *_axis(start, days, height)]
    for vin in vins:
        parts.append(f'<text x="0" y="{lane[vin] + LANE_H - 5}">{escape(vin)}</text>')
    for row in segments.sort("vin", "start").iter_rows(named=True):
        a = max(0.0, (row["start"] - start).total_seconds() / span)
        b = min(1.0, (row["end"] - start).total_seconds() / span)
        if b <= a:
            continue
        x, w, y = LABEL_W + PLOT_W * a, max(PLOT_W * (b - a), 0.5), lane[row["vin"]] + 2
        colour = COLOURS.get(str(row["kind"]), "#9ca3af")
        bar = f'x="{x:.1f}" y="{y}" width="{w:.1f}" height="{LANE_H - 4}"'
        hatch = f'<rect {bar} fill="url(#gap)"/>' if row.get("offline") else ""
        parts.append(f'<g><title>{_tooltip(row)}</title><rect {bar} fill="{colour}"/>{hatch}</g>')
    width = LABEL_W + PLOT_W
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="session timeline">'
        + "".join(parts)
        + "</svg>"
    )
