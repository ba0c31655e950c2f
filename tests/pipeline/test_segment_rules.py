"""Row rules: the provider's state when it has one, the physics when it has not or is wrong."""

from __future__ import annotations

import polars as pl
import pytest

from bibev.pipeline.segment import SegmentParams, label_rows
from bibev.pipeline.segment.rules import CHARGING, DRIVING, IDLE
from tests.pipeline.clean_series import Series, at


def states(series: Series, params: SegmentParams | None = None) -> pl.DataFrame:
    return label_rows(series.lazy(), params or SegmentParams()).collect()


def state_counts(frame: pl.DataFrame) -> dict[int, int]:
    return dict(frame.group_by("state").len().iter_rows())


@pytest.mark.parametrize(
    ("missing", "by_provider", "by_physics"),
    [
        ((), True, True),
        (("gear",), False, True),
        (("gear", "speed_kmh"), False, True),
        (("speed_kmh", "latitude", "longitude"), True, True),
    ],
)
def test_a_drive_is_seen_with_or_without_gear_and_speed(
    missing: tuple[str, ...], by_provider: bool, by_physics: bool
) -> None:
    rows = states(Series(missing=missing).park(5).drive(10, every=30).park(5))
    driving = rows.filter(pl.col("ts").is_between(at(6), at(14)))
    assert driving["state"].unique().to_list() == [DRIVING]
    assert driving["by_provider"].all() is by_provider
    assert driving["by_physics"].any() is by_physics
    assert rows.filter(pl.col("ts") < at(5))["state"].unique().to_list() == [IDLE]


def test_the_odometer_alone_tells_a_drive() -> None:
    # The first reading after the car stood still for long only says it moved at some point
    # since; but it opens an interval that moved: the drive is seen from that reading (6:00).
    gone = ("gear", "speed_kmh", "latitude", "longitude")
    rows = states(Series(missing=gone).park(5, every=60).drive(10, every=60).park(5, every=60))
    assert rows.filter(pl.col("ts").is_between(at(6), at(15)))["state"].unique().to_list() == [
        DRIVING
    ]
    assert rows.filter(pl.col("ts") < at(5))["state"].unique().to_list() == [IDLE]


def test_gps_jitter_is_not_movement() -> None:
    series = Series(missing=("gear", "speed_kmh")).park(10)
    for i, row in enumerate(series.rows):
        row["latitude"] += (i % 2) * 0.0001  # 11 m back and forth
    assert state_counts(states(series)) == {IDLE: 20}


@pytest.mark.parametrize(
    ("missing", "state", "expected"),
    [
        ((), "charging", CHARGING),
        (("charging_state",), None, CHARGING),
        (("charging_power_kw",), "charging", CHARGING),
    ],
)
def test_a_charge_is_seen_from_the_state_or_the_power(
    missing: tuple[str, ...], state: str | None, expected: int
) -> None:
    rows = states(Series(missing=missing).charge(10))
    assert rows.filter(pl.col("ts") < at(10))["state"].unique().to_list() == [expected]


def test_an_unknown_state_without_power_is_idle() -> None:
    series = Series().park(5)
    for row in series.rows:
        row["charging_state"] = "unknown"
    assert state_counts(states(series)) == {IDLE: 10}


def test_physics_overrides_a_stale_parked_gear() -> None:
    series = Series().drive(5)
    for row in series.rows[10:30]:
        row["gear"] = "P"  # a late "parked" record in the middle of the drive
    assert state_counts(states(series)) == {DRIVING: 60}


def test_nothing_is_carried_across_a_gap() -> None:
    series = Series().drive(2).silent(30)
    series.park(1)
    for row in series.rows[-2:]:
        row.update(gear=None, speed_kmh=None)
    rows = states(series)
    assert rows["period"].unique().to_list() == [0, 1]
    assert rows.filter(pl.col("period") == 1)["state"].to_list() == [IDLE, IDLE]


def test_dead_reckoning_follows_the_car_between_rare_odometer_readings() -> None:
    series = Series().park(2).drive(30, kmh=60).park(2)
    for row in series.rows[5:-3]:
        row["odometer_km"] = None  # read before and after the drive only
    rows = states(series)
    last_drive_row = rows.filter(pl.col("state") == DRIVING).tail(1)
    assert last_drive_row["odo"][0] == pytest.approx(10_000.0 + 30.0, abs=0.2)


def test_gap_threshold_is_a_parameter() -> None:
    series = Series().park(2).silent(5).park(2)
    assert states(series, SegmentParams(gap_s=600))["period"].n_unique() == 1
    assert states(series, SegmentParams(gap_s=120))["period"].n_unique() == 2
