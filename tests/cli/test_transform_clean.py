"""``bibev transform clean`` as a user runs it: options, summary, runs row, quality records,
exit codes, and the whole chain from ``bibev sim`` on."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from bibev.cli.app import run
from bibev.db import open_database, recent_runs
from bibev.db.quality import clean_quality_rows
from bibev.pipeline.compact import run_compact
from bibev.storage import Storage
from tests.pipeline.test_clean_run import DAY1, DAY2, VIN, VIN2, put, tesla_day
from tests.pipeline.test_clean_sim import NOW


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
    put(root, DAY1, VIN, tesla_day(DAY1))
    put(root, DAY2, VIN, tesla_day(DAY2, start_soc=70.0))
    put(root, DAY1, VIN2, tesla_day(DAY1, vin=VIN2, start_soc=50.0))
    return root


def bibev(*args: str) -> int:
    return run(["--no-progress", *args])


def summary_of(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert bibev("transform", "clean", "--json", "--workers", "1", *args) == 0
    return json.loads(capsys.readouterr().out)


def test_cleans_prints_a_summary_and_records_the_run(
    storage: Storage, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    summary = summary_of(capsys)
    assert {k: summary[k] for k in ("days", "vehicles", "partitions", "rows_out", "failed")} == {
        "days": 2,
        "vehicles": 2,
        "partitions": 3,
        "rows_out": 12,
        "failed": 0,
    }
    clean = storage.read_parquet(storage.day_key("clean", DAY1, VIN2))
    assert clean["soc_pct"].to_list() == [42.0, 41.0, 40.0, 39.0]
    engine = open_database(env["BIBEV_DATABASE_URL"])
    [row] = recent_runs(engine)
    quality = clean_quality_rows(engine)
    engine.dispose()
    assert (row.command, row.status, row.counts["rows_out"]) == ("transform clean", "ok", 12)
    assert row.parameters["vins"] is None
    assert [(q["day"], q["vin"], q["rows_out"]) for q in quality] == [
        (DAY1, VIN, 4),
        (DAY1, VIN2, 4),
        (DAY2, VIN, 4),
    ]


def test_the_table_names_every_count(storage: Storage, capsys: pytest.CaptureFixture[str]) -> None:
    assert bibev("transform", "clean", "--workers", "1") == 0
    table = capsys.readouterr().out
    for label in ("partitions", "rows in", "dropped", "rows out", "files written", "seconds"):
        assert label in table


def test_a_second_run_rewrites_nothing(
    storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    summary_of(capsys)
    again = summary_of(capsys)
    assert (again["files_written"], again["files_unchanged"]) == (0, 3)


def test_the_batch_size_changes_no_file(
    storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    summary_of(capsys, "--batch-size", "1")
    files = {key: storage.read_bytes(key) for key in storage.list("clean")}
    again = summary_of(capsys, "--batch-size", "100")
    assert len(files) == 3
    assert (again["files_written"], again["files_unchanged"]) == (0, 3)
    assert {key: storage.read_bytes(key) for key in storage.list("clean")} == files


@pytest.mark.parametrize(
    ("args", "partitions"),
    [
        (("--date", "2025-03-02"), 1),
        (("--from", "2025-03-01", "--to", "2025-03-01"), 2),
        (("--vin", VIN2), 1),
        (("--from", "2025-03-03"), 0),
    ],
)
def test_days_and_vehicles_can_be_chosen(
    storage: Storage, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], partitions: int
) -> None:
    assert summary_of(capsys, *args)["partitions"] == partitions


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--date", "2025-03-01", "--from", "2025-03-01"), "either --date or --from/--to"),
        (("--from", "2025-03-02", "--to", "2025-03-01"), "--from 2025-03-02 is after --to"),
        (("--date", "yesterday"), "'yesterday' is not a YYYY-MM-DD day"),
        (("--vin", "NOT-A-VIN"), "invalid VIN"),
        (("--batch-size", "0"), "--batch-size"),
        (("--dask", "notanaddress"), "'notanaddress' is not a Dask scheduler address"),
    ],
)
def test_bad_options_exit_2(
    storage: Storage, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert bibev("transform", "clean", *args) == 2
    assert message in capsys.readouterr().err
    assert storage.list("clean") == []


def test_failed_partitions_exit_5_and_are_listed(
    storage: Storage, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    put(storage, DAY2, VIN2, tesla_day(DAY2, vin=VIN2).with_columns(provider=pl.lit("nobody")))
    assert bibev("transform", "clean", "--workers", "1") == 5
    err = capsys.readouterr().err
    assert "1 of 4 partition(s) failed" in err
    assert f"failed: {VIN2} 2025-03-02: ConfigError: unknown provider 'nobody'" in err
    assert storage.exists(storage.day_key("clean", DAY2, VIN))
    engine = open_database(env["BIBEV_DATABASE_URL"])
    [row] = recent_runs(engine)
    engine.dispose()
    assert (row.status, row.counts["failed"]) == ("partial", 1)


def test_a_file_of_another_vehicle_or_layer_fails_and_says_why(
    storage: Storage, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The user's case: another VIN's compressed file and a clean file copied under valid
    VINs of their own. Each fails alone, naming the file and what is wrong; exit 5."""
    copy, foreign = "5YJ3E1EA7KF000002", "5YJ3E1EA7KF000003"
    assert bibev("transform", "clean", "--workers", "1") == 0
    compressed = storage.day_key("compressed", DAY2, VIN)
    storage.write_bytes(storage.day_key("compressed", DAY2, copy), storage.read_bytes(compressed))
    clean = storage.read_bytes(storage.day_key("clean", DAY2, VIN))
    storage.write_bytes(storage.day_key("compressed", DAY2, foreign), clean)
    capsys.readouterr()
    assert bibev("transform", "all", "--workers", "1", "--date", "2025-03-02") == 5
    err = capsys.readouterr().err
    where = f"'compressed/2025/03/02/{{}}.parquet' in {env['BIBEV_ROOT']}"
    assert "error: clean: 2 of 3 partition(s) failed; the others are done" in err
    assert (
        f"failed: {copy} 2025-03-02: DataContractError: {where.format(copy)} holds rows of "
        f"another vehicle: 8 of its 8 rows are not of {copy}, the VIN of its name (VIN {VIN})"
    ) in err
    assert (
        f"failed: {foreign} 2025-03-02: DataContractError: {where.format(foreign)} is not a "
        "compressed file: required column(s) provider, key missing (4 rows; its columns: vin, "
        "ts, soc_pct, odometer_km, speed_kmh, gear and 15 more)"
    ) in err
    assert storage.list("clean/2025/03/02") == [storage.day_key("clean", DAY2, VIN)]
    engine = open_database(env["BIBEV_DATABASE_URL"])
    quality = clean_quality_rows(engine, date_from=DAY2)
    engine.dispose()
    assert [(q["vin"], q["rows_in"]) for q in quality] == [(VIN, 8)]


def test_from_simulator_to_clean_files(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("sim", "--vehicles", "2", "--days", "2", "--start", "2025-03-01", "--seed", "3")
    assert bibev(*args, "--provider", "high-mobility") == 0
    storage = Storage(env["BIBEV_ROOT"])
    assert run_compact(storage, now=NOW, workers=1).failures == []
    capsys.readouterr()
    summary = summary_of(capsys)
    assert summary["partitions"] == len(storage.list("compressed"))
    assert summary["rows_out"] > 100
    clean = pl.concat([storage.read_parquet(k) for k in storage.list("clean")])
    assert clean["soc_pct"].drop_nulls().is_between(0, 100).all()
    assert set(clean["ts"].dt.date().unique()) == {date(2025, 3, 1), date(2025, 3, 2)}


def test_transform_all_counts_the_failures_of_each_stage(
    storage: Storage, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    put(storage, DAY2, VIN2, tesla_day(DAY2, vin=VIN2).with_columns(provider=pl.lit("nobody")))
    assert bibev("transform", "all", "--workers", "1") == 5
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == ["error: clean: 1 of 4 partition(s) failed; the others are done"]
    assert f"failed: {VIN2} 2025-03-02: ConfigError: unknown provider 'nobody'" in err
