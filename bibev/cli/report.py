"""``bibev report``: reports from the database. This module owns the group and ``quality``;
other reports register their commands on ``app``."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from bibev.cli.common import err, out, print_json, settings_from
from bibev.cli.transform import DayOption, FromOption, ToOption, VinOption, day_range, vin_list

if TYPE_CHECKING:
    import polars as pl

app = typer.Typer(
    name="report",
    help="Report data quality per (VIN, day).\n\n"
    "Example: bibev report quality --from 2025-03-01 --to 2025-03-07 --format csv",
    no_args_is_help=True,
)


class QualityFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


# The table keeps to the columns that fit a terminal; json and csv carry every column.
_TABLE_COLUMNS = (
    ("day", "day"),
    ("vin", "vin"),
    ("provider", "provider"),
    ("rows_in", "rows in"),
    ("observations", "obs"),
    ("rows_out", "rows out"),
    ("dropped_total", "dropped"),
    ("clamped_ts", "clock fixed"),
    ("invalid_values", "invalid"),
    ("unmapped_rows", "unmapped"),
    ("gaps", "gaps"),
    ("longest_gap_s", "longest gap"),
)


@app.callback()
def report_group() -> None:
    """Report data quality per (VIN, day)."""


@app.command("quality")
def quality(
    ctx: typer.Context,
    day: DayOption = None,
    date_from: FromOption = None,
    date_to: ToOption = None,
    vins: VinOption = None,
    output_format: Annotated[
        QualityFormat,
        typer.Option("--format", case_sensitive=False, help="table, json or csv."),
    ] = QualityFormat.table,
) -> None:
    """Show what cleaning read, dropped (by reason) and wrote, per (VIN, day).

    The records are written by `bibev transform clean`. The table shows the main counts and a
    total; `--format json` nests the drop reasons, `--format csv` has one column per reason.

    Example: bibev report quality --date 2025-03-01 --format json
    """
    from bibev.db import open_database
    from bibev.report.quality import quality_records, quality_report, quality_totals

    start, end = day_range(day, date_from, date_to)
    wanted = vin_list(vins)
    settings = settings_from(ctx)
    engine = open_database(settings.database_url.get_secret_value(), create=False)
    try:
        frame = quality_report(engine, date_from=start, date_to=end, vins=wanted)
    finally:
        engine.dispose()
    if output_format is QualityFormat.json:
        print_json({"records": quality_records(frame), "totals": quality_totals(frame)})
    elif output_format is QualityFormat.csv:
        sys.stdout.write(frame.write_csv())
        sys.stdout.flush()
    else:
        _table(frame)


def _shown(name: str, value: object) -> str:
    if value is None:
        return ""
    if name == "longest_gap_s" and isinstance(value, float):
        return _duration(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _reasons(row: dict[str, object]) -> str:
    from bibev.report.quality import DROPPED_PREFIX

    return ", ".join(
        f"{name.removeprefix(DROPPED_PREFIX)} {count}"
        for name, count in row.items()
        if name.startswith(DROPPED_PREFIX) and name != "dropped_total" and count
    )


def _table(frame: pl.DataFrame) -> None:
    from bibev.report.quality import quality_totals

    if frame.height == 0:
        err.print("no quality records match: run `bibev transform clean` first", highlight=False)
        return
    table = Table(title="bibev data quality (per vehicle and day)")
    for name, label in _TABLE_COLUMNS:
        table.add_column(label, justify="left" if name in ("day", "vin", "provider") else "right")
    table.add_column("dropped by reason")
    for row in frame.iter_rows(named=True):
        table.add_row(*(_shown(name, row[name]) for name, _ in _TABLE_COLUMNS), _reasons(row))
    totals = quality_totals(frame)
    table.add_section()
    table.add_row(
        "total",
        f"{totals['vehicles']} vehicles",
        f"{totals['days']} days",
        *(_shown(name, totals[name]) for name, _ in _TABLE_COLUMNS[3:]),
        _reasons(totals),
    )
    if out.is_terminal:
        out.print(table)
        return
    # Piped output is not cut to 80 columns: every value stays whole and greppable.
    width = Measurement.get(out, out.options.update(max_width=1_000), table).maximum
    Console(width=max(width, out.width), soft_wrap=True).print(table)
