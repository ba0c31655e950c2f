"""Glitches are removed, each with its reason counted; real changes are kept."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bibev.pipeline.clean import CleanParams
from tests.pipeline.test_clean_frame import at, clean, column, day_of, msg


def soc_series(*values: float, step: timedelta = timedelta(seconds=30)) -> list[object]:
    """SoC per instant (each message also has a speed, so that every instant stays a row and
    shows the value carried over a dropped one) and the drops."""
    rows = day_of(*(msg(at(10) + i * step, soc=v, speed=0.0) for i, v in enumerate(values)))
    frame, quality = clean(rows)
    return [column(frame, "soc_pct"), quality.dropped]


def odometer_series(*values: float, step: timedelta = timedelta(minutes=1)) -> list[object]:
    rows = day_of(*(msg(at(10) + i * step, odo=v) for i, v in enumerate(values)))
    frame, quality = clean(rows)
    kept = [v for v in column(frame, "odometer_km") if v is not None]
    return [kept, quality.dropped]


@pytest.mark.parametrize(
    ("values", "kept", "dropped"),
    [
        ((60, 150, 59.9), [60, 60, 59.9], {"soc_out_of_range": 1}),
        ((60, -0.5, 59.9), [60, 60, 59.9], {"soc_out_of_range": 1}),
        ((0.0, 100.0), [0.0, 100.0], {}),
        ((60, 60, 5, 60, 60), [60, 60, 60, 60, 60], {"soc_jump": 1}),
        ((60, 60, 95, 59.9), [60, 60, 60, 59.9], {"soc_jump": 1}),
        ((12, 60, 60.1, 60.2), [None, 60, 60.1, 60.2], {"soc_jump": 1}),  # first, next two agree
        ((60, 60.1, 60.2, 99), [60, 60.1, 60.2, 60.2], {"soc_jump": 1}),  # last value
        ((60, 60, 30, 30, 30), [60, 60, 30, 30, 30], {}),  # a lasting step is what the car says
        ((20, 23, 26, 29, 32), [20, 23, 26, 29, 32], {}),  # fast DC charging: 6 %/min
        ((60, 59, 58, 57), [60, 59, 58, 57], {}),  # hard driving: 2 %/min
    ],
)
def test_soc_glitches(
    values: tuple[float, ...], kept: list[float], dropped: dict[str, int]
) -> None:
    assert soc_series(*values) == [kept, dropped]


def test_soc_jump_limits_scale_with_time() -> None:
    # 40 points in an hour is possible (DC), in one minute it is not.
    assert soc_series(40, 80, 40, step=timedelta(minutes=60))[1] == {}
    assert soc_series(40, 80, 40, step=timedelta(minutes=1))[1] == {"soc_jump": 1}


def test_soc_jump_limits_are_parameters() -> None:
    rows = day_of(*(msg(at(10, m), soc=v) for m, v in enumerate((60, 66, 60))))
    _, default = clean(rows)
    _, strict = clean(rows, params=CleanParams(soc_max_rise_pct_per_min=1.0))
    assert (default.dropped, strict.dropped) == ({}, {"soc_jump": 1})


@pytest.mark.parametrize(
    ("values", "kept", "dropped"),
    [
        ((100.0, 101.0, 102.5), [100.0, 101.0, 102.5], {}),
        ((100.0, 100.0, 100.05, 100.0), [100.0, 100.0, 100.05, 100.0], {}),  # rounding
        ((100.0, 101.0, 50.0, 103.0), [100.0, 101.0, 103.0], {"odometer_backwards": 1}),
        ((100.0, 101.0, 99.0, 99.5, 102.0), [100.0, 101.0, 102.0], {"odometer_backwards": 2}),
        ((100.0, 101.0, 9999.0, 102.0), [100.0, 101.0, 102.0], {"odometer_jump": 1}),
        ((9999.0, 100.0, 101.0, 102.0), [100.0, 101.0, 102.0], {"odometer_jump": 1}),
        ((100.0, 101.0, -5.0, 102.0), [100.0, 101.0, 102.0], {"out_of_range": 1}),
    ],
)
def test_odometer_glitches(
    values: tuple[float, ...], kept: list[float], dropped: dict[str, int]
) -> None:
    assert odometer_series(*values) == [kept, dropped]


def test_a_fast_but_possible_drive_is_kept() -> None:
    # 240 km in an hour between two reports: fast, not impossible.
    assert odometer_series(1000.0, 1240.0, 1241.0, step=timedelta(hours=1))[1] == {}


@pytest.mark.parametrize(
    ("values", "dropped"),
    [
        ({"lat": 95.0}, {"out_of_range": 1}),
        ({"lat": float("nan")}, {"out_of_range": 1}),
        ({"speed": -4.0}, {"out_of_range": 1}),
        ({"temp": 71.0}, {"out_of_range": 1}),
        ({"temp": -20.0, "lat": -89.9, "speed": 180.0}, {}),
    ],
)
def test_impossible_values_of_other_columns(
    values: dict[str, float], dropped: dict[str, int]
) -> None:
    frame, quality = clean(msg(at(10), soc=50.0, **values))
    assert quality.dropped == dropped
    assert frame.height == 1


def test_reasons_are_counted_only_on_their_own_day() -> None:
    previous = day_of(msg(at(23, 58, day=at(0).date() - timedelta(days=1)), soc=150.0))
    _, quality = clean(msg(at(0, 5), soc=50.0), previous=previous)
    assert quality.dropped == {}
