"""Sampling: on change, at per-field intervals, everything on (re)connect; ~20 % repeats."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from bibev.sim.fleet import make_fleet
from bibev.sim.physics import VehicleSim
from bibev.sim.pipeline import simulate_batch
from bibev.sim.plan import day_start_utc
from bibev.sim.rng import Purpose, hash64
from bibev.sim.signals import Signals, VehicleDay
from bibev.sim.telemetry import Periods, sample_poll
from bibev.sim.trace import empty_trace
from bibev.sim.wire import FORMATS
from bibev.sim.wire.tesla import FLEET_TELEMETRY

from .conftest import START

SEED = 5
POLL_FORMATS = [f for f in FORMATS.values() if f.mode == "poll"]


def _batch(mess: bool):
    fleet = make_fleet(SEED, 6, "tesla", START)
    end = day_start_utc(START + timedelta(days=1))
    sims = [VehicleSim(SEED, v, START, end) for v in fleet]
    return simulate_batch(sims, START, FLEET_TELEMETRY, seed=SEED, mess=mess)


@pytest.fixture(scope="module")
def clean():
    return _batch(mess=False)


@pytest.fixture(scope="module")
def messy_batch():
    return _batch(mess=True)


def _emissions(batch, key):
    """(sample row, value, row's vehicle position) of every datum of ``key``."""
    fi = [f.key for f in FLEET_TELEMETRY.fields].index(key)
    s = batch.sampled
    mine = s.field == fi
    rows = s.msg_sample[s.msg[mine]]
    return rows, s.value[mine], s.value2[mine]


@pytest.mark.parametrize(
    "key", ["Soc", "PackVoltage", "Gear", "DetailedChargeState", "Odometer", "Location"]
)
def test_clean_values_are_sent_only_when_they_change(clean, key):
    rows, value, value2 = _emissions(clean, key)
    periods = Periods.of(clean.signals, np.arange(len(clean.signals.trace)))
    period = np.searchsorted(periods.start, rows, side="right")
    same_period = period[1:] == period[:-1]
    unchanged = (value[1:] == value[:-1]) & ((value2[1:] == value2[:-1]) | np.isnan(value2[1:]))
    assert rows.size > 20
    assert not np.any(same_period & unchanged)


@pytest.mark.parametrize(
    ("key", "interval"), [("Soc", 30), ("PackCurrent", 30), ("OutsideTemp", 300), ("Location", 10)]
)
def test_values_are_sent_on_the_field_interval_or_on_reconnect(clean, key, interval):
    rows, _, _ = _emissions(clean, key)
    trace = clean.signals.trace
    t = trace["t"][rows]
    phase = hash64(SEED, Purpose.PHASE, clean.signals.vehicle_index).astype(np.int64)
    on_grid = (t - phase[clean.signals.pos[rows]]) % interval == 0
    periods = Periods.of(clean.signals, np.arange(len(trace)))
    on_connect = np.isin(rows, periods.start)
    assert np.all(on_grid | on_connect)
    assert on_grid.sum() > on_connect.sum()


def test_every_field_is_sent_on_connect(clean):
    periods = Periods.of(clean.signals, np.arange(len(clean.signals.trace)))
    s = clean.sampled
    first = np.isin(s.msg_sample, periods.start)
    datums_per_first_message = np.bincount(s.msg, minlength=s.msg_sample.size)[first]
    sendable = len(FLEET_TELEMETRY.fields)
    assert np.all(datums_per_first_message == sendable)


def test_one_message_carries_every_field_due_at_that_second(clean):
    s = clean.sampled
    per_message = np.bincount(s.msg)
    assert per_message.max() > 5
    assert np.unique(s.msg_sample).size == s.msg_sample.size


def test_mess_repeats_about_a_fifth_of_the_records(messy_batch):
    s = messy_batch.sampled
    assert 0.15 <= s.repeats / s.msg.size <= 0.25


def test_mess_sends_strings_and_invalid_values(messy_batch):
    s = messy_batch.sampled
    assert 0.005 < s.as_string.mean() < 0.5
    assert 0 < s.invalid.sum() < 0.01 * s.msg.size
    invalidable = np.array([f.invalidable for f in FLEET_TELEMETRY.fields])
    assert np.all(invalidable[s.field[s.invalid]])


def test_mess_adds_noise_and_a_bms_error(clean, messy_batch):
    rows = np.arange(0, len(clean.signals.trace), 97)
    exact, noisy = clean.signals, messy_batch.signals
    assert np.array_equal(exact.at("soc_pct", rows), exact.trace["soc"][rows])
    bias = noisy.at("soc_pct", rows) - noisy.trace["soc"][rows]
    assert 0.05 < np.abs(bias).mean() < 4.0
    assert 0.1 < np.std(noisy.at("pack_voltage_v", rows) - exact.at("pack_voltage_v", rows)) < 1.0


def test_clean_delivery_is_in_order_without_copies(clean):
    d = clean.delivered
    assert d.messages.height == clean.sampled.msg_sample.size
    assert set(d.messages["copy"].to_list()) == {0}
    assert d.stats["skewed"] == d.stats["late"] == 0


@pytest.mark.parametrize("fmt", POLL_FORMATS, ids=lambda f: f.name)
def test_polls_of_a_batch_that_slept_all_day_get_no_answer(fmt):
    """A batch whose vehicles never woke up has no samples at all: every poll of the day goes
    unanswered (it used to index the empty trace and raise an IndexError)."""
    fleet = make_fleet(SEED, 2, fmt.provider, START)
    days = [VehicleDay(v, v.model.nominal_kwh, 100.0) for v in fleet]
    signals = Signals(empty_trace(), np.zeros(0, np.int32), days, seed=SEED, mess=True)
    per_vehicle = {"poll": np.array([v.poll_interval_s for v in fleet], dtype=np.int64)}
    start = day_start_utc(START)
    no_rows = np.zeros(0, dtype=np.int64)
    sampled = sample_poll(
        fmt, signals, no_rows, per_vehicle, (start, np.full(2, start + 86400)), seed=SEED, mess=True
    )
    assert sampled.msg_sample.size == sampled.msg_time_s.size == 0
    assert sampled.msg.size == sampled.value.size == 0
