"""Charging curves: battery-side power as a function of SoC, integrated second by second.

AC: the on-board charger draws the wall power (3.7–22 kW) and 85–92 % of it reaches the battery;
power falls off above 95 % while cells balance. DC: the car's own curve (flat to 50 %, down to
55 % of peak at 80 %, then an exponential taper), capped by the station's rating. A short ramp
opens every session. The SoC path is exact for the power curve: time to reach each SoC is
integrated on a fine SoC grid and inverted, so energy added = ΔSoC × capacity by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def dc_factor(soc: np.ndarray) -> np.ndarray:
    """Share of the car's peak DC power it accepts at ``soc`` (%)."""
    soc = np.asarray(soc, dtype=float)
    mid = 1.0 - 0.45 * (soc - 50.0) / 30.0
    high = 0.55 * np.exp(-(soc - 80.0) / 9.0)
    return np.where(soc <= 50.0, 1.0, np.where(soc <= 80.0, mid, high))


def ac_factor(soc: np.ndarray) -> np.ndarray:
    soc = np.asarray(soc, dtype=float)
    return np.where(soc <= 95.0, 1.0, 1.0 - 0.7 * (soc - 95.0) / 5.0)


@dataclass(frozen=True)
class Charger:
    kind: str  # ac | dc
    peak_kw: float  # wall power (AC) or the car's peak battery power (DC)
    station_kw: float  # the station's rating (DC), = peak_kw for AC
    efficiency: float  # battery / wall (AC) or battery / charger output (DC)

    def battery_kw(self, soc: np.ndarray) -> np.ndarray:
        if self.kind == "ac":
            return self.peak_kw * self.efficiency * ac_factor(soc)
        return np.minimum(self.station_kw, self.peak_kw * dc_factor(soc))

    def wall_kw(self, battery_kw: np.ndarray) -> np.ndarray:
        """Power drawn at the wall (AC) or delivered by the station (DC)."""
        return battery_kw / self.efficiency


@dataclass(frozen=True)
class ChargeCurve:
    soc: np.ndarray  # true SoC at each second from the start (length = duration)
    battery_kw: np.ndarray  # battery-side power at each second
    soc_end: float
    reached: bool  # stopped because the target SoC was reached

    @property
    def duration_s(self) -> int:
        return int(self.soc.size)


def charge_curve(
    charger: Charger,
    capacity_kwh: float,
    soc_start: float,
    soc_target: float,
    max_s: int,
    ramp_s: int,
) -> ChargeCurve:
    """The SoC path from ``soc_start`` to ``soc_target`` or for ``max_s`` seconds, if sooner."""
    soc_target = min(soc_target, 100.0)
    max_s = max(1, int(max_s))
    ramp_s = max(1, min(int(ramp_s), max_s))
    p0 = float(charger.battery_kw(np.array(soc_start)))
    t_ramp = np.arange(ramp_s, dtype=float)
    p_ramp = p0 * (t_ramp + 1) / ramp_s
    e_ramp = np.concatenate([[0.0], np.cumsum(p_ramp)]) / 3600.0  # kWh at each second
    soc_ramp = soc_start + e_ramp[:-1] / capacity_kwh * 100.0
    soc_r = soc_start + e_ramp[-1] / capacity_kwh * 100.0
    if soc_r >= soc_target or ramp_s >= max_s:
        n = int(np.searchsorted(soc_ramp, soc_target)) if soc_r >= soc_target else ramp_s
        n = max(1, min(n, ramp_s))
        end = float(min(soc_start + e_ramp[n] / capacity_kwh * 100.0, soc_target))
        return ChargeCurve(soc_ramp[:n], p_ramp[:n], end, soc_r >= soc_target)
    grid = np.linspace(soc_r, soc_target, max(2, int((soc_target - soc_r) / 0.01) + 1))
    mid = (grid[1:] + grid[:-1]) / 2
    seconds = np.concatenate(
        [[0.0], np.cumsum(36.0 * capacity_kwh * np.diff(grid) / charger.battery_kw(mid))]
    )
    total = ramp_s + seconds[-1]
    reached = total <= max_s
    n = int(np.ceil(total)) if reached else max_s
    t_after = np.arange(ramp_s, n, dtype=float) - ramp_s
    soc_after = np.interp(t_after, seconds, grid)
    soc = np.concatenate([soc_ramp, soc_after])
    power = np.concatenate([p_ramp, charger.battery_kw(soc_after)])
    end = soc_target if reached else float(np.interp(n - ramp_s, seconds, grid))
    return ChargeCurve(soc, power, end, bool(reached))
