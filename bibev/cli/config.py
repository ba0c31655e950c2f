"""``bibev config show``: every resolved setting, where it came from, secrets masked."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.table import Table
from sqlalchemy.engine import make_url

from bibev.cli.common import out, print_json, state

app = typer.Typer(
    name="config",
    help="Show the resolved settings.\n\nExample: bibev --root s3://bucket/x config show",
    no_args_is_help=True,
)

MASK = "**********"


def _display(name: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if name == "database_url":
            # the URL is useful to see; only its password is secret
            try:
                return make_url(secret).render_as_string(hide_password=True)
            except Exception:
                return MASK
        return MASK if secret else ""
    if isinstance(value, dict):
        return {k: _mask_options(v) for k, v in value.items()}
    return value


def _mask_options(options: Any) -> Any:
    """Provider options from bibev.toml: mask anything that looks like a credential (and any
    value already held as a secret, such as a Kafka password)."""
    if isinstance(options, SecretStr):
        return MASK if options.get_secret_value() else ""
    if not isinstance(options, dict):
        return options
    secret_words = ("secret", "password", "token", "key")
    return {
        k: MASK if any(w in k.lower() for w in secret_words) and v else _mask_options(v)
        for k, v in options.items()
    }


@app.command("show")
def show(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Print every resolved setting with its source (flag, env, config or default).

    Example: BIBEV_ROOT=s3://fleet/bibev bibev config show --json
    """
    resolved = state(ctx).resolved()
    rows = [
        (name, _display(name, getattr(resolved.settings, name)), resolved.sources[name])
        for name in type(resolved.settings).model_fields
    ]
    if json_output:
        print_json(
            {
                "config_file": str(resolved.config_path) if resolved.config_path else None,
                "settings": {name: {"value": value, "source": src} for name, value, src in rows},
            }
        )
        return
    table = Table(title="bibev settings", title_justify="left")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("source")
    for name, value, source in rows:
        table.add_row(name, "" if value is None else str(value), source)
    out.print(table)
    out.print(f"config file: {resolved.config_path or '(none)'}")
