"""``bibev demo``: the whole pipeline on a simulated fleet (``bibev.demo``), with a summary on
stdout and the HTML report on disk."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bibev.cli.common import out, print_json, settings_from
from bibev.cli.progress import OnProgress, progress_bar
from bibev.cli.sim import Provider

if TYPE_CHECKING:
    from bibev.demo import DemoResult

EPILOG = (
    "Everything goes into --root: temp/, compressed/, clean/, segments/, the simulator's truth/, "
    "the SQLite database bibev.db and report.html; the root and database_url settings are not "
    "used. Running it again on the same --root starts over; a directory it did not make is "
    "refused. Exit codes: 0 ok, 2 bad option or --root not empty, 4 storage, 5 some partitions "
    "failed."
)


def demo(
    ctx: typer.Context,
    root: Annotated[
        Path, typer.Option("--root", help="Directory for everything the demo makes.")
    ] = Path("bibev-demo"),
    vehicles: Annotated[int, typer.Option(min=1, max=500, help="Vehicles to simulate.")] = 10,
    days: Annotated[
        int, typer.Option(min=1, max=60, help="Days to simulate (the last is yesterday, UTC).")
    ] = 7,
    seed: Annotated[int, typer.Option(min=0, help="Simulator seed (same seed, same data).")] = 7,
    provider: Annotated[
        Provider, typer.Option(help="Provider whose wire format is simulated.")
    ] = Provider.tesla,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the whole pipeline on a simulated fleet with embedded defaults.

    Simulates a fleet with every real-world mess on, compacts it, cleans it, cuts it into
    charging, driving and idle sessions (stored in a SQLite database), scores the sessions
    against the simulator's truth and writes a self-contained HTML report.

    Example: bibev demo --root ./bibev-demo --vehicles 5 --days 3
    """
    from bibev.demo import DemoConfig, run_demo

    enabled = settings_from(ctx).progress

    def stage(description: str) -> AbstractContextManager[OnProgress]:
        return progress_bar(description, enabled=enabled)

    config = DemoConfig(root=root, vehicles=vehicles, days=days, seed=seed, provider=provider.value)
    result = run_demo(config, stage=stage)
    if json_output:
        print_json(_summary(result))
    else:
        out.print(_table(result))


def _summary(result: DemoResult) -> dict[str, object]:
    return {
        "root": str(result.config.root),
        "database_url": result.config.database_url,
        "report": str(result.report),
        "counts": result.counts,
        "accuracy": result.scores.to_dicts(),
    }


def _table(result: DemoResult) -> Table:
    table = Table("", "", show_header=False, title="bibev demo")
    segment = result.counts["segment"]
    rows = [
        ("root", str(result.config.root)),
        ("database", result.config.database_url),
        ("messages simulated", f"{result.counts['sim']['messages']:,}"),
        ("compressed rows", f"{result.counts['compact']['rows_out']:,}"),
        ("clean rows", f"{result.counts['clean']['rows_out']:,}"),
        ("sessions", f"{segment['sessions']:,}"),
    ]
    for row in result.scores.iter_rows(named=True):
        rows.append((f"{row['kind']} F1 vs truth", f"{row['f1']:.3f}"))
    rows.append(("report", str(result.report)))
    for key, value in rows:
        table.add_row(key, value)
    return table
