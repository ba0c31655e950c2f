"""The data-quality report: what cleaning kept and dropped, per (VIN, day).

``quality_report`` reads the ``clean_quality`` table into a flat frame (one column per drop
reason, so that CSV and tables have a stable shape); ``quality_records`` gives the same rows as
JSON-ready dicts with the reasons nested; ``quality_totals`` sums a frame into one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy import Engine

from bibev.db.quality import clean_quality_rows
from bibev.pipeline.clean.reasons import GLITCHES
from bibev.schema import UTC_US

DROPPED_PREFIX = "dropped_"

REPORT_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "vin": pl.String(),
    "provider": pl.String(),
    "rows_in": pl.Int64(),
    "observations": pl.Int64(),
    "rows_out": pl.Int64(),
    "dropped_total": pl.Int64(),
    **{f"{DROPPED_PREFIX}{reason}": pl.Int64() for reason in GLITCHES},
    "superseded": pl.Int64(),
    "clamped_ts": pl.Int64(),
    "invalid_values": pl.Int64(),
    "unmapped_rows": pl.Int64(),
    "unmapped_keys": pl.Int64(),
    "gaps": pl.Int64(),
    "longest_gap_s": pl.Float64(),
    "first_ts": UTC_US,
    "last_ts": UTC_US,
}
SUMMED = tuple(
    name for name, dtype in REPORT_SCHEMA.items() if dtype == pl.Int64() and name != "unmapped_keys"
)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    dropped = row.get("dropped") or {}
    flat = {name: row.get(name) for name in REPORT_SCHEMA if not name.startswith(DROPPED_PREFIX)}
    flat["dropped_total"] = row.get("dropped_total", 0)
    for reason in GLITCHES:
        flat[f"{DROPPED_PREFIX}{reason}"] = int(dropped.get(reason, 0))
    return flat


def quality_report(
    engine: Engine,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    vins: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The stored quality records in the range as a flat frame (``REPORT_SCHEMA``), by day
    then VIN."""
    rows = clean_quality_rows(engine, date_from=date_from, date_to=date_to, vins=vins)
    return pl.DataFrame([_flat(row) for row in rows], schema=REPORT_SCHEMA, orient="row")


def quality_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """A report frame as JSON-ready dicts: instants in ISO 8601, reasons nested under
    ``dropped`` (only the ones that occurred)."""
    records = []
    for row in frame.iter_rows(named=True):
        dropped = {
            name.removeprefix(DROPPED_PREFIX): row.pop(name)
            for name in list(row)
            if name.startswith(DROPPED_PREFIX) and name != "dropped_total"
        }
        row["dropped"] = {reason: count for reason, count in dropped.items() if count}
        for name in ("day", "first_ts", "last_ts"):
            row[name] = row[name].isoformat() if row[name] is not None else None
        records.append(row)
    return records


def quality_totals(frame: pl.DataFrame) -> dict[str, Any]:
    """Counts summed over the frame, with the number of vehicles and days and the longest gap."""
    totals: dict[str, Any] = {
        "days": frame["day"].n_unique(),
        "vehicles": frame["vin"].n_unique(),
    }
    for name in SUMMED:
        totals[name] = int(frame[name].sum())
    longest = frame["longest_gap_s"].max()
    totals["longest_gap_s"] = float(longest) if longest is not None else None  # type: ignore[arg-type]
    return totals
