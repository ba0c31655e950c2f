"""Physics: sessions tile the timeline and obey energy, efficiency, taper and consumption."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
import pytest

from bibev.sim.charge import dc_factor
from bibev.sim.fleet import bms_bias_pct
from bibev.sim.physics import VehicleSim
from bibev.sim.trace import CHARGING

from .conftest import START


def _sessions(physics):
    for vin, results in physics.days.items():
        for day, result in enumerate(results):
            for session in result.sessions:
                yield vin, day, result, session


def test_sessions_tile_each_vehicle_timeline(physics):
    for vin, results in physics.days.items():
        sessions = [s for r in results for s in r.sessions]
        assert sessions[0].start == physics.start, vin
        assert sessions[-1].end == physics.end, vin
        for before, after in itertools.pairwise(sessions):
            assert before.end == after.start
            assert after.end > after.start
            assert after.soc_start == pytest.approx(before.soc_end, abs=1e-9)
            assert after.odometer_start_km == pytest.approx(before.odometer_end_km, abs=1e-9)


def test_kinds_charger_kinds_and_end_reasons(physics):
    rows = [s for *_, s in _sessions(physics)]
    assert {s.kind for s in rows} == {"charging", "driving", "idle"}
    for s in rows:
        assert (s.charger_kind in ("ac", "dc")) == (s.kind == "charging")
    charger_kinds = {s.charger_kind for s in rows if s.kind == "charging"}
    assert charger_kinds == {"ac", "dc"}
    reasons = {s.end_reason for s in rows if s.kind == "charging"}
    assert "limit" in reasons
    assert reasons & {"departure", "user", "dwell"}


def test_soc_stays_within_0_and_100(physics):
    for *_, _result, s in _sessions(physics):
        assert 0.0 <= s.soc_end <= 100.0
    for results in physics.days.values():
        soc = np.concatenate([r.trace["soc"] for r in results])
        assert soc.size > 0
        assert soc.min() >= 0.0
        assert soc.max() <= 100.0


def test_odometer_never_decreases(physics):
    for results in physics.days.values():
        odometer = np.concatenate([r.trace["odometer_km"] for r in results])
        assert np.all(np.diff(odometer) >= -1e-9)
        starts = [s.odometer_start_km for r in results for s in r.sessions]
        assert starts == sorted(starts)
    driven = [
        s.odometer_end_km - s.odometer_start_km
        for *_, s in _sessions(physics)
        if s.kind == "driving"
    ]
    assert sum(driven) > 16 * 6 * 10  # a fleet that drives: > 10 km per vehicle-day


def test_battery_energy_is_soc_change_times_true_capacity(physics):
    for _, _, result, s in _sessions(physics):
        expected = (s.soc_end - s.soc_start) / 100 * result.capacity_kwh
        assert s.energy_kwh == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_charging_power_integrates_to_the_session_energy(physics):
    checked = 0
    for _, _, result, s in _sessions(physics):
        if s.kind != "charging" or s.end_reason == "window":
            continue
        t = result.trace["t"]
        inside = (t >= s.start) & (t < s.end)
        integrated = result.trace["battery_kw"][inside].sum() / 3600
        assert integrated == pytest.approx(s.energy_kwh, rel=0.02, abs=0.02)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize(("kind", "low", "high"), [("ac", 0.85, 0.92), ("dc", 0.97, 0.99)])
def test_wall_energy_exceeds_battery_energy(physics, kind, low, high):
    ratios = [
        s.energy_kwh / s.wall_energy_kwh
        for *_, s in _sessions(physics)
        if s.kind == "charging" and s.charger_kind == kind
    ]
    assert ratios
    assert low <= min(ratios) <= max(ratios) <= high


def test_dc_power_never_exceeds_the_tapered_curve(physics):
    vehicles = {v.vin: v for v in physics.vehicles}
    dc_samples = 0
    for vin, results in physics.days.items():
        for result in results:
            tr = result.trace
            dc = (tr["plug"] == 2) & (tr["phase"] == CHARGING)
            if not dc.any():
                continue
            peak = vehicles[vin].model.max_dc_kw
            limit = peak * dc_factor(tr["soc"][dc])
            assert np.all(tr["battery_kw"][dc] <= limit * 1.001 + 0.01)
            dc_samples += int(dc.sum())
    assert dc_samples > 600


def test_trip_consumption_is_140_to_220_wh_per_km(physics):
    rates = [
        -s.energy_kwh / (s.odometer_end_km - s.odometer_start_km) * 1000
        for *_, s in _sessions(physics)
        if s.kind == "driving"
        and s.end_reason == "arrived"
        and s.odometer_end_km - s.odometer_start_km > 1
    ]
    assert len(rates) > 50
    assert 140 - 1e-6 <= min(rates) <= max(rates) <= 220 + 1e-6
    assert max(rates) - min(rates) > 20  # speed and temperature matter


def test_charges_stop_where_the_bms_reads_the_limit(physics):
    vehicles = {v.vin: v for v in physics.vehicles}
    checked = 0
    for vin, _, _, s in _sessions(physics):
        vehicle = vehicles[vin]
        if s.kind != "charging" or s.end_reason != "limit":
            continue
        bias = float(bms_bias_pct(vehicle, np.array([s.start]))[0])
        assert s.soc_end == pytest.approx(min(100.0, vehicle.charge_limit_pct - bias), abs=1e-6)
        checked += 1
    assert checked >= 5


def test_the_car_sleeps_most_of_its_idle_time(physics):
    idle_s = awake_s = 0
    for _, _, result, s in _sessions(physics):
        if s.kind == "idle":
            t = result.trace["t"]
            idle_s += s.end - s.start
            awake_s += int(((t >= s.start) & (t < s.end)).sum())
    assert 0 < awake_s < 0.25 * idle_s


def test_some_sessions_hide_in_connectivity_gaps(physics):
    offline = [s for *_, s in _sessions(physics) if s.offline]
    assert offline
    for results in physics.days.values():
        for result in results:
            assert result.trace["online"].dtype == bool


def test_fewer_days_simulate_the_same_sessions(physics):
    vehicle = physics.vehicles[3]
    end = physics.start + 2 * 86400
    short = VehicleSim(7, vehicle, START, end)
    short_sessions = [s for k in range(2) for s in short.step(START + timedelta(days=k)).sessions]
    long_sessions = [s for r in physics.days[vehicle.vin] for s in r.sessions]
    complete = [s for s in short_sessions if s.end < end]
    assert complete
    assert complete == long_sessions[: len(complete)]
