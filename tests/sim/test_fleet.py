"""The fleet: valid VINs, plausible capacities and ageing, independent of the fleet size."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pytest

from bibev.sim.fleet import (
    MODELS,
    PROVIDERS,
    Ageing,
    make_fleet,
    make_vehicle,
    make_vin,
    vin_check_digit,
)
from bibev.storage import validate_vin

START = date(2025, 3, 1)


def test_check_digit_of_a_known_vin():
    assert vin_check_digit("1M8GDM9A_KP042788".replace("_", "0")) == "X"
    assert vin_check_digit("11111111111111111") == "1"
    assert make_vin("1M8", "GDM9A", 2019, "P", 42788) == "1M8GDM9AXKP042788"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_vins_are_valid_unique_and_from_the_provider_makes(provider):
    fleet = make_fleet(5, 60, provider, START)
    vins = [v.vin for v in fleet]
    assert len(set(vins)) == len(vins)
    wmis = {w for m in MODELS[provider] for w in m.wmis}
    for vin in vins:
        assert validate_vin(vin) == vin
        assert vin[8] == vin_check_digit(vin)
        assert vin[:3] in wmis
        assert re.fullmatch(r"[A-HJ-NPR-Z0-9]{17}", vin)


def test_a_vehicle_does_not_depend_on_the_fleet_size():
    assert make_fleet(9, 3, "tesla", START) == make_fleet(9, 30, "tesla", START)[:3]
    assert make_vehicle(9, 17, "bmw", START) == make_fleet(9, 20, "bmw", START)[17]
    assert make_fleet(9, 3, "tesla", START) != make_fleet(10, 3, "tesla", START)


def test_models_have_50_to_100_kwh():
    capacities = [m.nominal_kwh for models in MODELS.values() for m in models]
    assert 50 <= min(capacities) <= max(capacities) <= 100


def test_ageing_is_fast_first_then_slow():
    ageing = Ageing(
        fast_pct=4.0, fast_km=12_000, cycle_pct_per_km=1.0 / 50_000, calendar_pct_per_year=1.0
    )
    assert ageing.soh_pct(0, 0) == 100.0
    after_40k = ageing.soh_pct(40_000, 0)
    assert 100 - after_40k == pytest.approx(4.0 * (1 - np.exp(-40 / 12)) + 0.8, abs=1e-9)
    assert 4.5 < 100 - after_40k < 5.0
    # then about 1 % per 50,000 km
    assert ageing.soh_pct(40_000, 0) - ageing.soh_pct(90_000, 0) == pytest.approx(1.14, abs=0.05)
    assert ageing.soh_pct(40_000, 3) == pytest.approx(after_40k - 3.0)


def test_the_fleet_spreads_over_state_of_health():
    fleet = make_fleet(2, 400, "sim", START)
    soh = np.array([v.capacity_kwh(v.odometer_km, START)[1] for v in fleet])
    assert 80 < soh.min() < 88
    assert 98 < soh.max() <= 100
    assert 89 < np.median(soh) < 95
    old = [v for v in fleet if (START - v.built).days > 3 * 365]
    per_year = [
        (100 - v.capacity_kwh(v.odometer_km, START)[1]) / ((START - v.built).days / 365.25)
        for v in old
    ]
    assert 1.0 < np.median(per_year) < 3.0
