"""``bibev transform segment`` (also ``bibev segment``) and ``bibev transform all``.

Both register themselves on the ``transform`` group when this module is imported; the
top-level ``segment`` alias is wired in ``bibev.cli.app``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from bibev.cli import transform
from bibev.cli.common import out, print_json, settings_from
from bibev.cli.progress import progress_bar
from bibev.cli.transform import (
    BatchSizeOption,
    ChangedOption,
    DaskOption,
    DayOption,
    FromOption,
    JsonOption,
    LockWaitOption,
    ToOption,
    VinOption,
    WorkersOption,
    check_changed,
    day_range,
    say_if_nothing,
    vin_list,
)
from bibev.errors import PartialFailure

SEGMENT_EPILOG = (
    "Safe to run at any time and as often as you like: a day is segmented from the clean files "
    "of that day and its two neighbours only, so running it again, or its neighbours first, "
    "gives the same file; an unchanged file is not rewritten and the day's rows in the "
    "segments table are replaced in one transaction. A session crossing midnight belongs to "
    "the day it starts; when the next day arrives, the day before is redone so that its last "
    "session is completed, never cut or duplicated. "
    "Exit codes: 0 ok, 2 bad option, 4 storage or database, 5 some partitions failed (listed "
    "on stderr)."
)
ALL_EPILOG = (
    "The same as `bibev transform clean` followed by `bibev transform segment` with the same "
    "options; the segment step runs even when some clean partitions failed (they are listed, "
    "and the exit code is 5). "
    "Exit codes: 0 ok, 2 bad option, 4 storage or database, 5 some partitions failed."
)


def _options(
    ctx: typer.Context,
    day: str | None,
    date_from: str | None,
    date_to: str | None,
    vins: list[str] | None,
    workers: int | None,
    dask: str | None,
    lock_wait: float,
    batch_size: int,
    changed: bool,
) -> tuple[Any, dict[str, Any]]:
    start, end = day_range(day, date_from, date_to)
    wanted = vin_list(vins)
    check_changed(changed, start, end, wanted)
    settings = settings_from(ctx, workers=workers, dask_address=dask)
    options: dict[str, Any] = {
        "changed": changed,
        "date_from": start,
        "date_to": end,
        "vins": wanted,
        "workers": settings.workers,
        "dask_address": settings.dask_address,
        "lock_wait": lock_wait,
        "batch_size": batch_size,
    }
    return settings, options


def segment_cmd(
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
    """Cut clean series into charging, driving and idle sessions.

    Reads clean/YYYY/MM/DD/{VIN}.parquet (with the days around it), writes
    segments/YYYY/MM/DD/{VIN}.parquet and the segments table: one row per session with its
    start, end, SoC, odometer, energy added, AC/DC, power, temperature and quality flags.
    Charges and drives hidden in telemetry gaps are found from the SoC and odometer jumps and
    flagged offline. Without a date every day in clean/ is segmented; with --changed, the days
    that clean wrote since the last such run and the days around them.

    Example: bibev transform segment --from 2025-03-01 --to 2025-03-07 --vin 5YJ3E1EA7KF000001

    Example: bibev transform segment --changed
    """
    from bibev.db import open_database, record_run
    from bibev.pipeline.segment import run_segment
    from bibev.storage import Storage

    settings, options = _options(
        ctx, day, date_from, date_to, vins, workers, dask, lock_wait, batch_size, changed
    )
    storage = Storage.from_settings(settings)
    engine = open_database(settings.database_url.get_secret_value())
    try:
        parameters = {"root": storage.url, **options}
        with record_run(engine, "transform segment", parameters) as recorder:
            with progress_bar("segmenting", enabled=settings.progress) as on_progress:
                summary = run_segment(storage, engine, on_progress=on_progress, **options)
            recorder.counts = summary.totals()
            if json_output:
                print_json({**summary.totals(), "failures": [list(f) for f in summary.failures]})
            else:
                _render("bibev transform segment", summary, "segment", changed)
            summary.raise_for_failures()
    finally:
        engine.dispose()


def all_cmd(
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
    """Clean compressed days, then cut the clean series into sessions.

    Runs `transform clean` and then `transform segment` on the same days and vehicles, and
    records them as one run. With --changed, clean takes what compact wrote since the last such
    run, and segment what clean wrote: the nightly job, late data included.

    Example: bibev transform all --date 2025-03-01

    Example: bibev transform all --changed
    """
    from bibev.db import open_database, record_run
    from bibev.pipeline.clean import run_clean
    from bibev.pipeline.segment import run_segment
    from bibev.storage import Storage

    settings, options = _options(
        ctx, day, date_from, date_to, vins, workers, dask, lock_wait, batch_size, changed
    )
    storage = Storage.from_settings(settings)
    engine = open_database(settings.database_url.get_secret_value())
    try:
        parameters = {"root": storage.url, **options}
        with record_run(engine, "transform all", parameters) as recorder:
            with progress_bar("cleaning", enabled=settings.progress) as on_progress:
                cleaned = run_clean(
                    storage,
                    engine,
                    now=datetime.now(UTC),
                    on_progress=on_progress,
                    plugins=settings.plugins,
                    **options,
                )
            with progress_bar("segmenting", enabled=settings.progress) as on_progress:
                segmented = run_segment(
                    storage, engine, on_progress=on_progress, also=cleaned.before, **options
                )
            recorder.counts = {"clean": cleaned.totals(), "segment": segmented.totals()}
            failures = sorted(cleaned.failures + segmented.failures)
            if json_output:
                print_json({**recorder.counts, "failures": [list(f) for f in failures]})
            else:
                _render("bibev transform all: clean", cleaned, "clean", changed)
                _render("bibev transform all: segment", segmented, "segment", changed)
            _raise_for_failures(("clean", cleaned), ("segment", segmented))
    finally:
        engine.dispose()


def _raise_for_failures(*stages: tuple[str, Any]) -> None:
    """``PartialFailure`` (exit 5) listing the failed partitions of both stages, counted per
    stage: ``clean: 1 of 18 partition(s) failed; segment: ...``."""
    failures = sorted(f for _, summary in stages for f in summary.failures)
    if not failures:
        return
    counts = "; ".join(
        f"{stage}: {len(summary.failures)} of {summary.totals()['partitions']} partition(s) failed"
        for stage, summary in stages
        if summary.failures
    )
    total = sum(summary.totals()["partitions"] for _, summary in stages)
    raise PartialFailure(
        counts + ("" if len(failures) >= total else "; the others are done"), failures
    )


def _render(title: str, summary: Any, stage: str, changed: bool) -> None:
    say_if_nothing(summary, stage, "compressed" if stage == "clean" else "clean", changed)
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in summary.totals().items():
        shown = f"{value:,}" if isinstance(value, int) else f"{value}"
        table.add_row(name.replace("_", " "), shown)
    out.print(table)


transform.app.command("segment", help=segment_cmd.__doc__, epilog=SEGMENT_EPILOG)(segment_cmd)
transform.app.command("all", help=all_cmd.__doc__, epilog=ALL_EPILOG)(all_cmd)
