"""The records of the physics: true sessions, the state a vehicle carries between them, and
what one simulated day returns."""

from __future__ import annotations

from dataclasses import dataclass

from bibev.sim.trace import DISCONNECTED, Trace


@dataclass
class Session:
    """One true session (a row of ``truth/sessions.parquet``)."""

    kind: str  # charging | driving | idle
    start: int
    end: int
    soc_start: float
    soc_end: float
    energy_kwh: float  # battery side, positive into the battery
    charger_kind: str = "none"
    wall_energy_kwh: float | None = None
    odometer_start_km: float = 0.0
    odometer_end_km: float = 0.0
    max_power_kw: float = 0.0
    end_reason: str = ""
    offline: bool = False


@dataclass
class State:
    t: int  # the open idle session started here
    soc: float
    odometer_km: float
    position: tuple[float, float]
    place: str
    pack_c: float
    plug: int = 0
    phase: int = DISCONNECTED
    energy_ac: float = 0.0
    energy_dc: float = 0.0
    tail_s: int = 0  # awake seconds at the start of the open idle
    tail_done: int = 0  # … of which already in a previous day's trace


@dataclass
class DayResult:
    sessions: list[Session]
    trace: Trace  # with an extra boolean column ``online``
    odometer_km: float
    capacity_kwh: float
    soh_pct: float


def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged
