"""Fleet figures from the sessions and quality records: one row per vehicle, and the totals.

Pure polars functions over the frames the database gives (``load_segments``,
``quality_report``); the HTML report and the terminal summary of ``bibev demo`` show them.
"""

from __future__ import annotations

import polars as pl

_KIND = pl.col("kind").cast(pl.String)


def _of(kind: str, column: str) -> pl.Expr:
    return pl.col(column).filter(_KIND.eq(kind)).sum()


def vehicle_summary(segments: pl.DataFrame) -> pl.DataFrame:
    """Per VIN: days seen, drives and their km, charges (DC among them) and the battery-side
    kWh they added, idle hours, and how many sessions were found inside telemetry gaps."""
    charging = _KIND == "charging"
    return (
        segments.group_by("vin")
        .agg(
            days=pl.col("day").n_unique(),
            drives=(_KIND == "driving").sum(),
            distance_km=_of("driving", "distance_km"),
            charges=charging.sum(),
            dc_charges=(charging & (pl.col("charger_kind").cast(pl.String) == "dc")).sum(),
            energy_added_kwh=_of("charging", "energy_added_kwh"),
            idle_h=_of("idle", "duration_s") / 3600,
            offline_sessions=pl.col("offline").sum(),
        )
        .sort("vin")
    )


def quality_summary(quality: pl.DataFrame) -> pl.DataFrame:
    """Per VIN: rows read and written by cleaning, rows dropped, and telemetry gaps."""
    return (
        quality.group_by("vin")
        .agg(
            pl.col("rows_in", "rows_out", "dropped_total", "gaps").sum(),
            longest_gap_h=pl.col("longest_gap_s").max() / 3600,
        )
        .sort("vin")
    )


def dropped_by_reason(quality: pl.DataFrame) -> dict[str, int]:
    """The fleet's dropped rows per reason (reasons that dropped nothing left out)."""
    columns = [name for name in quality.columns if name.startswith("dropped_")]
    columns.remove("dropped_total")
    sums = quality.select(pl.col(columns).sum()).row(0, named=True) if quality.height else {}
    return {name.removeprefix("dropped_"): int(n) for name, n in sums.items() if n}
