"""The simulator's truth: what really happened, for later stages to be measured against.

- ``sessions``: ``vin, kind (charging|driving|idle), start, end`` (UTC), ``soc_start, soc_end``
  (true SoC, %), ``energy_kwh`` (battery side, positive into the battery), ``charger_kind``
  (ac|dc|none), ``offline`` (hidden in a connectivity gap), and ``wall_energy_kwh,
  odometer_start_km, odometer_end_km, distance_km, max_power_kw, end_reason``. Sessions tile
  each vehicle's timeline from the first to the end of the last simulated day.
- ``capacity``: ``vin, ts`` (00:00 UTC of each day), ``odometer_km, capacity_kwh, soh_pct``.
- ``vehicles``: one row per vehicle (model, nominal capacity, home, habits, sensor settings).
- ``garbage``: every garbage line written to ``temp/``: ``vin, key, line, kind, ts``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from bibev.sim.delivery import GARBAGE_KINDS
from bibev.sim.fleet import Vehicle
from bibev.sim.physics import DayResult, VehicleSim
from bibev.sim.plan import day_start_utc

UTC_US = pl.Datetime("us", "UTC")
_US = 1_000_000

SESSION_SCHEMA: dict[str, pl.DataType] = {
    "vin": pl.String(),
    "kind": pl.String(),
    "start": UTC_US,
    "end": UTC_US,
    "soc_start": pl.Float64(),
    "soc_end": pl.Float64(),
    "energy_kwh": pl.Float64(),
    "charger_kind": pl.String(),
    "offline": pl.Boolean(),
    "wall_energy_kwh": pl.Float64(),
    "odometer_start_km": pl.Float64(),
    "odometer_end_km": pl.Float64(),
    "distance_km": pl.Float64(),
    "max_power_kw": pl.Float64(),
    "end_reason": pl.String(),
}
CAPACITY_SCHEMA: dict[str, pl.DataType] = {
    "vin": pl.String(),
    "ts": UTC_US,
    "odometer_km": pl.Float64(),
    "capacity_kwh": pl.Float64(),
    "soh_pct": pl.Float64(),
}
GARBAGE_SCHEMA: dict[str, pl.DataType] = {
    "vin": pl.String(),
    "key": pl.String(),
    "line": pl.Int64(),
    "kind": pl.String(),
    "ts": UTC_US,
}


class TruthCollector:
    """Gathers truth rows batch by batch."""

    def __init__(self, fleet: list[Vehicle], fmt: str) -> None:
        self.fleet, self.fmt = fleet, fmt
        self.sessions: dict[str, list[Any]] = {name: [] for name in SESSION_SCHEMA}
        self.capacity: dict[str, list[Any]] = {name: [] for name in CAPACITY_SCHEMA}
        self.garbage: list[pl.DataFrame] = []

    def add(
        self,
        day: date,
        sims: list[VehicleSim],
        results: list[DayResult],
        garbage: pl.DataFrame | None,
    ) -> None:
        midnight = day_start_utc(day) * _US
        for sim, result in zip(sims, results, strict=True):
            vin = sim.v.vin
            for name, value in zip(
                CAPACITY_SCHEMA,
                (vin, midnight, result.odometer_km, result.capacity_kwh, result.soh_pct),
                strict=True,
            ):
                self.capacity[name].append(value)
            for s in result.sessions:
                row = asdict(s)
                row.update(vin=vin, start=s.start * _US, end=s.end * _US)
                row["distance_km"] = s.odometer_end_km - s.odometer_start_km
                for name in SESSION_SCHEMA:
                    self.sessions[name].append(row[name])
        if garbage is not None and garbage.height:
            self.garbage.append(garbage)

    def frames(self, *, mess: bool) -> dict[str, pl.DataFrame]:
        sessions = pl.DataFrame(self.sessions, schema=SESSION_SCHEMA)
        sessions = sessions.with_columns(offline=pl.col("offline") & pl.lit(mess)).sort(
            ["vin", "start"]
        )
        capacity = pl.DataFrame(self.capacity, schema=CAPACITY_SCHEMA).sort(["vin", "ts"])
        garbage = (
            pl.concat(self.garbage).sort(["vin", "key", "line"])
            if self.garbage
            else pl.DataFrame(schema=GARBAGE_SCHEMA)
        )
        return {
            "sessions": sessions,
            "capacity": capacity,
            "vehicles": vehicles_frame(self.fleet, self.fmt),
            "garbage": garbage.select(list(GARBAGE_SCHEMA)).cast(pl.Schema(GARBAGE_SCHEMA)),
        }


def garbage_rows(messages: pl.DataFrame, keys: list[tuple[str, int]]) -> pl.DataFrame | None:
    """The garbage lines among ``messages`` (file order), with the file each one is in
    (``keys``: the key and first message row of each file)."""
    bad = messages.with_row_index("row").filter(pl.col("copy") >= min(GARBAGE_KINDS))
    if bad.height == 0:
        return None
    firsts = np.array([first for _, first in keys], dtype=np.int64)
    which = np.searchsorted(firsts, bad["row"].to_numpy(), side="right") - 1
    kind_names = pl.Series([GARBAGE_KINDS.get(k, "") for k in range(max(GARBAGE_KINDS) + 1)])
    return bad.select(
        pl.col("vin"),
        key=pl.Series([keys[i][0] for i in which], dtype=pl.String),
        line=pl.col("line"),
        kind=pl.lit(kind_names).gather(pl.col("copy").cast(pl.Int64)),
        ts=pl.col("payload_us").cast(UTC_US),
    )


def vehicles_frame(fleet: list[Vehicle], fmt: str) -> pl.DataFrame:
    """One row per vehicle: what it is and how it behaves."""
    rows = [
        {
            "vin": v.vin,
            "provider": v.provider,
            "format": fmt,
            "make": v.model.make,
            "model": v.model.name,
            "nominal_capacity_kwh": v.model.nominal_kwh,
            "built": v.built,
            "odometer_start_km": v.odometer_km,
            "city": v.city.name,
            "home_latitude": v.home[0],
            "home_longitude": v.home[1],
            "home_charger_kw": v.home_charger_kw,
            "charge_limit_pct": v.charge_limit_pct,
            "ac_efficiency": v.ac_efficiency,
            "dc_efficiency": v.dc_efficiency,
            "bms_bias_pct": v.bms_bias[0],
            "string_values": v.string_values,
            "speed_interval_s": v.speed_interval_s,
            "odometer_interval_s": v.odometer_interval_s,
            "poll_interval_s": v.poll_interval_s,
        }
        for v in fleet
    ]
    return pl.DataFrame(rows)
