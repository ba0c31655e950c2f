"""Session rules: runs, stops, blips, pauses, gaps bridged, idle in between."""

from __future__ import annotations

import polars as pl
import pytest

from bibev.pipeline.segment import SegmentParams, segment_series
from tests.pipeline.clean_series import Series, at


def sessions(series: Series, params: SegmentParams | None = None) -> pl.DataFrame:
    return segment_series(series.lazy(), params or SegmentParams()).collect()


def kinds(frame: pl.DataFrame) -> list[str]:
    return frame["kind"].cast(pl.String).to_list()


def test_a_day_is_tiled_by_its_sessions() -> None:
    found = sessions(Series().park(10).drive(20).park(10).charge(60).park(10))
    assert kinds(found) == ["idle", "driving", "idle", "charging", "idle"]
    assert found["start"].to_list()[1:] == found["end"].to_list()[:-1]
    assert found.select("start", "end").row(1) == (at(10), at(30))
    assert found.select("start", "end").row(3) == (at(40), at(100))
    assert found["open_start"].to_list() == [True, False, False, False, False]
    assert found["open_end"].to_list() == [False, False, False, False, True]


@pytest.mark.parametrize(("stop_minutes", "drives"), [(1, 1), (4, 1), (10, 2)])
def test_a_short_stop_does_not_end_a_drive(stop_minutes: float, drives: int) -> None:
    series = Series(missing=("gear",)).park(5).drive(10).park(stop_minutes, every=5)
    found = sessions(series.drive(10).park(5))
    assert kinds(found).count("driving") == drives


def test_a_moment_of_speed_is_not_a_drive() -> None:
    found = sessions(Series(missing=("gear",)).park(5).drive(0.5).park(5))
    assert kinds(found) == ["idle"]


def test_a_charge_the_physics_never_saw_is_not_a_charge() -> None:
    series = Series().park(5)
    for row in series.rows:
        row["charging_state"] = "charging"  # the state says so; power 0, SoC falling
    assert kinds(sessions(series.park(5))) == ["idle"]


@pytest.mark.parametrize(("pause_minutes", "charges"), [(2, 1), (20, 2)])
def test_a_short_pause_does_not_end_a_charge(pause_minutes: float, charges: int) -> None:
    series = Series().park(5).charge(30).park(pause_minutes, every=10).charge(30).park(5)
    assert kinds(sessions(series)).count("charging") == charges


def test_a_drive_continues_through_a_tunnel() -> None:
    series = Series().park(5).drive(10, kmh=60).silent(12, km=12, soc=-3.6)
    found = sessions(series.drive(10, kmh=60).park(5))
    assert kinds(found) == ["idle", "driving", "idle"]
    assert found.filter(pl.col("kind") == "driving")["bridged_gap"].to_list() == [True]


def through_tunnel(series: Series, minutes: float, km: float) -> Series:
    """``minutes`` without a row while the car drives ``km`` north (a tunnel)."""
    series.lat += km / 111.2
    return series.silent(minutes, km=km, soc=-0.3 * km)


@pytest.mark.parametrize(("before", "after", "last_fix"), [(2, 2, 14), (1, 0, 11)])
def test_a_drive_seen_only_by_its_fixes_goes_through_a_short_tunnel(
    before: float, after: float, last_fix: float
) -> None:
    # Positions every 30 s, no gear, no speed. The car drives off at 5:00 (its first fix that
    # moved is at 5:30) and through a 5-minute tunnel: shorter than a gap, longer than a fix
    # interval. Then it drives on, or (a short drive) it parks right after the tunnel.
    series = Series(missing=("gear", "speed_kmh")).park(5).drive(before, every=30)
    through_tunnel(series, 5, km=4.0).drive(after, every=30).park(5)
    found = sessions(series)
    assert kinds(found) == ["idle", "driving", "idle"]
    drive = found.filter(pl.col("kind") == "driving")
    assert drive.select("start", "end").row(0) == (at(5.5), at(last_fix))
    driven_from_5_30 = (before + after - 0.5) * 40 / 60 + 4.0
    assert drive["distance_km"][0] == pytest.approx(driven_from_5_30, abs=0.01)


def test_a_long_silence_ends_a_drive() -> None:
    series = Series().park(5).drive(10).silent(45, km=0.0).drive(10).park(5)
    assert kinds(sessions(series)).count("driving") == 2


def test_a_charge_continues_through_a_gap() -> None:
    series = Series().park(5).charge(30)
    series.rows.pop()  # still charging when the car went silent
    found = sessions(series.silent(40, soc=4.7).charge(30).park(5))
    charge = found.filter(pl.col("kind") == "charging")
    assert charge.height == 1
    assert charge.select("start", "bridged_gap").row(0) == (at(5), True)


def test_a_charge_ends_when_the_power_falls_though_the_state_lags() -> None:
    series = Series().park(5).charge(30)
    series.rows.pop()
    fell = series.t
    series.park(3, every=10, charging_state="charging")  # power 0, state still "charging"
    found = sessions(series.park(5))
    charge = found.filter(pl.col("kind") == "charging")
    assert charge["end"].to_list() == [fell]


def test_thresholds_are_parameters() -> None:
    series = Series(missing=("gear",)).park(5).drive(10).park(2.5, every=5).drive(10).park(5)
    assert kinds(sessions(series, SegmentParams(min_stop_s=60))).count("driving") == 2
