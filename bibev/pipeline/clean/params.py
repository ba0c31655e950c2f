"""The cleaner's thresholds, with their defaults and the reasons for them (docs/clean.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from bibev.errors import ConfigError
from bibev.schema import SIGNAL_COLUMNS

_MIN = timedelta(minutes=1)
_HOUR = timedelta(hours=1)

#: How long a signal's last value stays current when nothing new arrives. Telemetry is sent on
#: change and at per-field intervals (Tesla: SoC every 30 s, odometer up to hourly) and polled
#: providers answer every 5-15 minutes, so each limit is above the usual silence of its signal
#: and below the time it takes the signal to become wrong (a value from 6 hours ago is not
#: "current").
DEFAULT_MAX_AGE: dict[str, timedelta] = {
    "soc_pct": 30 * _MIN,
    "odometer_km": 2 * _HOUR,
    "speed_kmh": 5 * _MIN,
    "gear": 30 * _MIN,
    "charging_state": 30 * _MIN,
    "charger_kind": 30 * _MIN,
    "charging_power_kw": 5 * _MIN,
    "energy_added_kwh": 30 * _MIN,
    "pack_voltage_v": 5 * _MIN,
    "pack_current_a": 5 * _MIN,
    "energy_remaining_kwh": 30 * _MIN,
    "battery_temp_min_c": 30 * _MIN,
    "battery_temp_max_c": 30 * _MIN,
    "outside_temp_c": _HOUR,
    "range_km": 30 * _MIN,
    "latitude": 10 * _MIN,
    "longitude": 10 * _MIN,
    "charge_limit_pct": 6 * _HOUR,
    "oem_soh_pct": 24 * _HOUR,
}

#: Values outside these bounds cannot be real (reason ``out_of_range``; SoC outside 0-100 has
#: its own reason, ``soc_out_of_range``). Bounds are generous: they catch garbage, not outliers.
DEFAULT_PLAUSIBLE: dict[str, tuple[float, float]] = {
    "soc_pct": (0.0, 100.0),
    "odometer_km": (0.0, 5_000_000.0),
    "speed_kmh": (0.0, 450.0),
    "charging_power_kw": (-50.0, 1_500.0),
    "energy_added_kwh": (0.0, 500.0),
    "pack_voltage_v": (0.0, 1_500.0),
    "pack_current_a": (-3_000.0, 3_000.0),
    "energy_remaining_kwh": (0.0, 500.0),
    "battery_temp_min_c": (-60.0, 120.0),
    "battery_temp_max_c": (-60.0, 120.0),
    "outside_temp_c": (-70.0, 70.0),
    "range_km": (0.0, 3_000.0),
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 180.0),
    "charge_limit_pct": (0.0, 100.0),
    "oem_soh_pct": (0.0, 200.0),
}


@dataclass(frozen=True)
class CleanParams:
    """Thresholds of ``clean_frame``. Every one has a documented default; override some with
    ``dataclasses.replace`` (a partial ``max_age`` or ``plausible`` is merged into the defaults).

    - ``max_age``: per column, how long a value is carried forward (``DEFAULT_MAX_AGE``).
    - ``clock_tolerance``: a timestamp up to this far after its message was received is
      ordinary clock difference and left alone.
    - ``max_clock_skew``: a timestamp further after ``received_at`` than the tolerance but at
      most this far is a skewed clock (Tesla: up to 5 minutes after wake-up) and is moved back
      to ``received_at``; beyond it the observation is dropped (``future_ts``).
    - ``soc_max_rise_pct_per_min`` / ``soc_max_fall_pct_per_min``: the fastest SoC can rise
      (DC charging a small pack) and fall (hard driving); ``soc_jump_allowance_pct`` is added
      for rounding and BMS noise. A value that breaks them towards both neighbours and comes
      back is a glitch (``soc_jump``).
    - ``odometer_max_speed_kmh`` and ``odometer_jump_allowance_km``: the fastest an odometer
      can advance; ``odometer_tolerance_km`` is how far it may seem to go back from rounding.
    - ``plausible``: per column, the bounds outside which a value cannot be real.
    - ``gap``: no observation at all for longer than this is a gap in the quality record.
    - ``gap_lookback_days``: how many days back the silence before a day's first instant is
      measured from when the vehicle has no compressed file the day before (its latest file
      on one of the days ``day - 2`` … ``day - gap_lookback_days``); a silence that began
      earlier than that, or before the vehicle's first file, has no known start and is not
      counted. 1: only the day before.
    - ``tail_window`` and ``tail_rows_per_key``: how much of the previous day is read to carry
      state across midnight: everything in the last ``tail_window`` plus the last
      ``tail_rows_per_key`` rows of every key.
    """

    max_age: Mapping[str, timedelta] = field(default_factory=lambda: dict(DEFAULT_MAX_AGE))
    clock_tolerance: timedelta = timedelta(seconds=2)
    max_clock_skew: timedelta = timedelta(minutes=10)
    soc_max_rise_pct_per_min: float = 8.0
    soc_max_fall_pct_per_min: float = 4.0
    soc_jump_allowance_pct: float = 2.0
    odometer_max_speed_kmh: float = 250.0
    odometer_jump_allowance_km: float = 1.0
    odometer_tolerance_km: float = 0.1
    plausible: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_PLAUSIBLE)
    )
    gap: timedelta = timedelta(minutes=30)
    gap_lookback_days: int = 31
    tail_window: timedelta = timedelta(hours=1)
    tail_rows_per_key: int = 3

    def __post_init__(self) -> None:
        unknown = sorted((set(self.max_age) | set(self.plausible)) - set(SIGNAL_COLUMNS))
        if unknown:
            raise ConfigError(f"clean parameters name unknown columns: {', '.join(unknown)}")
        max_age = {**DEFAULT_MAX_AGE, **self.max_age}
        if any(age <= timedelta(0) for age in max_age.values()):
            raise ConfigError("every max_age must be positive")
        plausible = {**DEFAULT_PLAUSIBLE, **self.plausible}
        if any(low > high for low, high in plausible.values()):
            raise ConfigError("a plausible range has its lower bound above the upper one")
        if self.clock_tolerance < timedelta(0) or self.max_clock_skew < self.clock_tolerance:
            raise ConfigError("need 0 <= clock_tolerance <= max_clock_skew")
        if self.gap <= timedelta(0) or self.tail_window < timedelta(0):
            raise ConfigError("gap must be positive and tail_window not negative")
        if self.gap_lookback_days < 1:
            raise ConfigError("gap_lookback_days must be at least 1 (the day before)")
        if self.tail_rows_per_key < 1:
            raise ConfigError("tail_rows_per_key must be at least 1")
        object.__setattr__(self, "max_age", max_age)
        object.__setattr__(self, "plausible", plausible)

    def __hash__(self) -> int:
        # The tables are dicts (picklable for worker processes); hash their items instead.
        fields = {**self.__dict__, "max_age": None, "plausible": None}
        return hash(
            (
                tuple(sorted(self.max_age.items())),
                tuple(sorted(self.plausible.items())),
                tuple(sorted(fields.items())),
            )
        )
