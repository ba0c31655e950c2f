"""``bibev sim`` as a user runs it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from bibev.cli.app import run
from bibev.cli.sim import check_kafka_address
from bibev.storage import validate_vin


def _content(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith("_tmp")
    }


def test_writes_temp_and_truth_and_twice_the_same(tmp_path, capsys):
    argv = [
        "sim",
        "--vehicles",
        "5",
        "--days",
        "3",
        "--seed",
        "1",
        "--provider",
        "tesla",
        "--start",
        "2025-03-01",
    ]
    assert run(["--root", str(tmp_path / "a"), *argv]) == 0
    table = capsys.readouterr().out
    assert run(["--root", str(tmp_path / "b"), *argv]) == 0
    first, second = _content(tmp_path / "a"), _content(tmp_path / "b")
    assert first == second
    temp = [k for k in first if k.startswith("temp/")]
    assert temp
    assert all(k.endswith(".jsonl") for k in temp)
    vins = {k.split("/")[1] for k in temp}
    assert len(vins) == 5
    assert all(validate_vin(v) == v for v in vins)
    days = {k.split("/")[2] for k in temp}
    assert {"2025-03-01", "2025-03-02", "2025-03-03"} <= days
    sessions = pl.read_parquet(tmp_path / "a/truth/sessions.parquet")
    assert set(sessions["vin"]) == vins
    assert pl.read_parquet(tmp_path / "a/truth/capacity.parquet").height == 15
    for word in ("messages", "files", "bytes", "true charging sessions", "fleet-telemetry-json"):
        assert word in table
    assert str(sum(1 for _ in temp)) in table


def test_start_defaults_to_complete_days_ending_yesterday(tmp_path, capsys):
    assert run(["--root", str(tmp_path), "sim", "--vehicles", "1", "--days", "2", "--clean"]) == 0
    today = datetime.now(UTC).date()
    capacity = pl.read_parquet(tmp_path / "truth/capacity.parquet")
    assert sorted(capacity["ts"].dt.date().to_list()) == [
        today - timedelta(days=2),
        today - timedelta(days=1),
    ]
    assert pl.read_parquet(tmp_path / "truth/garbage.parquet").height == 0
    assert "off (--clean)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("provider", "fmt"), [("bmw", "cardata-rest"), ("high-mobility", None), ("sim", "sim-json")]
)
def test_other_providers_and_formats(tmp_path, provider, fmt):
    argv = [
        "--root",
        str(tmp_path),
        "sim",
        "--vehicles",
        "2",
        "--provider",
        provider,
        "--start",
        "2025-03-01",
    ]
    assert run(argv + (["--format", fmt] if fmt else [])) == 0
    lines = next((tmp_path / "temp").rglob("*.jsonl")).read_text().splitlines()
    assert f'"provider":"{provider}"' in lines[0]


def test_help_shows_an_example(capsys):
    assert run(["sim", "--help"]) == 0
    text = capsys.readouterr().out
    assert "Example: bibev" in text
    assert "--clean" in text


@pytest.mark.parametrize("argv", [["--provider", "ford"], ["--vehicles", "0"]])
def test_bad_options_fail_before_writing(tmp_path, argv):
    assert run(["--root", str(tmp_path), "sim", *argv]) == 2
    assert not (tmp_path / "temp").exists()


def test_a_format_of_another_provider_is_a_usage_error(tmp_path, capsys):
    argv = ["--root", str(tmp_path), "sim", "--provider", "bmw", "--format", "push-v2"]
    assert run(argv) == 2
    assert "cardata-stream" in capsys.readouterr().err
    assert not (tmp_path / "temp").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--topic", "tesla_V"], "--topic"), (["--encoding", "json"], "--encoding")],
)
def test_kafka_options_without_kafka_are_a_usage_error(tmp_path, capsys, argv, message):
    assert run(["--root", str(tmp_path), "sim", "--vehicles", "1", *argv]) == 2
    assert f"error: {message} needs --kafka" in capsys.readouterr().err
    assert not (tmp_path / "temp").exists()


@pytest.mark.parametrize(
    "address", ["notaport", "broker:", "broker:x", "broker:0", "broker:65536", "a:9092,b", ":9092"]
)
def test_a_kafka_address_that_is_not_host_port_exits_2_at_once(capsys, address):
    assert run(["sim", "--vehicles", "1", "--kafka", address]) == 2
    err = capsys.readouterr().err
    assert "error: --kafka needs HOST:PORT" in err


@pytest.mark.parametrize(
    "address", ["127.0.0.1:9092", "a:9092,b:9093", "[::1]:9092", "PLAINTEXT://kafka:9092"]
)
def test_kafka_addresses_of_host_and_port_are_accepted(address):
    assert check_kafka_address(address) == address


def test_a_start_after_today_is_simulated_with_a_warning(tmp_path, capsys):
    today = datetime.now(UTC).date()
    start = today + timedelta(days=2)
    argv = ["--root", str(tmp_path), "sim", "--vehicles", "1", "--clean", "--start", str(start)]
    assert run(argv) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err
    assert f"after today ({today}, UTC)" in err
    assert (tmp_path / "temp").exists()


def test_a_start_in_the_past_gives_no_warning(tmp_path, capsys):
    argv = ["--root", str(tmp_path), "sim", "--vehicles", "1", "--clean", "--start", "2025-03-01"]
    assert run(argv) == 0
    assert "WARNING" not in capsys.readouterr().err
