"""Feature errors of found sessions against the true sessions they match."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from bibev.pipeline.feature_errors import feature_errors

T0 = datetime(2025, 3, 3, tzinfo=UTC)
VIN = "5YJ3E1EA7KF000001"


def frame(rows: list[dict]) -> pl.DataFrame:
    for row in rows:
        row["vin"] = VIN
        row["start"] = T0 + timedelta(minutes=row.pop("a"))
        row["end"] = T0 + timedelta(minutes=row.pop("b"))
    return pl.DataFrame(rows)


def test_errors_over_matched_pairs_only() -> None:
    truth = frame(
        [
            {"kind": "charging", "a": 0, "b": 60, "energy_kwh": 20.0, "soc_start": 30.0,
             "soc_end": 60.0, "max_power_kw": 11.0, "charger_kind": "ac", "distance_km": 0.0},
            {"kind": "charging", "a": 100, "b": 130, "energy_kwh": 30.0, "soc_start": 40.0,
             "soc_end": 80.0, "max_power_kw": 150.0, "charger_kind": "dc", "distance_km": 0.0},
            {"kind": "driving", "a": 200, "b": 230, "energy_kwh": 5.0, "soc_start": 80.0,
             "soc_end": 72.0, "max_power_kw": None, "charger_kind": "none", "distance_km": 30.0},
            {"kind": "driving", "a": 300, "b": 310, "energy_kwh": 1.0, "soc_start": 72.0,
             "soc_end": 70.0, "max_power_kw": None, "charger_kind": "none", "distance_km": 8.0},
        ]
    )  # fmt: skip
    found = frame(
        [
            {"kind": "charging", "a": 2, "b": 61, "energy_added_kwh": 19.0, "soc_start": 32.0,
             "soc_end": 61.0, "max_power_kw": 10.5, "charger_kind": "ac", "distance_km": 0.0},
            {"kind": "charging", "a": 101, "b": 128, "energy_added_kwh": 33.0, "soc_start": 40.0,
             "soc_end": 79.0, "max_power_kw": None, "charger_kind": "ac", "distance_km": 0.0},
            {"kind": "driving", "a": 200, "b": 229, "energy_added_kwh": None, "soc_start": 81.0,
             "soc_end": 72.0, "max_power_kw": None, "charger_kind": "none", "distance_km": 29.5},
            # no true drive overlaps this one: it is not counted
            {"kind": "driving", "a": 400, "b": 420, "energy_added_kwh": None, "soc_start": 0.0,
             "soc_end": 0.0, "max_power_kw": None, "charger_kind": "none", "distance_km": 99.0},
        ]
    )  # fmt: skip
    rows = {(r["kind"], r["feature"]): r for r in feature_errors(found, truth).to_dicts()}
    energy = rows[("charging", "energy added kWh")]
    assert (energy["n"], energy["median_abs_error"]) == (2, 2.0)  # errors 1 and 3
    assert energy["p90_abs_error"] == pytest.approx(2.8)
    assert rows[("charging", "max power kW")]["n"] == 1  # the DC charge's power is unknown
    assert rows[("charging", "max power kW")]["median_abs_error"] == 0.5
    assert rows[("charging", "SoC start %")]["median_abs_error"] == 1.0  # errors 2 and 0
    assert rows[("charging", "AC/DC wrong (share)")]["median_abs_error"] == 0.5
    distance = rows[("driving", "distance km")]
    assert (distance["n"], distance["median_abs_error"]) == (1, 0.5)
    assert rows[("driving", "SoC end %")]["median_abs_error"] == 0.0


def test_no_match_gives_empty_figures() -> None:
    truth = frame([{"kind": "driving", "a": 0, "b": 10, "distance_km": 5.0,
                    "soc_start": 50.0, "soc_end": 49.0}])  # fmt: skip
    found = frame([{"kind": "driving", "a": 20, "b": 30, "distance_km": 5.0,
                    "soc_start": 50.0, "soc_end": 49.0}])  # fmt: skip
    rows = feature_errors(found, truth).to_dicts()
    assert [(r["kind"], r["feature"]) for r in rows] == [  # the columns both sides have
        ("charging", "SoC start %"),
        ("charging", "SoC end %"),
        ("driving", "distance km"),
        ("driving", "SoC start %"),
        ("driving", "SoC end %"),
    ]
    assert all(r["n"] == 0 and r["median_abs_error"] is None for r in rows)
