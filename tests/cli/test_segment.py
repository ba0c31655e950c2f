"""``bibev transform segment``, ``bibev segment`` and ``bibev transform all`` as a user runs
them: summary, files, the segments table, the runs row, exit codes, and sim → all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

from bibev.cli.app import run
from bibev.db import open_database, recent_runs
from bibev.db.segments import load_segments
from bibev.storage import Storage
from tests.pipeline.test_segment_run import DAY1, DAY2, VIN, VIN2, put_clean, two_days


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
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
    put_clean(root, pl.concat([two_days(), two_days(VIN2)]), [DAY1, DAY2])
    return root


def bibev(*args: str) -> int:
    return run(["--no-progress", *args])


def summary(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert bibev(*args, "--json", "--workers", "1") == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("command", [("transform", "segment"), ("segment",)])
def test_segments_prints_a_summary_fills_the_table_and_records_the_run(
    storage: Storage, env: dict[str, str], capsys: pytest.CaptureFixture[str], command: tuple
) -> None:
    totals = summary(capsys, *command)
    assert {k: totals[k] for k in ("partitions", "charging", "driving", "failed")} == {
        "partitions": 4,
        "charging": 2,
        "driving": 4,
        "failed": 0,
    }
    engine = open_database(env["BIBEV_DATABASE_URL"])
    stored, [recorded] = load_segments(engine), recent_runs(engine)
    engine.dispose()
    assert len(stored) == totals["sessions"] == totals["rows_stored"]
    assert (recorded.command, recorded.status, recorded.counts["sessions"]) == (
        "transform segment",
        "ok",
        totals["sessions"],
    )
    files = storage.list("segments")
    assert len(files) == 4
    assert pl.concat([storage.read_parquet(k) for k in files]).height == totals["sessions"]


def test_a_day_and_a_vehicle_can_be_chosen(
    storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    totals = summary(capsys, "segment", "--date", "2025-03-03", "--vin", VIN2, "--batch-size", "1")
    assert totals["partitions"] == 1
    assert storage.list("segments") == [storage.day_key("segments", DAY1, VIN2)]


def test_the_table_is_printed_by_default(
    storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bibev("transform", "segment", "--workers", "1") == 0
    printed = capsys.readouterr().out
    assert "bibev transform segment" in printed
    assert "charging" in printed
    assert "files written" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--date", "2025-3-x"), "is not a YYYY-MM-DD day"),
        (("--date", "2025-03-03", "--from", "2025-03-01"), "either --date or --from/--to"),
        (("--vin", "not-a-vin"), "invalid VIN"),
        (("--batch-size", "0"), "--batch-size"),
        (("--dask", "notanaddress"), "'notanaddress' is not a Dask scheduler address"),
    ],
)
def test_bad_options_exit_2(
    storage: Storage, capsys: pytest.CaptureFixture[str], args: tuple, message: str
) -> None:
    assert bibev("segment", *args) == 2
    assert message in capsys.readouterr().err


def test_a_failed_partition_exits_5_and_is_listed(
    storage: Storage, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    storage.write_bytes(storage.day_key("clean", DAY2, VIN2), b"broken")
    assert bibev("segment", "--workers", "1") == 5
    err = capsys.readouterr().err
    assert f"failed: {VIN2} {DAY2}" in err
    engine = open_database(env["BIBEV_DATABASE_URL"])
    [recorded] = recent_runs(engine)
    engine.dispose()
    assert recorded.status == "partial"
    assert storage.exists(storage.day_key("segments", DAY2, VIN))


def test_all_runs_clean_then_segment_from_a_simulated_fleet(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert bibev("sim", "--vehicles", "2", "--days", "2", "--start", "2025-03-03") == 0
    assert bibev("compact", "--workers", "1") == 0
    capsys.readouterr()
    first = summary(capsys, "transform", "all")
    assert first["clean"]["partitions"] == first["segment"]["partitions"] == 4
    assert first["segment"]["files_written"] == 4
    assert first["segment"]["driving"] > 0
    again = summary(capsys, "transform", "all", "--batch-size", "1")
    assert again["segment"]["files_unchanged"] == 4
    assert again["clean"]["files_unchanged"] == 4
    storage = Storage(env["BIBEV_ROOT"])
    truth = storage.read_parquet("truth/sessions.parquet")
    found = pl.concat([storage.read_parquet(k) for k in storage.list("segments")])
    assert set(found["vin"].to_list()) == set(truth["vin"].to_list())
    engine = open_database(env["BIBEV_DATABASE_URL"])
    commands = [r.command for r in recent_runs(engine)]
    engine.dispose()
    assert commands[:2] == ["transform all", "transform all"]


def test_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert bibev("transform", "all", "--help") == 0
    assert "Example: bibev transform all --date 2025-03-01" in capsys.readouterr().out
