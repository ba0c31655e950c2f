"""Sub-commands that later releases fill in. Each has its help and example already, and exits
with code 2 and one line saying it is not available yet: it never pretends to work."""

from __future__ import annotations

import typer

from bibev.cli.common import not_available

PENDING: dict[str, tuple[str, str]] = {
    "ingest": (
        "Pull data from a provider's API (or a delivery folder) into temp/.",
        "bibev ingest tesla --vin 5YJ3E1EA7KF000001 --since 2025-03-01",
    ),
}


def _pending_command(name: str):
    def command(ctx: typer.Context) -> None:
        not_available(name, "it lands in a later release")

    return command


def register(app: typer.Typer) -> None:
    for name, (summary, example) in PENDING.items():
        app.command(
            name,
            help=f"Not available yet. {summary}\n\nExample (once available): {example}",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(_pending_command(name))
