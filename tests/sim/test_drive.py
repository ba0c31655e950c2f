"""Driving: speed profiles and consumption."""

from __future__ import annotations

import numpy as np
import pytest

from bibev.sim.drive import speed_profile, trip_power_kw


@pytest.mark.parametrize("km", [1.5, 6.0, 25.0, 120.0])
def test_profile_covers_the_distance_from_standstill_to_standstill(km):
    speed = speed_profile(np.random.default_rng(1), km, 125.0)
    assert speed[0] == 0.0
    assert speed[-1] == 0.0
    assert speed.sum() / 3600 == pytest.approx(km, rel=0.02, abs=0.05)
    assert speed.min() >= 0.0
    assert np.abs(np.diff(speed / 3.6)).max() < 3.5  # m/s², a plausible car
    assert speed.max() < 125.0 + 25


def test_long_trips_use_the_motorway_and_short_ones_the_town():
    rng = np.random.default_rng(2)
    town = speed_profile(rng, 5.0, 125.0)
    motorway = speed_profile(rng, 150.0, 125.0)
    assert town.max() < 80
    assert np.median(motorway[motorway > 0]) > 90


@pytest.mark.parametrize(
    ("outside", "km"), [(20.0, 10.0), (-10.0, 10.0), (20.0, 150.0), (35.0, 3.0)]
)
def test_consumption_stays_between_140_and_220_wh_per_km(outside, km):
    speed = speed_profile(np.random.default_rng(3), km, 130.0)
    power, wh_km = trip_power_kw(speed, outside, 150.0)
    assert 140.0 <= wh_km <= 220.0
    assert power.sum() / 3.6 / (speed.sum() / 3600) == pytest.approx(wh_km)


def test_cold_and_speed_cost_energy_and_braking_regenerates():
    rng = np.random.default_rng(4)
    town = speed_profile(rng, 12.0, 125.0)
    _, mild = trip_power_kw(town, 18.0, 150.0)
    cold_power, cold = trip_power_kw(town, -8.0, 150.0)
    assert cold > mild
    assert cold_power.min() < 0  # regeneration while braking
