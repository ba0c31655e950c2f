"""A small builder of synthetic clean series (``bibev.schema.CLEAN_SCHEMA``) for the
segmentation tests: park, drive, charge and go silent, one call each, with the signals a
provider would report (or leave out) at a chosen interval."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from bibev.schema import CLEAN_SCHEMA

VIN = "5YJ3E1EA7KF000001"
T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
CAPACITY_KWH = 60.0


@dataclass
class Series:
    """A vehicle's clean rows, built forward in time from ``t``."""

    t: datetime = T0
    soc: float = 60.0
    odometer: float = 10_000.0
    lat: float = 48.0
    lon: float = 2.0
    energy: float = 0.0
    vin: str = VIN
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: columns to leave null everywhere (a provider that does not report them)
    missing: tuple[str, ...] = ()

    def _row(self, base: dict[str, Any], values: dict[str, Any]) -> None:
        self._put(**{**base, **values})

    def _put(self, **values: Any) -> None:
        row = {
            "vin": self.vin,
            "ts": self.t,
            "soc_pct": round(self.soc, 3),
            "odometer_km": round(self.odometer, 3),
            "latitude": round(self.lat, 6),
            "longitude": round(self.lon, 6),
            "energy_added_kwh": round(self.energy, 3),
            "energy_remaining_kwh": round(self.soc / 100 * CAPACITY_KWH, 2),
            "battery_temp_min_c": 14.0,
            "battery_temp_max_c": 16.0,
            **values,
        }
        for name in self.missing:
            row[name] = None
        self.rows.append(row)

    def park(self, minutes: float, every: float = 30.0, **values: Any) -> Series:
        """Parked and awake: gear P, disconnected, speed 0, a slow drain."""
        for _ in range(int(minutes * 60 / every)):
            base = {
                "gear": "P",
                "charging_state": "disconnected",
                "charger_kind": "none",
                "speed_kmh": 0.0,
                "charging_power_kw": 0.0,
            }
            self._row(base, values)
            self.t += timedelta(seconds=every)
            self.soc -= 0.25 / CAPACITY_KWH * 100 * every / 3600
        return self

    def drive(self, minutes: float, kmh: float = 40.0, every: float = 5.0, **values: Any) -> Series:
        """Driving at ``kmh``: gear D, 0.3 points of SoC per km, heading north-east."""
        step_km = kmh * every / 3600
        for _ in range(int(minutes * 60 / every)):
            base = {
                "gear": "D",
                "charging_state": "disconnected",
                "charger_kind": "none",
                "speed_kmh": kmh,
                "charging_power_kw": 0.0,
                "pack_voltage_v": 380.0,
                "pack_current_a": -40.0,
            }
            self._row(base, values)
            self.t += timedelta(seconds=every)
            self.odometer += step_km
            self.soc -= 0.3 * step_km
            self.lat += step_km / 111.2 / math.sqrt(2)
            self.lon += step_km / (111.2 * math.cos(math.radians(self.lat))) / math.sqrt(2)
        return self

    def charge(
        self, minutes: float, kw: float = 7.0, every: float = 10.0, kind: str = "ac", **values: Any
    ) -> Series:
        """Charging at ``kw`` (battery side), the session counter starting from zero."""
        self.energy = 0.0
        for _ in range(int(minutes * 60 / every)):
            base = {
                "gear": "P",
                "charging_state": "charging",
                "charger_kind": kind,
                "speed_kmh": 0.0,
                "charging_power_kw": kw,
            }
            self._row(base, values)
            self.t += timedelta(seconds=every)
            added = kw * every / 3600
            self.energy += added
            self.soc += added / CAPACITY_KWH * 100
        self._put(
            gear="P",
            charging_state="complete",
            charger_kind=kind,
            speed_kmh=0.0,
            charging_power_kw=0.0,
        )
        self.t += timedelta(seconds=every)
        return self

    def silent(
        self, minutes: float, soc: float = 0.0, km: float = 0.0, energy: float | None = None
    ) -> Series:
        """No rows for ``minutes`` (asleep or offline); the SoC and odometer move by ``soc``
        points and ``km`` meanwhile (a charge or a drive nobody saw)."""
        self.t += timedelta(minutes=minutes)
        self.soc += soc
        self.odometer += km
        if energy is not None:
            self.energy = energy
        return self

    def frame(self) -> pl.DataFrame:
        columns = {name: [row.get(name) for row in self.rows] for name in CLEAN_SCHEMA}
        return pl.DataFrame(columns, schema=CLEAN_SCHEMA).sort("ts")

    def lazy(self) -> pl.LazyFrame:
        return self.frame().lazy()


def at(minutes: float, start: datetime = T0) -> datetime:
    return start + timedelta(minutes=minutes)
