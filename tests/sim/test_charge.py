"""Charging curves: exact energy, AC efficiency, DC taper, ramps and stops."""

from __future__ import annotations

import numpy as np
import pytest

from bibev.sim.charge import Charger, charge_curve, dc_factor

AC_11 = Charger("ac", 11.0, 11.0, 0.88)
DC_250 = Charger("dc", 250.0, 250.0, 0.98)


@pytest.mark.parametrize(
    ("charger", "start", "target"), [(AC_11, 20.0, 80.0), (DC_250, 10.0, 90.0), (AC_11, 79.0, 80.0)]
)
def test_energy_added_is_soc_change_times_capacity(charger, start, target):
    curve = charge_curve(charger, 70.0, start, target, 10**6, ramp_s=30)
    assert curve.reached
    assert curve.soc_end == pytest.approx(target)
    assert curve.battery_kw.sum() / 3600 == pytest.approx((target - start) / 100 * 70.0, rel=0.01)
    assert np.all(np.diff(curve.soc) >= 0)


def test_ac_battery_power_is_wall_power_times_efficiency():
    curve = charge_curve(AC_11, 60.0, 30.0, 80.0, 10**6, ramp_s=20)
    steady = curve.battery_kw[100:-100]
    assert steady == pytest.approx(11.0 * 0.88)
    assert AC_11.wall_kw(steady) == pytest.approx(11.0)
    # about 60 kWh × 50 % / 9.68 kW ≈ 3.1 h
    assert curve.duration_s == pytest.approx(30.0 / (11 * 0.88) * 3600, rel=0.02)


def test_dc_power_tapers_above_80_percent():
    curve = charge_curve(DC_250, 75.0, 10.0, 100.0, 10**6, ramp_s=30)
    at = {
        level: curve.battery_kw[np.searchsorted(curve.soc, level)] for level in (30, 60, 80, 90, 97)
    }
    assert at[30] == pytest.approx(250.0)
    assert at[60] < at[30]
    assert at[80] == pytest.approx(0.55 * 250, rel=0.01)
    assert at[90] < 0.6 * at[80]
    assert at[97] < 0.2 * at[30]
    assert dc_factor(np.array([50.0, 80.0]))[1] == pytest.approx(0.55)


def test_station_rating_caps_dc_power_until_the_taper_bites():
    station = Charger("dc", 250.0, 50.0, 0.98)
    curve = charge_curve(station, 75.0, 20.0, 95.0, 10**6, ramp_s=30)
    assert curve.battery_kw.max() == pytest.approx(50.0)
    assert curve.battery_kw[np.searchsorted(curve.soc, 93)] < 50.0


def test_a_short_window_interrupts_the_charge():
    curve = charge_curve(AC_11, 60.0, 30.0, 80.0, 1800, ramp_s=20)
    assert not curve.reached
    assert curve.duration_s == 1800
    assert curve.soc_end == pytest.approx(30.0 + (1800 - 10) * 9.68 / 3600 / 60 * 100, rel=0.01)


def test_the_ramp_opens_the_session():
    curve = charge_curve(AC_11, 60.0, 30.0, 80.0, 10**6, ramp_s=40)
    assert curve.battery_kw[0] < curve.battery_kw[39] == pytest.approx(11 * 0.88)
