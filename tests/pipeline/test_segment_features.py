"""Session features: energy, AC/DC, power, SoC, odometer, temperature, points, source."""

from __future__ import annotations

import polars as pl
import pytest

from bibev.pipeline.segment import SEGMENT_SCHEMA, segment_series
from tests.pipeline.clean_series import Series


def session(series: Series, kind: str) -> dict:
    found = segment_series(series.lazy()).collect()
    assert [n for n in SEGMENT_SCHEMA if n not in found.columns] == ["segment_id", "day"]
    [row] = found.filter(pl.col("kind") == kind).to_dicts()
    return row


@pytest.mark.parametrize(
    ("kw", "kind", "expected"),
    # 22.6 kW of unknown kind: a 22 kW AC charger measured at the wall, not a DC charge
    [(7.0, "ac", "ac"), (50.0, "dc", "dc"), (40.0, None, "dc"), (22.6, None, "ac")],
)
def test_a_charge_has_its_energy_power_and_kind(kw: float, kind: str | None, expected: str) -> None:
    series = Series().park(5).charge(60, kw=kw, kind=kind or "none").park(5)
    row = session(series, "charging")
    assert row["energy_added_kwh"] == pytest.approx(kw, abs=0.01)
    assert row["max_power_kw"] == pytest.approx(kw)
    assert row["mean_power_kw"] == pytest.approx(kw)
    assert row["charger_kind"] == expected
    assert row["soc_end"] - row["soc_start"] == pytest.approx(kw / 60 * 100, abs=0.05)
    assert row["duration_s"] == 3600.0
    assert (row["n_points"], row["source"]) == (360, "both")


def test_a_drive_has_its_distance_consumption_power_and_temperature() -> None:
    row = session(Series().park(5).drive(30, kmh=60).park(5), "driving")
    assert row["distance_km"] == pytest.approx(30.0, abs=0.01)
    assert row["odometer_end_km"] - row["odometer_start_km"] == pytest.approx(30.0, abs=0.01)
    assert row["soc_start"] - row["soc_end"] == pytest.approx(9.0, abs=0.01)
    assert row["max_power_kw"] == pytest.approx(15.2)
    assert row["temp_mean_c"] == pytest.approx(15.0)
    assert (row["energy_added_kwh"], row["charger_kind"]) == (None, "none")


def test_idle_has_no_energy_power_or_source() -> None:
    row = session(Series().park(5).drive(10).park(30), "driving")
    assert row["source"] == "both"
    found = segment_series(Series().park(5).drive(10).park(30).lazy()).collect()
    idle = found.filter(pl.col("kind") == "idle").to_dicts()
    assert [(r["energy_added_kwh"], r["max_power_kw"], r["source"]) for r in idle] == [
        (None, None, None),
        (None, None, None),
    ]


@pytest.mark.parametrize(
    ("missing", "source"),
    [(("speed_kmh", "latitude", "longitude"), "provider"), (("gear",), "physics")],
)
def test_the_source_says_which_evidence_made_a_drive(missing: tuple[str, ...], source: str) -> None:
    series = Series(missing=missing).park(5).drive(10).park(5)
    for row in series.rows:
        row["odometer_km"] = 10_000.0 if "speed_kmh" in missing else row["odometer_km"]
    assert session(series, "driving")["source"] == source


def test_a_reset_energy_counter_counts_from_zero() -> None:
    series = Series(energy=12.5).park(5)  # the last session's counter, still showing
    series.charge(30, kw=10.0).park(5)
    assert session(series, "charging")["energy_added_kwh"] == pytest.approx(5.0, abs=0.01)
