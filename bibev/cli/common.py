"""What every command module shares: the resolved settings, the output consoles and the
mapping from the error tree to exit codes."""

from __future__ import annotations

import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from bibev.config import ResolvedSettings, Settings, load_settings
from bibev.errors import NotAvailableError

if TYPE_CHECKING:
    import click

    from bibev.storage import Storage

# Results go to stdout, everything else (logs, progress, warnings, errors) to stderr.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class CliState:
    """Global options as given on the command line; settings are resolved on first use."""

    flags: dict[str, Any] = field(default_factory=dict)
    config_path: Path | None = None
    _resolved: ResolvedSettings | None = None

    def resolved(self) -> ResolvedSettings:
        if self._resolved is None:
            self._resolved = load_settings(self.flags, config_path=self.config_path)
        return self._resolved


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    """The resolved settings; ``overrides`` are command flags the user set (``None`` = unset)."""
    cli = state(ctx)
    extra = {k: v for k, v in overrides.items() if v is not None}
    if extra:
        settings = load_settings({**cli.flags, **extra}, config_path=cli.config_path).settings
    else:
        settings = cli.resolved().settings
    if "dask_address" in overrides and settings.dask_address:
        from bibev.executors import check_dask_address

        check_dask_address(settings.dask_address)  # before the command looks at anything
    return settings


def storage_from(ctx: typer.Context) -> Storage:
    from bibev.storage import Storage

    return Storage.from_settings(settings_from(ctx))


def print_json(data: Any) -> None:
    """One JSON document on stdout, pipe-safe (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")
    sys.stdout.flush()


def not_available(what: str, issue: str) -> None:
    """Commands that a later release fills in say so and exit 2; they never pretend to work."""
    raise NotAvailableError(f"`bibev {what}` is not available yet ({issue})")


def unwrap_help(command: click.Command) -> None:
    """Each paragraph of the help of ``command`` and of its subcommands on one line, so that
    the terminal wraps it at its own width (docstrings are wrapped at 100 columns)."""
    if command.help:
        paragraphs = inspect.cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(
            " ".join(line.strip() for line in paragraph.splitlines()) for paragraph in paragraphs
        )
    for sub in getattr(command, "commands", {}).values():
        unwrap_help(sub)
