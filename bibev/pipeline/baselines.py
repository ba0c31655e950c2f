"""The original Bib pipeline's phase rules, as a baseline to measure bibev against.

The rules, as the original package applied them to each vehicle's series (analytics.md):

1. drop the rows without a SoC;
2. the sign of each SoC change, carried forward over unchanged readings, defines the phases: a
   new phase starts where the sign flips, and after a gap of more than ``gap_s`` (45 min);
3. a phase is *charging* if its total SoC change is above ``+min_change_pct`` (0.5 points),
   *discharging* if below ``-min_change_pct``, else *idle*;
4. a phase shorter than ``merge_below_s`` (3 min) is merged into the previous one;
5. a phase is usable if it has more than one point and lasts at most ``max_duration_s`` (24 h).

It knows nothing of gears, charging states, power, speed or the odometer, so a discharging
phase stands in for a drive when it is scored (``kind`` is ``driving``). Pure polars.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

PHASE_SCHEMA: dict[str, pl.DataType] = {
    "vin": pl.String(),
    "kind": pl.String(),
    "start": pl.Datetime("us", "UTC"),
    "end": pl.Datetime("us", "UTC"),
    "soc_start": pl.Float64(),
    "soc_end": pl.Float64(),
    "n_points": pl.Int64(),
}


@dataclass(frozen=True)
class PhaseParams:
    """The original thresholds (see the module docstring)."""

    min_change_pct: float = 0.5
    merge_below_s: float = 180.0
    gap_s: float = 45 * 60.0
    max_duration_s: float = 24 * 3600.0


def _seconds(expr: pl.Expr) -> pl.Expr:
    return expr.dt.total_microseconds().cast(pl.Float64) / 1e6


def _phases(rows: pl.LazyFrame, params: PhaseParams) -> pl.LazyFrame:
    """Rules 1–2: one row per phase with its first and last reading."""
    direction = pl.col("soc_pct").diff().over("vin").sign()
    known = pl.when(direction != 0).then(direction)
    # carried forward; the first reading opens the first phase
    carried = known.forward_fill().backward_fill().over("vin").fill_null(0)
    gap = (_seconds(pl.col("ts").diff().over("vin")) > params.gap_s).fill_null(False)
    flip = (pl.col("direction") != pl.col("direction").shift(1).over("vin")).fill_null(True)
    return (
        rows.with_columns(direction=carried, gap=gap)
        .with_columns(phase=(flip | pl.col("gap")).cast(pl.Int64).cum_sum())
        .group_by("vin", "phase")
        .agg(
            start=pl.col("ts").first(),
            end=pl.col("ts").last(),
            soc_start=pl.col("soc_pct").first(),
            soc_end=pl.col("soc_pct").last(),
            n_points=pl.len().cast(pl.Int64),
            after_gap=pl.col("gap").first(),
        )
        .sort("vin", "start")
    )


def _merge_short(phases: pl.LazyFrame, params: PhaseParams) -> pl.LazyFrame:
    """Rule 4: a short phase joins the phase before it (never across a gap)."""
    short = _seconds(pl.col("end") - pl.col("start")) < params.merge_below_s
    first = (pl.col("vin") != pl.col("vin").shift(1)).fill_null(True)
    keeps = first | pl.col("after_gap") | ~short
    return (
        phases.with_columns(group=keeps.cast(pl.Int64).cum_sum())
        .group_by("vin", "group")
        .agg(
            start=pl.col("start").first(),
            end=pl.col("end").last(),
            soc_start=pl.col("soc_start").first(),
            soc_end=pl.col("soc_end").last(),
            n_points=pl.col("n_points").sum(),
        )
        .sort("vin", "start")
    )


def phase_sessions(clean: pl.LazyFrame, params: PhaseParams | None = None) -> pl.LazyFrame:
    """Clean rows of any number of vehicles → the usable phases (``PHASE_SCHEMA``), with
    ``kind`` charging, driving (a discharging phase) or idle."""
    params = params or PhaseParams()
    rows = (
        clean.select("vin", "ts", "soc_pct")
        .filter(pl.col("soc_pct").is_not_null())
        .sort("vin", "ts")
    )
    change = pl.col("soc_end") - pl.col("soc_start")
    kind = (
        pl.when(change > params.min_change_pct)
        .then(pl.lit("charging"))
        .when(change < -params.min_change_pct)
        .then(pl.lit("driving"))
        .otherwise(pl.lit("idle"))
    )
    usable = (pl.col("n_points") > 1) & (
        _seconds(pl.col("end") - pl.col("start")) <= params.max_duration_s
    )
    return (
        _merge_short(_phases(rows, params), params)
        .with_columns(kind=kind)
        .filter(usable)
        .select(list(PHASE_SCHEMA))
    )
