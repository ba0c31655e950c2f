"""The ``bibev`` command: global options, sub-commands and the error → exit-code mapping."""

from __future__ import annotations

import logging
import sys
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

try:  # typer bundles its own click, whose errors are not the click package's
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer used the click package
    from click import ClickException

from bibev import __version__
from bibev.cli import compact as compact_cmd
from bibev.cli import config as config_cmd
from bibev.cli import db, demo, pending, providers, report, sim, transform
from bibev.cli import segment as segment_cmd
from bibev.cli import stream as stream_cmd
from bibev.cli.common import CliState, err, state, unwrap_help
from bibev.cli.logs import configure_logging
from bibev.errors import BibevError

logger = logging.getLogger("bibev.cli")

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 unexpected error, 2 usage or configuration, 3 provider or auth, "
    "4 storage, 5 partial success (some partitions failed, the rest are done)."
)

app = typer.Typer(
    name="bibev",
    help="EV battery analytics: ingest, stream, compact, clean, segment, report.\n\n"
    "Example: bibev --root s3://fleet-data/bibev compact --date 2025-03-01",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bibev {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    root: Annotated[
        str | None,
        typer.Option(help="Storage root: a directory, s3://bucket/prefix or memory://name."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of the bibev database.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Settings file (default: $BIBEV_CONFIG or ./bibev.toml).")
    ] = None,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            metavar="",
            show_default=False,
            help="More logs (-v: debug lines).",
        ),
    ] = 0,
    quiet: Annotated[
        int,
        typer.Option(
            "--quiet",
            "-q",
            count=True,
            metavar="",
            show_default=False,
            help="Fewer logs (-q: warnings and errors, -qq: errors only).",
        ),
    ] = 0,
    log_format: Annotated[
        LogFormat | None, typer.Option(case_sensitive=False, help="Log lines: text or json.")
    ] = None,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="Never draw progress bars.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """Flags set here win over BIBEV_* variables, which win over bibev.toml."""
    flags = {
        "root": root,
        "database_url": database_url,
        "log_format": log_format.value if log_format else None,
        "verbosity": (verbose - quiet) or None,
        "progress": False if no_progress else None,
        "debug": True if debug else None,
    }
    cli = CliState(flags={k: v for k, v in flags.items() if v is not None}, config_path=config)
    ctx.obj = cli
    _RUNTIME["debug"] = debug
    settings = cli.resolved().settings
    _RUNTIME.update(debug=settings.debug, json=settings.log_format == "json")
    secrets = [settings.database_url.get_secret_value()]
    secrets += [
        s.get_secret_value()
        for s in (settings.s3_access_key_id, settings.s3_secret_access_key)
        if s
    ]
    secrets += [
        value.get_secret_value()
        for value in settings.kafka_consumer_config.values()
        if isinstance(value, SecretStr)
    ]
    configure_logging(
        verbosity=settings.verbosity,
        log_format=settings.log_format,
        secrets=[s for s in secrets if "://" not in s] + _url_passwords(secrets),
        debug=settings.debug,
    )


def _url_passwords(values: list[str]) -> list[str]:
    from sqlalchemy.engine import make_url

    found = []
    for value in values:
        try:
            password = make_url(value).password
        except Exception:  # noqa: S112 - not a URL: nothing to mask
            continue
        if password:
            found.append(str(password))
    return found


# What the error reporter needs to know once the callback has resolved the settings.
_RUNTIME = {"debug": False, "json": False}

app.add_typer(providers.app)
app.add_typer(db.app)
app.add_typer(config_cmd.app)
app.add_typer(transform.app)
app.add_typer(report.app)
app.command("sim", help=sim.sim.__doc__, epilog=getattr(sim, "EPILOG", None))(sim.sim)
app.command("stream", help=stream_cmd.stream.__doc__, epilog=stream_cmd.EPILOG)(stream_cmd.stream)
app.command("compact", epilog=compact_cmd.EPILOG)(compact_cmd.compact)
app.command("segment", help=segment_cmd.segment_cmd.__doc__, epilog=segment_cmd.SEGMENT_EPILOG)(
    segment_cmd.segment_cmd
)
app.command("demo", help=demo.demo.__doc__, epilog=demo.EPILOG)(demo.demo)
pending.register(app)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (``main`` exits with it)."""
    command = typer.main.get_command(app)
    unwrap_help(command)
    try:
        result = command.main(args=argv, prog_name="bibev", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except ClickException as exc:
        exc.show(file=sys.stderr)
        return 2 if exc.exit_code not in (0, 1) else exc.exit_code
    except typer.Abort:
        err.print("aborted")
        return 130
    except BibevError as exc:
        return _report(exc, exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:
        return _report(exc, 1, prefix="unexpected error: ")
    return result if isinstance(result, int) else 0


def _report(exc: BaseException, code: int, prefix: str = "") -> int:
    if _RUNTIME["debug"]:
        # plain traceback: never rich's, which can show local variables (and secrets)
        traceback.print_exception(exc, file=sys.stderr)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    failures = list(getattr(exc, "failures", None) or ())
    if _RUNTIME["json"]:
        logger.error(f"{prefix}{message}", extra={"exit_code": code, "failures": failures})
        return code
    err.print(f"error: {prefix}{message}", markup=False, highlight=False)
    for partition, reason in failures:
        err.print(f"  failed: {partition}: {reason}", markup=False, highlight=False)
    if code == 1 and not _RUNTIME["debug"]:
        err.print("(run again with --debug for the traceback)")
    return code


def main() -> None:
    sys.exit(run(sys.argv[1:]))


__all__ = ["CliState", "app", "main", "run", "state"]
