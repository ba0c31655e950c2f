"""Driving: second-by-second speed profiles and the battery power they take.

A trip is a sequence of urban, rural and motorway legs built from blocks of target speeds
(urban blocks include stops), smoothed into plausible accelerations. The battery power follows
a road-load model (rolling resistance, aerodynamic drag, inertia with regeneration, auxiliaries
and cabin heating), scaled so that the trip's consumption stays within 140–220 Wh/km.
"""

from __future__ import annotations

import numpy as np

MIN_WH_KM = 140.0
MAX_WH_KM = 220.0

# (share of the distance) per leg kind, by trip length
_LEGS_SHORT = (("urban", 1.0),)
_LEGS_MEDIUM = (("urban", 0.25), ("rural", 0.4), ("motorway", 0.2), ("urban", 0.15))
_LEGS_LONG = (("urban", 0.05), ("rural", 0.1), ("motorway", 0.75), ("rural", 0.05), ("urban", 0.05))


def _leg_blocks(
    rng: np.random.Generator, kind: str, km: float, motorway_kmh: float
) -> tuple[np.ndarray, np.ndarray]:
    """Target speeds (km/h) and durations (s) of the blocks of one leg."""
    if kind == "urban":
        mean_speed, lo_dur, hi_dur, stop_p = 42.0, 10, 50, 0.3
    elif kind == "rural":
        mean_speed, lo_dur, hi_dur, stop_p = 80.0, 30, 120, 0.03
    else:
        mean_speed, lo_dur, hi_dur, stop_p = motorway_kmh, 60, 300, 0.0
    mean_block_km = mean_speed * (1 - stop_p) * (lo_dur + hi_dur) / 2 / 3600
    n = int(km / max(mean_block_km, 1e-3) * 1.6) + 4
    durations = rng.integers(lo_dur, hi_dur + 1, n)
    spread = 8.0 if kind != "motorway" else 6.0
    speeds = np.clip(rng.normal(mean_speed, spread, n), 15, motorway_kmh + 15)
    speeds[rng.random(n) < stop_p] = 0.0
    cum_km = np.cumsum(speeds * durations) / 3600
    keep = int(np.searchsorted(cum_km, km)) + 1
    return speeds[:keep], durations[:keep]


def speed_profile(rng: np.random.Generator, distance_km: float, motorway_kmh: float) -> np.ndarray:
    """Speed in km/h for each second of a trip of about ``distance_km``; starts and ends at 0."""
    legs = _LEGS_SHORT if distance_km < 8 else _LEGS_MEDIUM if distance_km < 40 else _LEGS_LONG
    parts = [_leg_blocks(rng, kind, share * distance_km, motorway_kmh) for kind, share in legs]
    speeds = np.concatenate([p[0] for p in parts])
    durations = np.concatenate([p[1] for p in parts])
    target = np.repeat(speeds, durations).astype(float)
    pad = np.zeros(12)
    kernel = np.ones(12) / 12
    smooth = np.convolve(np.concatenate([pad, target, pad]), kernel, mode="same")
    smooth = np.convolve(smooth, kernel, mode="same")[6:-6]
    smooth += np.convolve(rng.normal(0, 1.2, smooth.size), np.ones(5) / 5, mode="same")
    smooth = np.clip(smooth, 0.0, None)
    cum_km = np.cumsum(smooth) / 3600
    end = int(np.searchsorted(cum_km, distance_km))
    if end < smooth.size:
        last = smooth[end]
        ramp = np.linspace(last, 0.0, max(2, int(last / 9) + 2))
        smooth = np.concatenate([smooth[:end], ramp])
    smooth[0] = 0.0
    smooth[-1] = 0.0
    return smooth


def road_power_kw(speed_kmh: np.ndarray, outside_c: float, mass_kg: float = 1900.0) -> np.ndarray:
    """Battery power (kW, positive = out of the battery) of a speed profile, unscaled."""
    v = speed_kmh / 3.6
    accel = np.gradient(v)
    traction = 0.011 * mass_kg * 9.81 * v + 0.5 * 1.2 * 0.58 * v**3
    inertia = mass_kg * accel * v
    inertia = np.where(inertia > 0, inertia / 0.9, inertia * 0.65)
    aux = 350.0 + 120.0 * max(0.0, 15.0 - outside_c) + 60.0 * max(0.0, outside_c - 25.0)
    return (traction + inertia + aux) / 1000.0


def trip_power_kw(
    speed_kmh: np.ndarray, outside_c: float, base_wh_km: float
) -> tuple[np.ndarray, float]:
    """Battery power per second and the trip's consumption (Wh/km), within 140–220 Wh/km."""
    power = road_power_kw(speed_kmh, outside_c)
    km = float(speed_kmh.sum()) / 3600
    used_wh = float(power.sum()) / 3.6  # kW·s → Wh
    if km < 1e-6:
        return power, 0.0
    physical = used_wh / km * base_wh_km / 150.0
    wh_km = float(np.clip(physical, MIN_WH_KM, MAX_WH_KM))
    return power * (wh_km * km / used_wh), wh_km
