"""``bibev transform``: compressed days → clean series (``clean``), → sessions (``segment``).

This module owns the group and ``clean``. Other stages register their commands on ``app``
(``transform.app.command("segment")(…)``) and reuse the shared options below (``DayOption``,
``FromOption``, ``ToOption``, ``VinOption``, ``WorkersOption``, ``DaskOption``,
``LockWaitOption``, ``BatchSizeOption``, ``JsonOption``) and ``day_range``, so that every stage
reads dates the same way.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from bibev.cli.common import err, out, print_json, settings_from
from bibev.cli.progress import progress_bar
from bibev.errors import ConfigError

app = typer.Typer(
    name="transform",
    help="Turn compressed days into clean series and sessions: clean, segment, all.\n\n"
    "Example: bibev transform clean --from 2025-03-01 --to 2025-03-07",
    no_args_is_help=True,
)

CLEAN_EPILOG = (
    "Safe to run at any time and as often as you like: a day is cleaned from the compressed "
    "files of that day and its two neighbours only, so cleaning it again (before or after its "
    "neighbours) gives the same file, and an unchanged file is not rewritten. "
    "Exit codes: 0 ok, 2 bad option, 4 storage or database, 5 some partitions failed (listed "
    "on stderr)."
)

DayOption = Annotated[
    str | None,
    typer.Option("--date", metavar="YYYY-MM-DD", show_default=False, help="Only this UTC day."),
]
FromOption = Annotated[
    str | None,
    typer.Option("--from", metavar="YYYY-MM-DD", show_default=False, help="First UTC day."),
]
ToOption = Annotated[
    str | None,
    typer.Option("--to", metavar="YYYY-MM-DD", show_default=False, help="Last UTC day."),
]
VinOption = Annotated[
    list[str] | None,
    typer.Option("--vin", show_default=False, help="Only this vehicle (repeatable)."),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(min=1, show_default=False, help="Worker processes (default: half the cores)."),
]
DaskOption = Annotated[
    str | None,
    typer.Option(
        "--dask", metavar="ADDRESS", show_default=False, help="Run on this Dask scheduler."
    ),
]
LockWaitOption = Annotated[
    float,
    typer.Option(min=0, help="Seconds to wait for a day another run is working on."),
]
BatchSizeOption = Annotated[
    int,
    typer.Option(
        min=1,
        help="Vehicles of a day handled in one query (more: faster, more memory per worker).",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")
]
ChangedOption = Annotated[
    bool,
    typer.Option(
        "--changed",
        help="Only what the previous stage changed since the last such run (late data "
        "included); the nightly job's choice.",
    ),
]


@app.callback()
def transform_group() -> None:
    """Turn compressed days into clean series and sessions: clean, segment, all."""


def _day(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{flag} {value!r} is not a YYYY-MM-DD day") from None


def day_range(
    day: str | None, start: str | None, end: str | None
) -> tuple[date | None, date | None]:
    """``--date`` or ``--from``/``--to`` as a (first, last) pair; ``None`` means open."""
    if day is not None and (start is not None or end is not None):
        raise ConfigError("use either --date or --from/--to, not both")
    if day is not None:
        one = _day(day, "--date")
        return one, one
    first, last = _day(start, "--from"), _day(end, "--to")
    if first and last and first > last:
        raise ConfigError(f"--from {first} is after --to {last}")
    return first, last


def check_changed(changed: bool, first: date | None, last: date | None, vins: object) -> None:
    """``--changed`` picks its own days and vehicles."""
    if changed and (first or last or vins):
        raise ConfigError(
            "--changed picks its own days and vehicles: no --date, --from, --to or --vin"
        )


def vin_list(vins: list[str] | None) -> list[str] | None:
    """The ``--vin`` values, validated (``DataContractError`` names a bad one)."""
    from bibev.storage import validate_vin

    return None if not vins else [validate_vin(vin) for vin in vins]


@app.command("clean", epilog=CLEAN_EPILOG)
def clean(
    ctx: typer.Context,
    day: DayOption = None,
    date_from: FromOption = None,
    date_to: ToOption = None,
    vins: VinOption = None,
    workers: WorkersOption = None,
    dask: DaskOption = None,
    lock_wait: LockWaitOption = 0.0,
    batch_size: BatchSizeOption = 100,
    changed: ChangedOption = False,
    json_output: JsonOption = False,
) -> None:
    """Clean compressed/YYYY/MM/DD/{VIN}.parquet into clean/YYYY/MM/DD/{VIN}.parquet.

    Maps each provider's keys to the canonical columns, fixes skewed clocks, drops glitches
    (counted by reason), writes one row per instant with last-known values carried forward
    within each signal's age limit, and stores a quality record per (VIN, day) (see
    `bibev report quality`). Without a date every day in compressed/ is cleaned; with
    --changed, the days that compact wrote since the last such run and the days around them.

    Example: bibev transform clean --date 2025-03-01 --vin 5YJ3E1EA7KF000001

    Example: bibev transform clean --changed
    """
    from bibev.db import open_database, record_run
    from bibev.pipeline.clean import run_clean
    from bibev.storage import Storage

    start, end = day_range(day, date_from, date_to)
    wanted = vin_list(vins)
    check_changed(changed, start, end, wanted)
    settings = settings_from(ctx, workers=workers, dask_address=dask)
    storage = Storage.from_settings(settings)
    options: dict[str, Any] = {
        "changed": changed,
        "date_from": start,
        "date_to": end,
        "vins": wanted,
        "workers": settings.workers,
        "dask_address": settings.dask_address,
        "plugins": settings.plugins,
        "lock_wait": lock_wait,
        "batch_size": batch_size,
    }
    engine = open_database(settings.database_url.get_secret_value())
    try:
        with record_run(engine, "transform clean", {"root": storage.url, **options}) as recorder:
            with progress_bar("cleaning", enabled=settings.progress) as on_progress:
                summary = run_clean(
                    storage, engine, now=datetime.now(UTC), on_progress=on_progress, **options
                )
            recorder.counts = summary.totals()
            _render(summary, json_output, changed)
            summary.raise_for_failures()
    finally:
        engine.dispose()


def say_if_nothing(summary: Any, stage: str, source: str, changed: bool) -> None:
    """A line on stderr when the run found nothing to do, saying why."""
    if summary.results or summary.failures:
        return
    why = (
        f"nothing changed in {source}/ since the last --changed run"
        if changed
        else f"no {source} day matches"
    )
    err.print(f"nothing to {stage}: {why}", highlight=False)


def _render(summary: Any, json_output: bool, changed: bool) -> None:
    totals = summary.totals()
    if json_output:
        print_json({**totals, "failures": [list(f) for f in summary.failures]})
        return
    say_if_nothing(summary, "clean", "compressed", changed)
    table = Table(title="bibev transform clean", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in totals.items():
        shown = f"{value:,}" if isinstance(value, int) else f"{value}"
        table.add_row(name.replace("_", " "), shown)
    out.print(table)
