"""Daily plans: when each vehicle leaves, where to, how far and for how long.

A plan is a pure function of (seed, vehicle, local date): the physics can look at tomorrow's
first departure (to know when tonight's charge will be interrupted) without changing anything.
Times are local (the vehicle's city) converted to UTC epoch seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from bibev.sim.fleet import Vehicle, _offset
from bibev.sim.rng import Purpose, stream


@dataclass(frozen=True)
class Outing:
    """Leave home at ``depart``, drive ``distance_km`` to ``place``, stay at least
    ``dwell_s`` (until ``back_after`` at the earliest), drive home."""

    depart: int
    place: str  # work | shop | far
    destination: tuple[float, float]
    distance_km: float
    dwell_s: int
    back_after: int


def day_start_utc(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def local_time(vehicle: Vehicle, day: date, hours: float) -> int:
    """Epoch seconds of ``hours`` after local midnight of ``day``."""
    return day_start_utc(day) + round(hours * 3600) - vehicle.city.utc_offset_h * 3600


def plan_day(seed: int, vehicle: Vehicle, day: date) -> list[Outing]:
    """The outings of one local day, in order, never overlapping (by the planned times)."""
    rng = stream(seed, vehicle.index, Purpose.PLAN, day.toordinal())
    weekend = day.weekday() >= 5
    outings: list[Outing] = []
    busy_until = local_time(vehicle, day, 6.0)
    if vehicle.commuter and not weekend and rng.random() < 0.88:
        depart = local_time(vehicle, day, float(np.clip(rng.normal(7.8, 0.6), 5.5, 10.5)))
        back = local_time(vehicle, day, float(np.clip(rng.normal(17.4, 0.8), 14.5, 20.5)))
        km = vehicle.commute_km * float(rng.uniform(0.97, 1.08))
        outings.append(Outing(depart, "work", vehicle.work, km, 3600, back))
        busy_until = back + int(km / 35 * 3600) + 1800
    if weekend and rng.random() < vehicle.long_trip_rate:
        depart = max(busy_until, local_time(vehicle, day, float(rng.uniform(8.0, 10.5))))
        km = float(rng.uniform(110, 330))
        where = _offset(*vehicle.home, km / 1.25, float(rng.uniform(0, 2 * math.pi)))
        dwell = int(rng.uniform(2.0, 5.0) * 3600)
        outings.append(Outing(depart, "far", where, km, dwell, depart))
        busy_until = depart + int(2 * km / 85 * 3600) + dwell + 1800
    for _ in range(int(rng.poisson(vehicle.errand_rate * (1.3 if weekend else 0.8)))):
        earliest = max(busy_until, local_time(vehicle, day, 9.0))
        latest = local_time(vehicle, day, 21.5)
        if earliest >= latest:
            break
        depart = int(rng.uniform(earliest, min(latest, earliest + 4 * 3600)))
        km = float(np.clip(rng.lognormal(math.log(6), 0.7), 1.0, 35.0))
        where = _offset(*vehicle.home, km / 1.3, float(rng.uniform(0, 2 * math.pi)))
        dwell = int(rng.uniform(15, 100) * 60)
        outings.append(Outing(depart, "shop", where, km, dwell, depart))
        busy_until = depart + int(2 * km / 30 * 3600) + dwell + 900
    return outings
