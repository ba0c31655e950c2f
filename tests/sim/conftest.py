"""Shared simulations for the simulator tests (small, and computed once per session)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from bibev.sim import SimConfig, SimSummary, simulate_fleet
from bibev.sim.fleet import Vehicle, make_fleet
from bibev.sim.physics import DayResult, VehicleSim
from bibev.sim.plan import day_start_utc
from bibev.storage import Storage

START = date(2025, 3, 1)


@dataclass
class PhysicsRun:
    start: int
    end: int
    vehicles: list[Vehicle]
    days: dict[str, list[DayResult]]  # vin → one result per day


@pytest.fixture(scope="session")
def physics() -> PhysicsRun:
    """16 vehicles of every make, 6 days of physics (no telemetry)."""
    n_days = 6
    end = day_start_utc(START + timedelta(days=n_days))
    fleet = make_fleet(7, 16, "sim", START)
    days: dict[str, list[DayResult]] = {}
    for vehicle in fleet:
        sim = VehicleSim(7, vehicle, START, end)
        days[vehicle.vin] = [sim.step(START + timedelta(days=k)) for k in range(n_days)]
    return PhysicsRun(day_start_utc(START), end, fleet, days)


@dataclass
class Written:
    root: Path
    summary: SimSummary

    def lines(self) -> list[tuple[str, int, str]]:
        """(key, line number from 1, text) of every temp line, files in sorted order."""
        found = []
        for path in sorted((self.root / "temp").rglob("*.jsonl")):
            key = path.relative_to(self.root).as_posix()
            for number, text in enumerate(path.read_text().splitlines(), start=1):
                found.append((key, number, text))
        return found

    def payloads(self) -> list[tuple[str, int, dict]]:
        """(key, line, envelope) of every line that is valid JSON."""
        out = []
        for key, number, text in self.lines():
            try:
                out.append((key, number, json.loads(text)))
            except ValueError:
                continue
        return out


def simulate(root: Path, **options) -> Written:
    config = SimConfig(**{"start": START, "vehicles": 4, "days": 1, "seed": 3, **options})
    return Written(root, simulate_fleet(config, Storage(str(root))))


@pytest.fixture(scope="session")
def messy(tmp_path_factory) -> Written:
    """Tesla Fleet Telemetry with every kind of mess: 12 vehicles × 2 days."""
    return simulate(tmp_path_factory.mktemp("messy"), vehicles=12, days=2, seed=11)
