"""``bibev providers list|show``: the provider adapters installed, and what each one reads."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bibev.cli.common import out, print_json, settings_from
from bibev.providers.registry import ProviderEntry, Registry, describe_adapter, get_registry

app = typer.Typer(
    name="providers",
    help="Provider adapters: the built-in ones and those of installed plugins.\n\n"
    "Example: bibev providers list --json",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

STATUS_STYLE = {"ok": "green", "broken": "red", "disabled": "dim"}


def _registry(ctx: typer.Context) -> Registry:
    return get_registry(settings_from(ctx).plugins)


@app.command("list")
def list_providers(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """List every provider adapter with its status, formats, package and version.

    A plugin that fails to load is listed as broken, with the reason; the command still succeeds.

    BIBEV_PLUGINS (comma-separated names) loads only the named adapters; the others are disabled.

    Example: BIBEV_PLUGINS=tesla,sim bibev providers list --json
    """
    entries = _registry(ctx).entries()
    if json_output:
        print_json([entry.to_dict() for entry in entries])
        return
    out.print(_entries_table(entries))


def _entries_table(entries: list[ProviderEntry]) -> Table:
    table = Table()
    table.add_column("name", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("formats", overflow="fold")
    table.add_column("package", overflow="fold")
    table.add_column("version", no_wrap=True)
    table.add_column("fetch", no_wrap=True)
    table.add_column("error", min_width=20, overflow="fold")
    for e in entries:
        table.add_row(
            e.name,
            f"[{STATUS_STYLE[e.status]}]{e.status}[/]",
            ", ".join(e.formats),
            e.package or "",
            e.version or "",
            ("yes" if e.can_fetch else "no") if e.status == "ok" else "",
            _plain(e.error or ""),
        )
    return table


@app.command("show")
def show_provider(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Provider name, as in `bibev providers list`.")],
    json_output: JsonFlag = False,
) -> None:
    """Show one adapter: formats, options (secret ones marked) and its mapping to columns.

    Example: bibev providers show tesla
    """
    registry = _registry(ctx)
    adapter_cls = registry.get(name)
    entry = registry.entry(name)
    info = {"package": entry.package, "version": entry.version, **describe_adapter(adapter_cls)}
    if json_output:
        print_json(info)
        return
    fetch = "yes" if info["can_fetch"] else "no"
    out.print(f"[bold]{info['name']}[/] {_plain(info['description'])}")
    out.print(f"package: {entry.package or '-'} {entry.version or ''}".rstrip())
    out.print(f"formats: {', '.join(info['formats']) or '-'}   fetch: {fetch}")
    out.print(_options_table(info["options"]))
    out.print(_mapping_table(info["mapping"]))


def _options_table(fields: list[dict[str, Any]]) -> Table:
    table = Table("option", "type", "default", "secret", "description", title="options")
    for f in fields:
        default = "(required)" if f["required"] else repr(f["default"])
        secret = "[yellow]secret[/]" if f["secret"] else ""
        table.add_row(
            f["name"], _plain(f["type"]), _plain(default), secret, _plain(f["description"])
        )
    return table


def _mapping_table(mapping: list[dict[str, Any]]) -> Table:
    table = Table("key", "column", "scale", "offset", "enum", "note", title="mapping")
    for m in mapping:
        enum = ", ".join(f"{k} → {v}" for k, v in (m["enum"] or {}).items())
        table.add_row(
            _plain(m["key"]),
            m["column"],
            f"{m['scale']:g}",
            f"{m['offset']:g}",
            _plain(enum),
            _plain(m["note"]),
        )
    return table


def _plain(text: str) -> str:
    """Text from a plugin is shown as is, never read as rich markup."""
    return escape(text)
