"""The example systemd unit runs a real `bibev stream` command line and stops it with SIGTERM."""

import shlex
from pathlib import Path

import typer

from bibev.cli.app import app

UNIT = Path(__file__).parents[2] / "examples" / "systemd" / "bibev-stream.service"


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    text = UNIT.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            name, value = line.split("=", 1)
            settings.setdefault(name, []).append(value)
    return settings


def test_the_unit_starts_bibev_stream_with_known_options_and_drains_on_stop():
    settings = unit_settings()
    argv = shlex.split(settings["ExecStart"][0])
    assert argv[0].endswith("/bibev")
    command = typer.main.get_command(app)
    global_options = {o for p in command.params for o in p.opts}
    stream = command.commands["stream"]  # type: ignore[attr-defined]
    stream_options = {o for p in stream.params for o in p.opts}
    at = argv.index("stream")
    assert {a for a in argv[1:at] if a.startswith("-")} <= global_options
    assert {a for a in argv[at + 1 :] if a.startswith("-")} <= stream_options
    assert settings["KillSignal"] == ["SIGTERM"]
    assert int(settings["TimeoutStopSec"][0]) >= 60
    assert settings["Restart"] == ["always"]
