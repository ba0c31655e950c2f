"""``bibev report quality``: the records ``transform clean`` stored, as a table, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest

from bibev.db import open_database
from bibev.storage import Storage
from tests.cli.test_transform_clean import bibev, env, storage
from tests.pipeline.test_clean_frame import at, day_of, msg
from tests.pipeline.test_clean_run import DAY1, VIN, VIN2, put, tesla_day

__all__ = ["env", "storage"]


@pytest.fixture
def cleaned(storage: Storage, capsys: pytest.CaptureFixture[str]) -> Storage:
    """Three cleaned (VIN, day)s; the second vehicle's day has two glitches and a skewed clock."""
    glitches = day_of(
        tesla_day(DAY1, vin=VIN2, start_soc=50.0),
        msg(at(12, 0, 0), vin=VIN2, provider="tesla", Soc=140.0),
        msg(at(12, 0, 30), vin=VIN2, provider="tesla", Odometer=50.0),
        msg(at(13, 3), received=at(13), vin=VIN2, provider="tesla", Soc=38.0),
    )
    put(storage, DAY1, VIN2, glitches)
    assert bibev("transform", "clean", "--workers", "1") == 0
    capsys.readouterr()
    return storage


def report(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert bibev("report", "quality", *args) == 0
    return capsys.readouterr().out


def test_json_has_every_record_with_its_reasons(
    cleaned: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(report(capsys, "--format", "json"))
    records = {(r["day"], r["vin"]): r for r in data["records"]}
    assert sorted(records) == [
        ("2025-03-01", VIN),
        ("2025-03-01", VIN2),
        ("2025-03-02", VIN),
    ]
    glitchy = records[("2025-03-01", VIN2)]
    assert glitchy["dropped"] == {"soc_out_of_range": 1, "odometer_backwards": 1}
    assert {k: glitchy[k] for k in ("rows_in", "observations", "rows_out", "clamped_ts")} == {
        "rows_in": 11,
        "observations": 11,
        "rows_out": 5,
        "clamped_ts": 1,
    }
    assert glitchy["provider"] == "tesla"
    assert glitchy["first_ts"] == "2025-03-01T08:00:00+00:00"
    assert glitchy["last_ts"] == "2025-03-01T13:00:00+00:00"
    assert records[("2025-03-01", VIN)]["dropped"] == {}
    totals = data["totals"]
    assert (totals["days"], totals["vehicles"], totals["dropped_total"]) == (2, 2, 2)
    assert totals["rows_out"] == 13


def test_csv_has_one_column_per_reason(
    cleaned: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = list(csv.DictReader(io.StringIO(report(capsys, "--format", "csv", "--vin", VIN2))))
    assert len(rows) == 1
    [row] = rows
    assert (row["vin"], row["dropped_soc_out_of_range"], row["dropped_odometer_backwards"]) == (
        VIN2,
        "1",
        "1",
    )
    assert row["dropped_soc_jump"] == "0"
    assert row["dropped_total"] == "2"


def test_the_table_shows_counts_reasons_and_a_total(
    cleaned: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    table = report(capsys)
    lines = [line for line in table.splitlines() if VIN2 in line]
    assert len(lines) == 1
    assert "soc_out_of_range 1, odometer_backwards 1" in lines[0]
    total = next(line for line in table.splitlines() if "total" in line)
    assert "2 vehicles" in total
    assert "2 days" in total


@pytest.mark.parametrize(
    ("args", "days"),
    [
        (("--date", "2025-03-02"), ["2025-03-02"]),
        (("--from", "2025-03-01", "--to", "2025-03-01"), ["2025-03-01", "2025-03-01"]),
        (("--vin", VIN), ["2025-03-01", "2025-03-02"]),
    ],
)
def test_filters(
    cleaned: Storage, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], days: list[str]
) -> None:
    data = json.loads(report(capsys, "--format", "json", *args))
    assert [r["day"] for r in data["records"]] == days


def test_a_silence_over_a_day_without_a_file_is_a_gap_of_the_day_it_ends(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The user's case: silent for 42.8 h (03-03 22:08 → 03-05 16:58), no file on 03-04: the
    record of 03-05 counts it (it said gaps 0 and no longest gap)."""
    storage = Storage(env["BIBEV_ROOT"])
    evening, afternoon = date(2025, 3, 3), date(2025, 3, 5)
    soc = [(evening, 21, 40, 61.0), (evening, 22, 8, 60.0), (afternoon, 16, 58, 59.0)]
    for day in (evening, afternoon):
        put(
            storage,
            day,
            VIN,
            day_of(
                *(msg(at(h, m, day=d), provider="tesla", Soc=v) for d, h, m, v in soc if d == day)
            ),
        )
    assert bibev("transform", "clean", "--workers", "1") == 0
    capsys.readouterr()
    data = json.loads(report(capsys, "--format", "json", "--date", "2025-03-05"))
    [record] = data["records"]
    assert (record["rows_in"], record["gaps"], record["longest_gap_s"]) == (1, 1, 154_200.0)
    assert "42h50m" in report(capsys, "--date", "2025-03-05")


def test_nothing_cleaned_yet_says_so(
    storage: Storage, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    open_database(env["BIBEV_DATABASE_URL"]).dispose()  # as the first compact made it
    assert bibev("report", "quality") == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "run `bibev transform clean` first" in captured.err
    empty = json.loads(report(capsys, "--format", "json"))
    assert empty["records"] == []
    assert empty["totals"]["rows_out"] == 0


def test_unknown_format_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert bibev("report", "quality", "--format", "html") == 2
    assert "'html' is not one of 'table', 'json', 'csv'" in capsys.readouterr().err
