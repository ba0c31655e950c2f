"""``bibev db``: create and migrate the bibev database, and show the runs log.

Alembic runs with the configured database URL (``--database-url``, ``BIBEV_DATABASE_URL`` or
``bibev.toml``): no alembic.ini to edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bibev.cli.common import err, out, print_json, settings_from
from bibev.db import migrate
from bibev.db.engine import display_url, missing_file, open_database
from bibev.db.runs import recent_runs, run_as_dict

app = typer.Typer(
    name="db",
    help="Create and migrate the bibev database; show the runs log.\n\n"
    "Example: bibev --database-url postgresql+psycopg://bibev@db/bibev db upgrade",
    no_args_is_help=True,
)


def _database_url(ctx: typer.Context) -> str:
    return settings_from(ctx).database_url.get_secret_value()


def _shown(revisions: list[str]) -> str:
    return ", ".join(revisions) or "base (empty)"


def _print_lines(lines: list[str]) -> None:
    if lines:
        out.print("\n".join(lines), markup=False, highlight=False)


def _report(url: str, migration: migrate.Migration) -> None:
    err.print(
        f"{display_url(url)}: {_shown(migration.before)} -> {_shown(migration.after)} "
        f"({migration.steps} step{'s' if migration.steps != 1 else ''})",
        markup=False,
        highlight=False,
    )
    _print_lines(migration.after)


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(metavar="REV", help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REV (default: head, the latest) and print the revision reached.

    Example: bibev db upgrade
    """
    url = _database_url(ctx)
    _report(url, migrate.migrate_recorded(url, "upgrade", revision))


@app.command("downgrade")
def downgrade(
    ctx: typer.Context,
    revision: Annotated[
        str, typer.Argument(metavar="REV", help="Target revision; `base` removes every table.")
    ],
) -> None:
    """Revert migrations down to REV and print the revision reached.

    Example: bibev db downgrade base
    """
    url = _database_url(ctx)
    _report(url, migrate.migrate_recorded(url, "downgrade", revision))


@app.command("current")
def current(ctx: typer.Context) -> None:
    """Print the revision the database is at (nothing for an empty database).

    Example: bibev db current
    """
    url = _database_url(ctx)
    if missing_file(url):  # connecting would create it
        err.print(f"no database at {display_url(url)} yet: run `bibev db upgrade`")
        return
    revisions = migrate.current(url)
    heads = migrate.heads()
    if not revisions:
        err.print("the database is empty: run `bibev db upgrade`")
    elif sorted(revisions) != heads:
        err.print(f"head is {', '.join(heads)}: run `bibev db upgrade`")
    _print_lines(revisions)


@app.command("heads")
def heads() -> None:
    """Print the latest revision this bibev version ships.

    Example: bibev db heads
    """
    _print_lines(migrate.heads())


@app.command("revision")
def revision(
    ctx: typer.Context,
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision does.")],
    autogenerate: Annotated[
        bool,
        typer.Option("--autogenerate", help="Fill it with the difference models -> database."),
    ] = False,
    migrations_dir: Annotated[
        Path | None,
        typer.Option(
            help="Migrations folder to write to (default: the one bibev uses).",
            file_okay=False,
            exists=True,
        ),
    ] = None,
) -> None:
    """Write a new migration file (for bibev developers) and print its path.

    Example: bibev db revision -m "add segments" --autogenerate
    """
    url = _database_url(ctx) if autogenerate else None
    path = migrate.revision(url, message, autogenerate, script_location=migrations_dir)
    out.print(str(path), markup=False, highlight=False, soft_wrap=True)


@app.command("runs")
def runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """List the latest runs: command, status, times, counts and error.

    Example: bibev db runs --limit 5 --json
    """
    engine = open_database(_database_url(ctx), create=False)
    try:
        rows = [run_as_dict(run) for run in recent_runs(engine, limit)]
    finally:
        engine.dispose()
    if json_output:
        print_json(rows)
        return
    table = Table(title="bibev runs", title_justify="left")
    for column in ("id", "command", "status", "started_at", "ended_at", "counts", "error"):
        table.add_column(column)
    for row in rows:
        counts = ", ".join(f"{k}={v}" for k, v in row["counts"].items())
        table.add_row(
            str(row["id"]),
            row["command"],
            row["status"],
            row["started_at"] or "",
            row["ended_at"] or "",
            counts,
            row["error"] or "",
        )
    out.print(table)
