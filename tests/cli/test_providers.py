"""``bibev providers list|show``, through the real registry and real entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bibev.cli.providers import app
from bibev.errors import ConfigError
from bibev.providers import get_registry
from tests.test_registry import FakeAdapter, write_plugin

EXAMPLE = "example-logger"
BUILTINS = {"tesla", "bmw", "high-mobility", "mobilisight", "sim"}
EXAMPLE_ROW = {
    "name": EXAMPLE,
    "status": "ok",
    "package": "bibev-provider-example",
    "version": "0.1.0",
    "entry_point": "bibev_provider_example.adapter:ExampleLoggerAdapter",
    "formats": ["json"],
    "description": "FleetLogger OBD dongles: JSON messages, pull API",
    "can_fetch": True,
    "error": None,
}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Invoke ``bibev providers`` in an empty directory (no stray bibev.toml)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, plugins: str | None = EXAMPLE):
        env = {"BIBEV_PLUGINS": plugins, "BIBEV_CONFIG": None, "COLUMNS": "200"}
        return runner.invoke(app, list(args), env=env)

    return invoke


@pytest.fixture
def ghost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real installed plugin whose module does not exist; returns its (unique) name."""
    name = f"ghost-{uuid.uuid4().hex[:8]}"
    site = tmp_path / "site"
    write_plugin(site, {name: "bibev_no_such_module:GhostAdapter"}, {}, dist=f"{name}-dist")
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    return name


def test_list_json_shows_the_example_and_disables_the_rest(cli):
    result = cli("list", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert result.exit_code == 0
    assert rows[EXAMPLE] == EXAMPLE_ROW
    assert {rows[name]["status"] for name in BUILTINS} == {"disabled"}
    assert {rows[name]["package"] for name in BUILTINS} == {"bibev"}


def test_list_shows_a_broken_plugin_and_still_succeeds(cli, ghost):
    with pytest.warns(UserWarning, match=f"'{ghost}'"):
        result = cli("list", plugins=f"{EXAMPLE},{ghost}")
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert result.exit_code == 0
    assert "broken" in lines[ghost]
    assert "ModuleNotFoundError: No module named 'bibev_no_such_module'" in lines[ghost]
    assert f"{ghost}-dist" in lines[ghost]
    assert [cell.strip() for cell in lines[EXAMPLE].split("│")[1:7]] == [
        EXAMPLE,
        "ok",
        "json",
        "bibev-provider-example",
        "0.1.0",
        "yes",
    ]


def test_list_includes_a_registered_fake_adapter(cli):
    registry = get_registry([EXAMPLE])
    registry.register(FakeAdapter, package="tests", version="9.9")
    try:
        rows = {row["name"]: row for row in json.loads(cli("list", "--json").stdout)}
    finally:
        registry.unregister(FakeAdapter.name)
    assert (rows["fake-test"]["status"], rows["fake-test"]["can_fetch"]) == ("ok", False)
    assert rows["fake-test"]["entry_point"] == "tests.test_registry:FakeAdapter"


def test_show_prints_options_with_secrets_marked_and_the_mapping(cli):
    result = cli("show", EXAMPLE)
    lines = [" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()]
    assert result.exit_code == 0
    assert "package: bibev-provider-example 0.1.0" in lines
    assert "formats: json fetch: yes" in lines
    assert "api_key SecretStr | None None secret API key of the fleet account" in lines
    assert "page_size int 500 Messages per request" in lines
    assert "odo_mi odometer_km 1.60934 0 miles" in lines
    assert "amb_f outside_temp_c 0.555556 -17.7778 °F" in lines


def test_show_json_gives_the_full_description(cli):
    info = json.loads(cli("show", EXAMPLE, "--json").stdout)
    assert (info["package"], info["version"], info["formats"]) == (
        "bibev-provider-example",
        "0.1.0",
        ["json"],
    )
    assert [o["name"] for o in info["options"] if o["secret"]] == ["api_key"]
    charger = [m for m in info["mapping"] if m["column"] == "charger_kind"]
    assert charger == [
        {
            "key": "chg",
            "column": "charger_kind",
            "scale": 1.0,
            "offset": 0.0,
            "enum": {"ac": "ac", "dc": "dc", "off": "none"},
            "cast": "str",
            "note": "",
        }
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", "unknown provider 'nope'; available: example-logger"),
        ("tesla", "provider 'tesla' is disabled: BIBEV_PLUGINS allows only example-logger"),
    ],
)
def test_show_refuses_an_unusable_provider(cli, name, message):
    result = cli("show", name)
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == message
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["list", "show"])
def test_every_command_help_has_an_example(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0
    assert "Example: " in result.stdout
    assert "bibev providers" in result.stdout


def test_the_installed_command_lists_providers_as_json(tmp_path: Path, ghost: str):
    """The real ``bibev`` console script, in a fresh process, with a broken plugin installed."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "site"),
        "BIBEV_PLUGINS": f"{EXAMPLE},{ghost},tesla",
    }
    env.pop("BIBEV_CONFIG", None)
    bibev = Path(sys.executable).with_name("bibev")
    result = subprocess.run(
        [str(bibev), "providers", "list", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert result.returncode == 0, result.stderr
    assert rows[EXAMPLE] == EXAMPLE_ROW
    assert (rows[ghost]["status"], rows[ghost]["package"]) == ("broken", f"{ghost}-dist")
    assert ghost in result.stderr
    assert rows["tesla"]["status"] in ("ok", "broken")
    assert {rows[name]["status"] for name in BUILTINS - {"tesla"}} == {"disabled"}
