"""``bibev compact`` as a user runs it: options, summary, runs row, exit codes, the cron script."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bibev.cli.app import run
from bibev.db import open_database, recent_runs
from bibev.pipeline.compact import lock_name
from bibev.storage import Storage
from tests.cli.scripts import EXAMPLES, run_script
from tests.pipeline.test_compact import VIN, VIN2, soc_lines, tesla_line, write_temp

YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).date()
TODAY = datetime.now(UTC).date()
SCRIPT = EXAMPLES / "cron" / "nightly-compact.sh"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An empty working directory, a root and a SQLite database of its own."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("BIBEV_")]:
        monkeypatch.delenv(name)
    values = {
        "BIBEV_ROOT": str(tmp_path / "root"),
        "BIBEV_DATABASE_URL": f"sqlite:///{tmp_path / 'bibev.db'}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def storage(env: dict[str, str]) -> Storage:
    root = Storage(env["BIBEV_ROOT"])
    write_temp(root, YESTERDAY, "a.jsonl", [*soc_lines(YESTERDAY, 3), "garbage"])
    write_temp(root, YESTERDAY, "b.jsonl", soc_lines(YESTERDAY, 2, vin=VIN2), vin=VIN2)
    return root


def bibev(*args: str) -> int:
    return run(["--no-progress", *args])


def test_compacts_prints_a_summary_and_records_the_run(
    storage: Storage, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert bibev("compact", "--json", "--workers", "1") == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("days", "vehicles", "files", "rows_out", "quarantined")} == {
        "days": 1,
        "vehicles": 2,
        "files": 2,
        "rows_out": 5,
        "quarantined": 1,
    }
    assert storage.read_parquet(storage.day_key("compressed", YESTERDAY, VIN)).height == 3
    engine = open_database(env["BIBEV_DATABASE_URL"])
    [row] = recent_runs(engine)
    engine.dispose()
    assert (row.command, row.status) == ("compact", "ok")
    assert row.counts["messages"] == 6
    assert row.counts["bytes_in"] > row.counts["quarantined"] > 0


def test_the_table_names_every_count(storage: Storage, capsys: pytest.CaptureFixture[str]) -> None:
    assert bibev("compact", "--workers", "1") == 0
    table = capsys.readouterr().out
    for label in ("days", "vehicles", "files", "messages", "rows out", "duplicates", "seconds"):
        assert label in table


def test_dry_run_lists_and_changes_nothing(
    storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    before = storage.list("")
    assert bibev("compact", "--dry-run", "--json", "--vin", VIN) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [(p["vin"], p["files"], p["merge_into_existing"]) for p in plan["partitions"]] == [
        (VIN, 1, False)
    ]
    assert storage.list("") == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vin", "5YJ3E1EA7KF00000I"], "invalid VIN"),
        (["--date", "2025-02-30"], "not a YYYY-MM-DD day"),
        (["--date", "2025-03-01", "--from", "2025-03-01"], "either --date or --from/--to"),
        (["--from", "2025-03-05", "--to", "2025-03-01"], "after --to"),
        (["--date", str(TODAY)], "--include-today"),
        (["--dask", "notanaddress"], "'notanaddress' is not a Dask scheduler address"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    env: dict[str, str], args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bibev("compact", *args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        (
            '{"tesla": {"bogus_opt": 1}}',
            "[providers.tesla] in the settings: invalid options for provider 'tesla': bogus_opt",
        ),
        ('{"nosuch": {"a": 1}}', "[providers.nosuch] in the settings: unknown provider 'nosuch'"),
    ],
)
def test_provider_options_are_checked_before_anything_is_read(
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
    providers: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BIBEV_PROVIDERS", providers)
    before = storage.list("")
    assert bibev("compact") == 2
    assert message in capsys.readouterr().err
    assert storage.list("") == before


def test_a_locked_partition_exits_5_and_lists_it(
    storage: Storage, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with storage.lock(lock_name(VIN, YESTERDAY)):
        assert bibev("compact", "--workers", "1") == 5
    err = capsys.readouterr().err
    assert f"failed: {VIN} {YESTERDAY}: LockedError" in err
    assert storage.exists(storage.day_key("compressed", YESTERDAY, VIN2))
    engine = open_database(env["BIBEV_DATABASE_URL"])
    [row] = recent_runs(engine)
    engine.dispose()
    assert row.status == "partial"
    assert row.counts["failed"] == 1


def test_today_only_with_include_today(env: dict[str, str]) -> None:
    root = Storage(env["BIBEV_ROOT"])
    write_temp(root, TODAY, "a.jsonl", [tesla_line(f"{TODAY}T00:00:01Z", {"Soc": 1.0})])
    assert bibev("compact", "--workers", "1") == 0
    assert root.list("compressed") == []
    assert bibev("compact", "--workers", "1", "--include-today", "--date", str(TODAY)) == 0
    assert root.exists(root.day_key("compressed", TODAY, VIN))


def cron(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_script(SCRIPT, env, "--workers", "1", *args)


def test_the_cron_script_compacts_and_exits_zero(storage: Storage, env: dict[str, str]) -> None:
    result = cron(env)
    assert result.returncode == 0, result.stderr
    assert "nightly-compact: done" in result.stderr
    assert "rows out" in result.stdout
    assert storage.list("temp") == []


def test_the_cron_script_exits_non_zero_on_failure(storage: Storage, env: dict[str, str]) -> None:
    with storage.lock(lock_name(VIN, YESTERDAY)):
        locked = cron(env)
    assert locked.returncode == 5
    assert "failed with exit code 5" in locked.stderr
    unusable = cron({**env, "BIBEV_ROOT": "ftp://nowhere"})
    assert unusable.returncode == 2
    assert "unsupported storage root" in unusable.stderr
