"""Weather and battery temperature."""

from __future__ import annotations

import numpy as np

from bibev.sim.fleet import Vehicle
from bibev.sim.rng import Purpose, normal

_YEAR_S = 365.25 * 86400.0
_JAN_20 = 19 * 86400.0  # coldest day of the year, in seconds after 1 January (any year)


class Weather:
    """Outside temperature of one vehicle's city: season, time of day and a day-to-day swing
    (one random offset per day, interpolated so that midnight has no step)."""

    def __init__(self, seed: int, vehicle: Vehicle, first_day: int, last_day: int) -> None:
        self.city = vehicle.city
        self.day0 = first_day - 1
        days = np.arange(self.day0, last_day + 2)
        self.offsets = 2.5 * normal(seed, Purpose.PHYSICS, vehicle.index, days)
        self._cache: dict[int, float] = {}

    def at(self, t: int) -> float:
        """Outside temperature at one instant (to the nearest five minutes, cached)."""
        slot = int(t) // 300
        if slot not in self._cache:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[slot] = float(self.outside_c(np.array([slot * 300]))[0])
        return self._cache[slot]

    def outside_c(self, t: np.ndarray | int) -> np.ndarray:
        t = np.asarray(t, dtype=np.int64)
        city = self.city
        phase = (t % 31_557_600 - _JAN_20) / _YEAR_S  # 31,557,600 s = 365.25 days
        seasonal = -city.temp_amplitude_c * np.cos(2 * np.pi * phase)
        local_h = ((t + city.utc_offset_h * 3600) % 86400) / 3600.0
        daily = -4.0 * np.cos(2 * np.pi * (local_h - 3.0) / 24.0)
        day = t / 86400.0 - 0.5 - self.day0
        weather = np.interp(day, np.arange(self.offsets.size), self.offsets)
        return city.temp_mean_c + seasonal + daily + weather


def relax(t: np.ndarray, t0: int, start_c: float, target_c: float, tau_s: float) -> np.ndarray:
    """First-order approach from ``start_c`` at ``t0`` towards ``target_c``."""
    return target_c + (start_c - target_c) * np.exp(-(np.asarray(t) - t0) / tau_s)
