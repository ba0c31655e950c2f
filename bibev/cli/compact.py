"""``bibev compact``: the nightly job that turns temp/ JSON lines into compressed Parquet days."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from bibev.cli.common import err, out, print_json, settings_from
from bibev.cli.progress import progress_bar
from bibev.cli.transform import day_range

EPILOG = (
    "Safe to run at any time and as often as you like: a crash is repaired by running again, "
    "late data is merged into days already compacted, and two runs never compact the same "
    "(VIN, day) at once (the second one reports it as locked). Schedule it in cron after "
    "midnight UTC, e.g. `15 0 * * * examples/cron/nightly-compact.sh`. "
    "Exit codes: 0 ok, 2 bad option, 4 storage, 5 some partitions failed (listed on stderr)."
)


def compact(
    ctx: typer.Context,
    day: Annotated[
        str | None,
        typer.Option(
            "--date", metavar="YYYY-MM-DD", show_default=False, help="Compact only this UTC day."
        ),
    ] = None,
    date_from: Annotated[
        str | None,
        typer.Option("--from", metavar="YYYY-MM-DD", show_default=False, help="First UTC day."),
    ] = None,
    date_to: Annotated[
        str | None,
        typer.Option("--to", metavar="YYYY-MM-DD", show_default=False, help="Last UTC day."),
    ] = None,
    vins: Annotated[
        list[str] | None,
        typer.Option("--vin", show_default=False, help="Only this vehicle (repeatable)."),
    ] = None,
    include_today: Annotated[
        bool,
        typer.Option("--include-today", help="Also compact today, although it is not complete."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be compacted; change nothing.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, show_default=False, help="Worker processes (default: half the cores)."),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask", metavar="ADDRESS", show_default=False, help="Run on this Dask scheduler."
        ),
    ] = None,
    lock_wait: Annotated[
        float,
        typer.Option(min=0, help="Seconds to wait for a (VIN, day) another run is compacting."),
    ] = 0.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")
    ] = False,
) -> None:
    """Compact complete UTC days of temp/ into compressed/YYYY/MM/DD/{VIN}.parquet.

    Without a date, every complete day (before today, UTC) that still has files in temp/ is
    compacted, so a missed night heals itself. Each (VIN, day) is flattened, deduplicated,
    merged with the day's existing file and written atomically before its temp files are
    deleted; unreadable lines go to quarantine/compact/ with the reason.

    Example: bibev compact --date 2025-03-01 --vin 5YJ3E1EA7KF000001 --dry-run
    """
    from bibev.pipeline.compact import run_compact
    from bibev.providers.registry import get_registry
    from bibev.storage import Storage, validate_vin

    start, end = day_range(day, date_from, date_to)
    wanted = None if not vins else [validate_vin(vin) for vin in vins]
    settings = settings_from(ctx, workers=workers, dask_address=dask)
    storage = Storage.from_settings(settings)
    get_registry(settings.plugins).check_options(settings.providers)
    options: dict[str, Any] = {
        "now": datetime.now(UTC),
        "date_from": start,
        "date_to": end,
        "vins": wanted,
        "include_today": include_today,
        "dry_run": dry_run,
        "workers": settings.workers,
        "dask_address": settings.dask_address,
        "plugins": settings.plugins,
        "provider_options": settings.providers,
        "lock_wait": lock_wait,
    }
    if dry_run:
        with progress_bar("planning", enabled=settings.progress) as on_progress:
            summary = run_compact(storage, on_progress=on_progress, **options)
        _render_plan(summary, json_output)
        _raise_failures(summary)
        return
    from bibev.db import open_database, record_run

    engine = open_database(settings.database_url.get_secret_value())
    parameters = {k: v for k, v in options.items() if k not in ("now", "provider_options")}
    try:
        with record_run(engine, "compact", {"root": storage.url, **parameters}) as recorder:
            with progress_bar("compacting", enabled=settings.progress) as on_progress:
                summary = run_compact(storage, on_progress=on_progress, **options)
            recorder.counts = summary.totals()
            _render_summary(summary, json_output)
            _raise_failures(summary)
    finally:
        engine.dispose()


def _raise_failures(summary: Any) -> None:
    from bibev.pipeline.partitions import raise_for_failures

    raise_for_failures(summary.failures, summary.totals()["partitions"])


def _render_summary(summary: Any, json_output: bool) -> None:
    totals = summary.totals()
    if json_output:
        print_json({**totals, "failures": [list(f) for f in summary.failures]})
        return
    table = Table(title="bibev compact", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in totals.items():
        table.add_row(
            name.replace("_", " "), f"{value:,}" if isinstance(value, int) else f"{value}"
        )
    out.print(table)


def _render_plan(summary: Any, json_output: bool) -> None:
    rows = [
        {
            "day": r.day.isoformat(),
            "vin": r.vin,
            "files": r.files,
            "bytes": r.bytes_in,
            "merge_into_existing": r.existing,
        }
        for r in summary.results
    ]
    if json_output:
        print_json({"dry_run": True, "partitions": rows, "failures": summary.failures})
        return
    table = Table(title="bibev compact --dry-run: would compact")
    for name in ("day", "vin", "files", "bytes", "merge into existing"):
        table.add_column(name, justify="right" if name in ("files", "bytes") else "left")
    for row in rows:
        existing = "yes" if row["merge_into_existing"] else "no"
        table.add_row(row["day"], row["vin"], f"{row['files']:,}", f"{row['bytes']:,}", existing)
    out.print(table)
    err.print(f"{len(rows)} partition(s); nothing was changed", highlight=False)
