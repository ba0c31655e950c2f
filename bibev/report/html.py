"""The fleet report as one self-contained HTML page: no script, no request to anywhere.

Sections: the fleet in figures, one row per vehicle, a timeline of every session (inline SVG,
one lane per vehicle, a tooltip per session), session accuracy against a known truth when there
is one (the simulator's), and data quality. Every text that comes from data is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from html import escape
from typing import Any

import polars as pl

from bibev import __version__
from bibev.report.fleet import dropped_by_reason, quality_summary, vehicle_summary
from bibev.report.timeline import legend, timeline_svg


@dataclass
class FleetReport:
    """What the page shows. ``scores`` (from ``score_sessions``), ``feature_errors`` and
    ``vehicles`` (VIN, make, model, nominal capacity) are optional: an empty frame leaves their
    parts out."""

    title: str
    generated_at: datetime
    period: tuple[date, date]  # first and last day, inclusive
    segments: pl.DataFrame
    quality: pl.DataFrame
    vehicles: pl.DataFrame = field(default_factory=pl.DataFrame)
    scores: pl.DataFrame = field(default_factory=pl.DataFrame)
    feature_errors: pl.DataFrame = field(default_factory=pl.DataFrame)  # from feature_errors
    notes: list[str] = field(default_factory=list)


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; }
body { color: #1f2937; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2rem; font-size: 1.2rem; }
.meta { color: #6b7280; } .figures { display: flex; flex-wrap: wrap; gap: .8rem; }
.figure { border: 1px solid #e5e7eb; border-radius: 6px; padding: .5rem .9rem; min-width: 8rem; }
.figure b { display: block; font-size: 1.3rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e5e7eb; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
.ok { color: #15803d; } .short { color: #b91c1c; }
svg text { font: 11px system-ui, sans-serif; fill: #374151; }
.legend span { display: inline-block; width: .9rem; height: .9rem; margin: 0 .3rem 0 1rem; }
.legend span:first-child { margin-left: 0; }
"""


TEXT_CELL = '<td class="text">'


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def _table(frame: pl.DataFrame, headers: dict[str, str], digits: dict[str, int]) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for label in headers.values())
    rows = []
    for row in frame.select(list(headers)).iter_rows(named=True):
        cells = "".join(
            (TEXT_CELL if isinstance(row[name], str) else "<td>")
            + f"{_cell(row[name], digits.get(name, 1))}</td>"
            for name in headers
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figures(report: FleetReport) -> str:
    per_vehicle = vehicle_summary(report.segments)
    sums = per_vehicle.select(pl.exclude("vin").sum()).row(0, named=True)
    shown = [
        ("vehicles", per_vehicle.height),
        ("sessions", report.segments.height),
        ("drives", sums["drives"]),
        ("km driven", sums["distance_km"]),
        ("charges", sums["charges"]),
        ("kWh charged", sums["energy_added_kwh"]),
        ("found in gaps", sums["offline_sessions"]),
    ]
    items = "".join(f'<div class="figure"><b>{_cell(v, 0)}</b>{k}</div>' for k, v in shown)
    return f'<div class="figures">{items}</div>'


def _vehicles(report: FleetReport) -> str:
    frame = vehicle_summary(report.segments).join(
        quality_summary(report.quality).select("vin", "gaps"), on="vin", how="left"
    )
    headers = {"vin": "VIN"}
    if {"vin", "model", "nominal_capacity_kwh"} <= set(report.vehicles.columns):
        frame = frame.join(
            report.vehicles.select("vin", "model", "nominal_capacity_kwh"), on="vin", how="left"
        )
        headers |= {"model": "model", "nominal_capacity_kwh": "battery kWh"}
    headers |= {
        "days": "days",
        "drives": "drives",
        "distance_km": "km",
        "charges": "charges",
        "dc_charges": "of them DC",
        "energy_added_kwh": "kWh added",
        "idle_h": "idle h",
        "offline_sessions": "found in gaps",
        "gaps": "telemetry gaps",
    }
    return _table(frame, headers, {"nominal_capacity_kwh": 0})


def _feature_errors(errors: pl.DataFrame) -> str:
    if errors.is_empty():
        return ""
    headers = {
        "kind": "kind",
        "feature": "feature",
        "n": "sessions",
        "median_abs_error": "median error",
        "p90_abs_error": "90th percentile",
    }
    return (
        "<p>The figures of the matched sessions against their true ones (absolute errors; the "
        "true SoC is the battery's, which cars show with a bias of a few points):</p>"
        + _table(errors, headers, {"median_abs_error": 3, "p90_abs_error": 3})
    )


def _accuracy(scores: pl.DataFrame, errors: pl.DataFrame) -> str:
    if scores.is_empty():
        return ""
    headers = {
        "kind": "kind",
        "n_true": "true",
        "n_predicted": "found",
        "matched": "matched",
        "precision": "precision",
        "recall": "recall",
        "f1": "F1",
        "median_start_error_s": "median start error s",
        "median_end_error_s": "median end error s",
    }
    digits = {"precision": 3, "recall": 3, "f1": 3}
    digits |= {"median_start_error_s": 0, "median_end_error_s": 0}
    return (
        "<h2>Sessions against the truth</h2>"
        "<p>Each found session is matched to a true one of the same vehicle and kind when their "
        "time overlap is at least half of their union (IoU ≥ 0.5).</p>"
        + _table(scores, headers, digits)
        + _feature_errors(errors)
    )


def _quality(quality: pl.DataFrame) -> str:
    frame = quality_summary(quality)
    headers = {
        "vin": "VIN",
        "rows_in": "rows in",
        "rows_out": "rows out",
        "dropped_total": "dropped",
        "gaps": "gaps",
        "longest_gap_h": "longest gap h",
    }
    reasons = dropped_by_reason(quality)
    listed = ", ".join(f"{escape(name)} {n:,}" for name, n in reasons.items()) or "none"
    return f"<h2>Data quality</h2><p>Rows dropped by cleaning, by reason: {listed}.</p>" + _table(
        frame, headers, {}
    )


def render_fleet_report(report: FleetReport) -> str:
    """The whole page."""
    first, last = report.period
    notes = "".join(f"<p>{escape(note)}</p>" for note in report.notes)
    start = datetime(first.year, first.month, first.day, tzinfo=report.generated_at.tzinfo)
    timeline = timeline_svg(report.segments, start, (last - first).days + 1)
    end = start + timedelta(days=(last - first).days + 1)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(report.title)}</title><style>{STYLE}</style></head>
<body>
<h1>{escape(report.title)}</h1>
<p class="meta">{first} … {last} (UTC) · generated {report.generated_at:%Y-%m-%d %H:%M} UTC
by bibev {escape(__version__)}</p>
{notes}
{_figures(report)}
<h2>Vehicles</h2>
{_vehicles(report)}
<h2>Sessions</h2>
<p>Every session from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, one lane per vehicle.
Hover for details.</p>
{legend()}
{timeline}
{_accuracy(report.scores, report.feature_errors)}
{_quality(report.quality)}
<h2>State of health</h2>
<p>Not estimated by this release.</p>
</body></html>
"""
