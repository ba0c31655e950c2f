"""``bibev db``: migrations with the configured URL, and the runs log."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner, Result

from bibev.cli import db
from bibev.cli.app import run
from bibev.db import migrate
from bibev.db.engine import make_engine
from bibev.errors import StorageError

runner = CliRunner()
HEAD = migrate.heads()[0]
_COUNT = len(list((migrate.migrations_dir() / "versions").glob("[0-9]*.py")))
STEPS = f"{_COUNT} step{'s' if _COUNT != 1 else ''}"


@pytest.fixture(autouse=True)
def _no_local_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # settings read ./bibev.toml: run where there is none
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BIBEV_CONFIG", raising=False)


def bibev_db(url: str, *args: str) -> Result:
    return runner.invoke(db.app, list(args), env={"BIBEV_DATABASE_URL": url})


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_then_downgrade(database_url: str) -> None:
    result = bibev_db(database_url, "upgrade")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{HEAD}\n"
    assert f"base (empty) -> {HEAD} ({STEPS})" in result.stderr
    assert {"vehicles", "ingest_cursors", "runs"} <= table_names(database_url)

    result = bibev_db(database_url, "downgrade", "base")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"{HEAD} -> base (empty) ({STEPS})" in result.stderr
    assert table_names(database_url) == {"alembic_version"}


def test_upgrade_is_recorded_in_runs(sqlite_database_url: str) -> None:
    assert bibev_db(sqlite_database_url, "upgrade").exit_code == 0
    assert bibev_db(sqlite_database_url, "upgrade").exit_code == 0
    result = bibev_db(sqlite_database_url, "runs", "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [(r["command"], r["status"], r["counts"], r["parameters"]) for r in runs] == [
        ("db upgrade", "ok", {"steps": 0}, {"revision": "head"}),
        ("db upgrade", "ok", {"steps": _COUNT}, {"revision": "head"}),
    ]


def test_runs_table_and_limit(sqlite_database_url: str) -> None:
    for _ in range(3):
        bibev_db(sqlite_database_url, "upgrade")
    result = bibev_db(sqlite_database_url, "runs", "--limit", "2", "--json")
    assert [r["id"] for r in json.loads(result.stdout)] == [3, 2]
    table = bibev_db(sqlite_database_url, "runs").stdout
    assert table.count("db upgrade") == 3
    assert f"steps={_COUNT}" in table


def touch(url: str) -> None:
    """Make the database exist, without tables (a SQLite file is made on first connect)."""
    engine = make_engine(url)
    with engine.connect():
        pass
    engine.dispose()


def test_runs_on_a_fresh_database_is_empty(database_url: str) -> None:
    touch(database_url)
    result = bibev_db(database_url, "runs", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize("command", [["db", "runs"], ["report", "quality"], ["db", "current"]])
def test_reading_a_sqlite_file_that_does_not_exist_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'typo' / 'bibev.db'}"
    code = run(["--database-url", url, *command])
    err = capsys.readouterr().err
    if command == ["db", "current"]:
        assert (code, err) == (0, f"no database at {url} yet: run `bibev db upgrade`\n")
    else:
        assert code == 2
        assert f"error: no bibev database at {url}: the first command that writes makes it" in err
    assert list(tmp_path.iterdir()) == []


def test_current_and_heads(database_url: str) -> None:
    touch(database_url)
    fresh = bibev_db(database_url, "current")
    assert (fresh.exit_code, fresh.stdout) == (0, "")
    assert "the database is empty: run `bibev db upgrade`" in fresh.stderr
    bibev_db(database_url, "upgrade")
    assert bibev_db(database_url, "current").stdout == f"{HEAD}\n"
    assert bibev_db(database_url, "heads").stdout == f"{HEAD}\n"


def test_downgrade_needs_a_revision(sqlite_database_url: str) -> None:
    result = bibev_db(sqlite_database_url, "downgrade")
    assert result.exit_code == 2
    assert "Missing argument" in result.output
    assert "REV" in result.output
    assert not Path(sqlite_database_url.removeprefix("sqlite:///")).exists()


def test_unknown_revision_is_a_config_error(sqlite_database_url: str) -> None:
    result = bibev_db(sqlite_database_url, "upgrade", "abc123")
    assert type(result.exception).__name__ == "ConfigError"
    assert "abc123" in str(result.exception)


def test_revision_into_a_copy_of_the_migrations(tmp_path: Path, sqlite_database_url: str) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    shipped = sorted(p.name for p in (migrate.migrations_dir() / "versions").glob("*.py"))
    result = bibev_db(
        sqlite_database_url, "revision", "-m", "add soh estimates", "--migrations-dir", str(copy)
    )
    assert result.exit_code == 0, result.output
    written = Path(result.stdout.strip())
    assert written == copy / "versions" / f"{int(HEAD) + 1:04d}_add_soh_estimates.py"
    assert '"""add soh estimates' in written.read_text()
    assert sorted(p.name for p in (migrate.migrations_dir() / "versions").glob("*.py")) == shipped


@pytest.mark.parametrize(
    ("copied", "flags", "missing"),
    [((), (), "script.py.mako"), (("script.py.mako",), ("--autogenerate",), "env.py")],
)
def test_revision_into_a_folder_alembic_cannot_use_exits_2(
    tmp_path: Path,
    sqlite_database_url: str,
    capsys: pytest.CaptureFixture[str],
    copied: tuple[str, ...],
    flags: tuple[str, ...],
    missing: str,
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    for name in copied:
        shutil.copy(migrate.migrations_dir() / name, folder)
    args = ["--database-url", sqlite_database_url, "db", "revision", "-m", "x", *flags]
    assert run([*args, "--migrations-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"error: {folder} is not an Alembic migrations folder (no {missing})" in err
    assert sorted(p.name for p in folder.iterdir()) == sorted(copied)


def test_each_command_has_an_example() -> None:
    for name in ("upgrade", "downgrade", "current", "heads", "revision", "runs"):
        result = runner.invoke(db.app, [name, "--help"])
        assert result.exit_code == 0
        assert "Example: bibev db " + name in result.stdout


def test_unreachable_server_hides_the_password() -> None:
    result = bibev_db("postgresql+psycopg://bob:hunter2@127.0.0.1:1/bibev", "upgrade")
    assert isinstance(result.exception, StorageError)
    assert "bob:***@127.0.0.1:1/bibev" in str(result.exception)
    assert "hunter2" not in str(result.exception) + result.output


def test_end_to_end_through_the_bibev_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    upgrade = subprocess.run(
        [sys.executable, "-m", "bibev", "--database-url", url, "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (upgrade.returncode, upgrade.stdout) == (0, f"{HEAD}\n"), upgrade.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "bibev", "db", "current"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"BIBEV_DATABASE_URL": "postgresql+psycopg://bob:hunter2@127.0.0.1:1/db", "PATH": ""},
    )
    assert bad.returncode == 4
    assert (
        "cannot connect to the database postgresql+psycopg://bob:***@127.0.0.1:1/db" in bad.stderr
    )
    assert "hunter2" not in bad.stderr + bad.stdout
