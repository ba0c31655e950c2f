"""The command line as a user meets it: help, version, global options and exit codes."""

import json
import subprocess
import sys

import pytest
import typer

from bibev import __version__
from bibev.cli.app import app, run
from bibev.cli.pending import PENDING
from bibev.errors import (
    BibevError,
    LockedError,
    PartialFailure,
    ProviderAuthError,
    ProviderTransientError,
    StorageError,
)
from bibev.storage import validate_vin

COMMANDS = [
    "ingest",
    "stream",
    "compact",
    "transform",
    "segment",
    "report",
    "providers",
    "db",
    "sim",
    "demo",
    "config",
]


@pytest.fixture
def raising_command():
    """Register a real command that raises what the test asks for, then remove it."""
    created = []

    def register(exc: BaseException) -> str:
        name = f"boom{len(created)}"

        @app.command(name, hidden=True)
        def boom(vin: str = "") -> None:
            if vin:
                validate_vin(vin)
            raise exc

        created.append(app.registered_commands[-1])
        return name

    yield register
    for command in created:
        app.registered_commands.remove(command)


def test_help_lists_every_command(isolated, capsys):
    assert run(["--help"]) == 0
    text = capsys.readouterr().out
    for name in COMMANDS:
        assert name in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(isolated, capsys, command):
    assert run([command, "--help"]) == 0
    assert "Example" in capsys.readouterr().out


def test_help_paragraphs_are_wrapped_by_the_terminal_not_by_the_docstring(
    isolated, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "80")
    assert run(["transform", "clean", "--help"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    # The docstring breaks this paragraph after "drops" and "carried"; rendered at 80
    # columns each line is filled up to the width instead.
    start = next(i for i, line in enumerate(lines) if line.startswith("Maps each provider"))
    paragraph = lines[start : lines.index("", start)]
    assert len(paragraph) >= 3
    assert all(len(line) > 65 for line in paragraph[:-1]), paragraph


@pytest.mark.parametrize(
    "command", [["compact"], ["transform", "clean"], ["transform", "segment"], ["transform", "all"]]
)
def test_a_root_that_does_not_exist_is_a_storage_error_not_an_empty_run(isolated, capsys, command):
    typo = isolated / "bibev-dta"
    assert run(["--no-progress", "--root", str(typo), *command]) == 4
    err = capsys.readouterr().err
    assert f"error: the storage root {typo} does not exist (no such directory)" in err
    assert not typo.exists()


def test_verbose_and_quiet_show_as_flags_not_numbers(isolated, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    assert run(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for flag in ("--verbose", "--quiet"):
        [line] = [line for line in lines if flag in line]
        assert "<int>" not in line
        assert "default: 0" not in line
    assert any("-qq: errors only" in line for line in lines)


def test_version(isolated, capsys):
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bibev {__version__}"


@pytest.mark.parametrize("command", sorted(PENDING))
def test_pending_commands_exit_2_and_say_so(isolated, capsys, command):
    assert run([command]) == 2
    captured = capsys.readouterr()
    assert "not available yet" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("command", sorted(PENDING))
def test_pending_commands_say_so_first_in_their_help(isolated, capsys, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "200")
    assert run([command, "--help"]) == 0
    usage, summary, *_ = [
        line.strip() for line in capsys.readouterr().out.splitlines() if line.strip()
    ]
    assert usage.startswith(f"Usage: bibev {command}")
    assert summary.startswith("Not available yet.")
    assert run(["--help"]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if f" {command} " in line]
    assert "Not available yet." in row


def test_report_help_names_only_the_reports_that_exist(isolated, capsys):
    assert run(["report", "--help"]) == 0
    text = capsys.readouterr().out
    assert "Report data quality per (VIN, day)." in text
    assert "state of health" not in text
    assert "fleet" not in text


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (RuntimeError("kaput"), 1),
        (BibevError("generic"), 1),
        (ProviderAuthError("token expired"), 3),
        (ProviderTransientError("429", retry_after=5), 3),
        (StorageError("disk full"), 4),
        (LockedError("held by host:1"), 4),
        (PartialFailure("2 of 5 partitions failed", [("2025-03-01/VIN", "boom")]), 5),
    ],
)
def test_errors_map_to_exit_codes(isolated, capsys, raising_command, exc, code):
    name = raising_command(exc)
    assert run([name]) == code
    err = capsys.readouterr().err
    assert str(exc) in err
    assert "Traceback" not in err


def test_partial_failure_lists_the_failed_partitions(isolated, capsys, raising_command):
    name = raising_command(
        PartialFailure("1 of 3 failed", [("2025-03-01/5YJ3E1EA7KF000001", "bad file")])
    )
    assert run([name]) == 5
    assert "2025-03-01/5YJ3E1EA7KF000001: bad file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "vin", ["../../etc", "5YJ3E1EA7KF00000", "5YJ3E1EA7KF00000/", "5YJ3E1EA7KF00000I"]
)
def test_bad_vin_is_exit_2_naming_the_value(isolated, capsys, raising_command, vin):
    name = raising_command(RuntimeError("never reached"))
    assert run([name, "--vin", vin]) == 2
    assert repr(vin) in capsys.readouterr().err


def test_debug_shows_the_traceback(isolated, capsys, raising_command):
    name = raising_command(RuntimeError("kaput"))
    assert run(["--debug", name]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_exit_2(isolated, capsys):
    assert run(["--no-such-option"]) == 2
    assert run(["no-such-command"]) == 2
    assert run(["--log-format", "xml", "config", "show"]) == 2


def test_bad_config_exits_2(isolated, capsys):
    (isolated / "bibev.toml").write_text("workers = -1\n")
    assert run(["config", "show"]) == 2
    assert "workers" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["BIBEV_PROVIDERS", "BIBEV_KAFKA_CONSUMER_CONFIG"])
def test_env_value_that_is_not_json_exits_2_naming_the_variable(
    isolated, capsys, monkeypatch, name
):
    monkeypatch.setenv(name, "not json")
    assert run(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert f"error: {name} is not valid JSON" in err
    assert "unexpected" not in err


def test_config_show_masks_secrets_and_names_sources(isolated, capsys, monkeypatch):
    (isolated / "bibev.toml").write_text(
        'workers = 2\n[providers.tesla]\nclient_secret = "tesla-secret-1"\n'
    )
    monkeypatch.setenv("BIBEV_DATABASE_URL", "postgresql+psycopg://bob:hunter2-pw@db.example/bibev")
    monkeypatch.setenv("BIBEV_S3_SECRET_ACCESS_KEY", "s3-secret-xyz")
    assert run(["--root", "s3://bucket/x", "config", "show", "--json"]) == 0
    text = capsys.readouterr().out
    for secret in ("hunter2-pw", "tesla-secret-1", "s3-secret-xyz"):
        assert secret not in text
    settings = json.loads(text)["settings"]
    assert settings["root"] == {"value": "s3://bucket/x", "source": "flag"}
    assert settings["workers"] == {"value": 2, "source": "config"}
    assert settings["database_url"]["value"] == "postgresql+psycopg://bob:***@db.example/bibev"
    assert settings["database_url"]["source"] == "env"
    assert settings["log_format"] == {"value": "text", "source": "default"}


def test_config_show_table_goes_to_stdout(isolated, capsys):
    assert run(["config", "show"]) == 0
    captured = capsys.readouterr()
    assert "./bibev-data" in captured.out
    assert "default" in captured.out


def test_s3_root_resolves_without_network(isolated, capsys):
    """No S3 server exists at this endpoint: config show must not try to reach it."""
    code = run(["--root", "s3://bucket/x", "config", "show", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["settings"]["root"]["value"] == "s3://bucket/x"


def test_python_dash_m_and_console_script(isolated):
    for argv in ([sys.executable, "-m", "bibev", "--version"], ["bibev", "--version"]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"bibev {__version__}"


def test_json_logs_go_to_stderr_as_json_lines(isolated):
    done = subprocess.run(
        [sys.executable, "-m", "bibev", "--log-format", "json", "-v", "ingest"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert line["level"] == "error"
    assert "not available yet" in line["message"]
    assert line["exit_code"] == 2


def test_typer_is_only_imported_by_the_cli():
    code = (
        "import sys, bibev.storage, bibev.config, bibev.schema, bibev.pipeline.mapping, "
        "bibev.executors; print('typer' in sys.modules, 'rich' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_app_is_a_typer_app():
    assert isinstance(app, typer.Typer)


def test_config_show_masks_kafka_credentials(isolated, capsys, monkeypatch):
    consumer = {"sasl.oauthbearer.config": "scope=x secret=oauth-xyz", "sasl.username": "bibev"}
    monkeypatch.setenv("BIBEV_KAFKA_CONSUMER_CONFIG", json.dumps(consumer))
    assert run(["config", "show"]) == 0
    table = capsys.readouterr().out
    assert "oauth-xyz" not in table
    assert "SecretStr" not in table
    assert run(["config", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["settings"]["kafka_consumer_config"]["value"]
    assert shown == {"sasl.oauthbearer.config": "**********", "sasl.username": "bibev"}
