"""Sessions that happened while the car was offline, read from the jumps across a gap."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from bibev.pipeline.segment import SegmentParams, segment_series
from tests.pipeline.clean_series import Series, at


def sessions(series: Series, params: SegmentParams | None = None) -> pl.DataFrame:
    return segment_series(series.lazy(), params or SegmentParams()).collect()


def of_kind(frame: pl.DataFrame, kind: str) -> pl.DataFrame:
    return frame.filter(pl.col("kind") == kind)


def minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60


def test_a_charge_behind_a_gap_is_found_and_flagged() -> None:
    # Parked at 06:10, silent for 4 h: the SoC rose 14 points (8.4 kWh on 60 kWh at 7 kW: 72
    # minutes), the energy counter says 8.4 kWh.
    series = Series().park(10).silent(240, soc=14.0, energy=8.4).park(10)
    charge = of_kind(sessions(series), "charging")
    assert charge.height == 1
    row = charge.row(0, named=True)
    assert (row["offline"], row["estimated_start"], row["estimated_end"]) == (True, True, True)
    assert row["source"] == "gap"
    assert row["start"] == at(9.5) + timedelta(minutes=5)  # offline_stop_s after the last row
    assert minutes(row["end"] - row["start"]) == pytest.approx(72, abs=1)
    assert row["energy_added_kwh"] == pytest.approx(8.4)
    assert row["charger_kind"] == "ac"
    assert row["soc_end"] - row["soc_start"] == pytest.approx(14.0, abs=0.1)


def test_a_night_asleep_is_not_a_charge() -> None:
    # BMS drift and rounding: the SoC reads 1.5 points higher after 10 hours asleep.
    found = sessions(Series().park(10).silent(600, soc=1.5).park(10))
    assert found["kind"].cast(pl.String).to_list() == ["idle"]


def test_a_drive_into_the_gap_is_extended_before_the_charge() -> None:
    # Seen driving 15 min at 60 km/h, then 10 more km nobody saw, then a charge.
    series = Series().park(5).drive(15, kmh=60).silent(300, km=10.0, soc=-3 + 20.0)
    found = sessions(series.park(10))
    drive = of_kind(found, "driving").row(0, named=True)
    charge = of_kind(found, "charging").row(0, named=True)
    assert drive["estimated_end"] is True
    # 10 km more: a 25 km trip typically runs at 45 km/h × √2.5 = 71 km/h, faster than seen
    assert minutes(drive["end"] - at(20)) == pytest.approx(10 / 71.15 * 60, abs=0.2)
    assert minutes(charge["start"] - drive["end"]) == pytest.approx(5, abs=0.1)
    assert charge["offline"] is True


def test_a_drive_out_of_the_gap_is_extended_back_after_the_charge() -> None:
    # Parked, then 4 h silent: 10 points charged and 12 km driven; seen driving on after it.
    series = Series().park(10).silent(240, km=12.0, soc=10.0 - 3.6).drive(10, kmh=40)
    found = sessions(series.park(5))
    charge = of_kind(found, "charging").row(0, named=True)
    drive = of_kind(found, "driving").row(0, named=True)
    assert (charge["offline"], drive["offline"], drive["estimated_start"]) == (True, False, True)
    # 12 km more: an 18.7 km trip typically runs at 45 km/h × √1.87 = 61.5 km/h, faster than seen
    assert minutes(at(250) - drive["start"]) == pytest.approx(12 / 61.5 * 60, abs=0.2)
    assert charge["start"] == at(9.5) + timedelta(minutes=5)
    assert charge["end"] < drive["start"]


def test_a_trip_behind_a_gap_ends_with_the_gap() -> None:
    series = Series().park(10).silent(180, km=20.0, soc=-6.0).park(10)
    found = sessions(series)
    drive = of_kind(found, "driving").row(0, named=True)
    assert drive["offline"] is True
    assert drive["end"] == at(190)
    assert drive["distance_km"] == pytest.approx(20.0, abs=0.01)
    assert of_kind(found, "charging").height == 0


def test_a_round_trip_to_a_charger_goes_out_and_comes_back() -> None:
    # Seen leaving; found back where it started, 10 points fuller, 12 km further.
    series = Series().park(5).drive(6, kmh=40)
    series.lat, series.lon = series.rows[0]["latitude"], series.rows[0]["longitude"]
    found = sessions(series.silent(240, km=12.0, soc=10.0 - 3.6).park(10))
    drives = of_kind(found, "driving")
    charge = of_kind(found, "charging").row(0, named=True)
    assert drives.height == 2
    way_out, way_back = drives.row(0, named=True), drives.row(1, named=True)
    assert way_out["end"] < charge["start"] < charge["end"] < way_back["start"]
    assert minutes(way_back["start"] - charge["end"]) == pytest.approx(5, abs=0.1)
    assert way_back["offline"] is True


def test_a_hidden_charge_stands_still_and_the_drives_carry_the_distance() -> None:
    # Seen leaving at 10,000 km; found back where it started at 10,016 km: 4 km more out,
    # the charge where the way out ended (10,008 km), 8 km back.
    series = Series().park(5).drive(6, kmh=40)
    series.lat, series.lon = series.rows[0]["latitude"], series.rows[0]["longitude"]
    found = sessions(series.silent(240, km=12.0, soc=10.0 - 3.6).park(10))
    charge = of_kind(found, "charging").row(0, named=True)
    way_back = of_kind(found, "driving").row(1, named=True)
    assert charge["distance_km"] == 0.0
    assert charge["odometer_start_km"] == pytest.approx(10_008.0, abs=0.01)
    assert charge["odometer_end_km"] == charge["odometer_start_km"]
    assert way_back["distance_km"] == pytest.approx(8.0, abs=0.01)
    assert way_back["odometer_start_km"] == pytest.approx(10_008.0, abs=0.01)
    assert way_back["odometer_end_km"] == pytest.approx(10_016.0, abs=0.01)


def test_a_charge_between_two_hidden_drives_is_where_the_way_out_ended() -> None:
    # Parked at 10,000 km, found at the same place 4 h later at 10,012 km, 10 points fuller.
    found = sessions(Series().park(10).silent(240, km=12.0, soc=10.0 - 3.6).park(10))
    charge = of_kind(found, "charging").row(0, named=True)
    drives = of_kind(found, "driving")
    assert (charge["odometer_start_km"], charge["distance_km"]) == (pytest.approx(10_006.0), 0.0)
    assert drives["distance_km"].to_list() == [pytest.approx(6.0), pytest.approx(6.0)]
    assert drives["odometer_end_km"].to_list() == [pytest.approx(10_006.0), pytest.approx(10_012.0)]


def test_a_hidden_charge_rises_by_the_points_found_and_its_drives_use_theirs() -> None:
    # Parked, found where it went dark 4 h later, 40 km further and 2 points lower: the 40 km
    # used 10 points (drive_soc_per_km), so it charged 8 (4.8 kWh on 60 kWh), 20 km out.
    series = Series().park(10).silent(240, km=40.0, soc=-2.0, energy=4.8).park(10)
    before, after = series.rows[19]["soc_pct"], series.rows[20]["soc_pct"]
    found = sessions(series)
    charge = of_kind(found, "charging").row(0, named=True)
    drives = of_kind(found, "driving")
    assert charge["soc_start"] == pytest.approx(before - 5.0)
    assert charge["soc_end"] == pytest.approx(after + 5.0)
    assert charge["soc_end"] - charge["soc_start"] == pytest.approx(8.0, abs=0.01)
    assert charge["energy_added_kwh"] == pytest.approx(8.0 / 100 * 60.0)
    assert drives["soc_start"].to_list() == [pytest.approx(before), pytest.approx(after + 5.0)]
    assert drives["soc_end"].to_list() == [pytest.approx(before - 5.0), pytest.approx(after)]
    # the idle sessions around them neither drive nor charge: the day adds up
    assert found["distance_km"].sum() == pytest.approx(40.0)
    rises = (found["soc_end"] - found["soc_start"]).to_list()
    assert [rise for rise, kind in zip(rises, found["kind"], strict=True) if kind == "idle"] == [
        pytest.approx(before - 60.0),
        0.0,
        0.0,
        pytest.approx(series.rows[-1]["soc_pct"] - after),
    ]


def test_a_drive_into_a_gap_drives_its_share_of_the_hidden_distance() -> None:
    # 10 km seen at 0.3 points/km, 12 km more unseen (3.6 points), then it charged 10 points.
    series = Series().park(5).drive(15, kmh=40).silent(240, km=12.0, soc=10.0 - 3.6)
    found = sessions(series.park(10))
    drive = of_kind(found, "driving").row(0, named=True)
    charge = of_kind(found, "charging").row(0, named=True)
    assert drive["odometer_end_km"] == pytest.approx(10_022.0, abs=0.01)
    assert drive["distance_km"] == pytest.approx(22.0, abs=0.01)
    assert drive["soc_start"] - drive["soc_end"] == pytest.approx(22 * 0.3, abs=0.02)
    assert (charge["odometer_start_km"], charge["soc_start"]) == (
        pytest.approx(drive["odometer_end_km"]),
        pytest.approx(drive["soc_end"]),
    )
    assert charge["soc_end"] - charge["soc_start"] == pytest.approx(10.0, abs=0.02)


def test_a_drive_out_of_a_gap_drove_its_share_before_it_was_seen() -> None:
    # Charged 10 points unseen, then drove 12 km unseen (3.6 points) and 6.7 km seen.
    series = Series().park(10).silent(240, km=12.0, soc=10.0 - 3.6).drive(10, kmh=40)
    found = sessions(series.park(5))
    charge = of_kind(found, "charging").row(0, named=True)
    drive = of_kind(found, "driving").row(0, named=True)
    assert drive["odometer_start_km"] == pytest.approx(10_000.0, abs=0.01)
    assert drive["distance_km"] == pytest.approx(12.0 + 40 / 6, abs=0.01)
    assert drive["soc_start"] - drive["soc_end"] == pytest.approx((12.0 + 40 / 6) * 0.3, abs=0.02)
    assert drive["soc_start"] == pytest.approx(charge["soc_end"])
    assert charge["soc_end"] - charge["soc_start"] == pytest.approx(10.0, abs=0.02)


def test_a_stale_odometer_is_not_a_hidden_drive() -> None:
    # The odometer is read before the drive only; the next reading comes after a gap.
    series = Series().park(5).drive(20, kmh=60).park(5)
    for row in series.rows[10:]:
        row["odometer_km"] = 10_000.0
    series.silent(120).park(5)
    found = sessions(series)
    assert of_kind(found, "driving").height == 1
    assert found["offline"].sum() == 0


def test_thresholds_are_parameters() -> None:
    series = Series().park(10).silent(240, soc=3.0).park(10)
    assert of_kind(sessions(series), "charging").height == 1
    assert of_kind(sessions(series, SegmentParams(soc_jump_pct=5.0)), "charging").height == 0


def test_a_charge_into_a_gap_adds_what_the_counter_grew_meanwhile() -> None:
    # Seen charging at 10 kW until the counter read 10 kWh; back online two hours later,
    # complete, with the same session's counter at 25 kWh (25 points more on 60 kWh).
    series = Series().park(5).charge(60, kw=10.0)
    series.rows.pop()  # still charging when the car went dark
    seen = series.rows[-1]["energy_added_kwh"]
    series.silent(120, soc=25.0, energy=25.0).park(10, charging_state="complete")
    charge = of_kind(sessions(series), "charging")
    assert charge.height == 1
    row = charge.row(0, named=True)
    assert (row["estimated_end"], row["offline"]) == (True, False)
    assert seen == pytest.approx(10.0, abs=0.05)
    assert row["energy_added_kwh"] == pytest.approx(25.0)


def test_a_charge_out_of_a_gap_adds_what_its_counter_held_when_seen() -> None:
    # The counter showed the last session's 12.5 kWh; the car came back online charging, its
    # new session's counter already at 3 kWh (5 points on 60 kWh), and added 3 kWh more seen.
    series = Series(energy=12.5).park(10).silent(60, soc=5.0)
    hidden = len(series.rows)
    series.charge(30, kw=6.0).park(5)
    for row in series.rows[hidden:]:
        row["energy_added_kwh"] += 3.0
    charge = of_kind(sessions(series), "charging")
    assert charge.height == 1
    row = charge.row(0, named=True)
    assert (row["estimated_start"], row["offline"]) == (True, False)
    assert row["energy_added_kwh"] == pytest.approx(6.0)
