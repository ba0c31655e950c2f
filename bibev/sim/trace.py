"""The true state of a vehicle, second by second, while it is awake.

Physics appends chunks (one per session part) to a ``TraceBuilder``; ``build`` concatenates
them into one ``Trace`` of column arrays. Seconds when the car sleeps have no samples: it sends
nothing then. Codes are small ints; their names are in ``GEARS``, ``PHASES`` and ``PLUGS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

GEARS = ("P", "R", "N", "D")
# Detailed charge state, as Tesla names it; the other providers map from these.
PHASES = ("Disconnected", "NoPower", "Starting", "Charging", "Complete", "Stopped")
DISCONNECTED, NO_POWER, STARTING, CHARGING, COMPLETE, STOPPED = range(6)
PLUGS = ("none", "ac", "dc")
PARK, DRIVE = 0, 3

FLOAT_COLUMNS = (
    "soc",  # true state of charge, %
    "odometer_km",
    "speed_kmh",
    "battery_kw",  # positive into the battery
    "wall_kw",  # AC power at the wall, or DC power from the station
    "energy_ac_kwh",  # battery-side counters of the last AC / DC session
    "energy_dc_kwh",
    "pack_c",
    "outside_c",
    "latitude",
    "longitude",
    "charge_limit_pct",
)
INT_COLUMNS = ("gear", "phase", "plug")
COLUMNS = ("t", *FLOAT_COLUMNS, *INT_COLUMNS)


@dataclass
class Trace:
    """Column arrays of equal length, sorted by time; ``t`` is epoch seconds (int64)."""

    columns: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __len__(self) -> int:
        return int(self.columns["t"].size)

    def take(self, index: np.ndarray) -> Trace:
        return Trace({k: v[index] for k, v in self.columns.items()})

    @staticmethod
    def concat(traces: list[Trace]) -> Trace:
        if not traces:
            return empty_trace()
        return Trace(
            {k: np.concatenate([tr.columns[k] for tr in traces]) for k in traces[0].columns}
        )


def empty_trace() -> Trace:
    cols: dict[str, np.ndarray] = {"t": np.zeros(0, np.int64)}
    cols.update({c: np.zeros(0) for c in FLOAT_COLUMNS})
    cols.update({c: np.zeros(0, np.int8) for c in INT_COLUMNS})
    return Trace(cols)


@dataclass
class TraceBuilder:
    parts: dict[str, list[np.ndarray]] = field(default_factory=lambda: {c: [] for c in COLUMNS})

    def add(self, t0: int, n: int, **values: Any) -> None:
        """Samples at ``t0 … t0+n-1``; each column is an array of length ``n`` or a scalar."""
        if n <= 0:
            return
        self.parts["t"].append(np.arange(t0, t0 + n, dtype=np.int64))
        for name in COLUMNS[1:]:
            value = values[name]
            if np.ndim(value) == 0:
                dtype = np.int8 if name in INT_COLUMNS else np.float64
                value = np.full(n, value, dtype=dtype)
            elif value.size != n:
                raise ValueError(f"{name}: {value.size} values for {n} seconds")
            self.parts[name].append(value)

    def build(self) -> Trace:
        if not self.parts["t"]:
            return empty_trace()
        cols = {name: np.concatenate(arrays) for name, arrays in self.parts.items()}
        cols = {k: (v.astype(np.int8) if k in INT_COLUMNS else v) for k, v in cols.items()}
        order = np.argsort(cols["t"], kind="stable")
        if np.any(order != np.arange(order.size)):
            cols = {k: v[order] for k, v in cols.items()}
        return Trace(cols)
