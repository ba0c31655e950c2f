"""Whatever order a fleet's files arrive in, the nightly runs end where one run over every file
ends. Each case draws a fleet and a delivery schedule from its seed: most files arrive the night
after their day, some one to three nights late, a few never. Every night runs `compact`, then
`transform all --changed` (what `examples/cron/nightly.sh` runs); once everything has arrived,
the compressed, clean and segments files are byte for byte those of a single run over the same
files, the database holds the same quality records and sessions, and no note of work to do is
left.

``BIBEV_NIGHTLY_CASES=N`` runs N cases instead of the default few (a deeper search)."""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from bibev.cli.app import run
from bibev.sim.run import SimConfig, simulate_fleet
from bibev.storage import Storage
from tests.cli.test_nightly import layers, stored

pytestmark = pytest.mark.timeout(600)

FIRST = date(2025, 3, 1)
DAYS = 5
CASES = int(os.environ.get("BIBEV_NIGHTLY_CASES", "3"))
STREAMED = ("tesla", "sim", "bmw", "high-mobility")


@dataclass(frozen=True)
class Schedule:
    """Which night each file under ``temp/`` arrives (0 = the night after the fleet's first
    day), and the files that never do."""

    nights: dict[str, int]
    never: list[str]

    @property
    def last_night(self) -> int:
        return max(self.nights.values())


def draw_schedule(files: list[str], rng: random.Random) -> Schedule:
    nights, never = {}, []
    for name in files:
        day = (date.fromisoformat(name.split("/")[1]) - FIRST).days
        luck = rng.random()
        if luck < 0.05:
            never.append(name)
        elif luck < 0.25:
            nights[name] = day + rng.randint(1, 3)
        else:
            nights[name] = day
    return Schedule(nights, never)


def temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root / "temp")) for p in (root / "temp").rglob("*.jsonl"))


def bibev(root: Path, *args: str) -> None:
    options = ["--no-progress", "-q", "--root", str(root)]
    database = ["--database-url", f"sqlite:///{root}.db"]
    assert run([*options, *database, *args, "--workers", "1"]) == 0


def night(root: Path) -> None:
    bibev(root, "compact")
    bibev(root, "transform", "all", "--changed")


@pytest.mark.parametrize("case", range(CASES))
def test_nightly_runs_end_as_one_run_over_every_file(isolated: Path, case: int) -> None:
    rng = random.Random(case)
    config = SimConfig(
        start=FIRST,
        vehicles=rng.randint(2, 5),
        days=DAYS,
        seed=1000 + case,
        provider=rng.choice(STREAMED),
    )
    held, nightly, reference = isolated / "held", isolated / "nightly", isolated / "reference"
    simulate_fleet(config, Storage(str(held)))
    schedule = draw_schedule(temp_files(held), rng)
    for name in schedule.never:
        (held / "temp" / name).unlink()
    shutil.copytree(held / "temp", reference / "temp")

    (nightly / "temp").mkdir(parents=True)  # the stream writes here; nothing may have come
    for tonight in range(schedule.last_night + 1):
        for name, arrives in schedule.nights.items():
            if arrives == tonight:
                target = nightly / "temp" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(held / "temp" / name, target)
        night(nightly)
    bibev(reference, "compact")
    bibev(reference, "transform", "all")

    expected = layers(reference)
    assert any(key.startswith("segments/") for key in expected)
    found = layers(nightly)
    assert sorted(found) == sorted(expected), f"case {case}: {config}, {schedule.never}"
    differ = [key for key in expected if found[key] != expected[key]]
    assert differ == [], f"case {case}: {config}; late: {_late(schedule)}"
    assert stored(f"sqlite:///{nightly}.db") == stored(f"sqlite:///{reference}.db")
    assert not (nightly / "changes").exists()


def _late(schedule: Schedule) -> list[str]:
    return [
        f"{name} +{arrives - (date.fromisoformat(name.split('/')[1]) - FIRST).days}"
        for name, arrives in schedule.nights.items()
        if arrives > (date.fromisoformat(name.split("/")[1]) - FIRST).days
    ]


def fleet_with_missing_days(
    root: Path, reference: Path, rng: random.Random, seed: int
) -> list[str]:
    """A simulated fleet under ``root/temp`` (copied to ``reference``) with a random 15 % of
    its vehicle-days never sent; its days."""
    config = SimConfig(
        start=FIRST,
        vehicles=rng.randint(2, 5),
        days=DAYS,
        seed=seed,
        provider=rng.choice(STREAMED),
    )
    simulate_fleet(config, Storage(str(root)))
    days = sorted({name.split("/")[1] for name in temp_files(root)})
    for folder in sorted((root / "temp").glob("*/*")):
        if rng.random() < 0.15:
            shutil.rmtree(folder)
    shutil.copytree(root / "temp", reference / "temp")
    bibev(reference, "compact")
    bibev(reference, "transform", "all")
    return days


def assert_same(found: Path, reference: Path, where: str) -> None:
    expected = layers(reference)
    assert sorted(layers(found)) == sorted(expected), where
    differ = [key for key, data in layers(found).items() if data != expected[key]]
    assert differ == [], where
    assert stored(f"sqlite:///{found}.db") == stored(f"sqlite:///{reference}.db"), where


@pytest.mark.parametrize("case", range(CASES))
def test_days_segmented_in_any_order_end_as_one_run(isolated: Path, case: int) -> None:
    """Every day compacted and cleaned, some days missing for some vehicles, then segmented one
    `--date` at a time, newest first or shuffled: the same files and rows as one run."""
    rng = random.Random(10_000 + case)
    shuffled, reference = isolated / "shuffled", isolated / "reference"
    days = fleet_with_missing_days(shuffled, reference, rng, seed=2000 + case)
    bibev(shuffled, "compact")
    bibev(shuffled, "transform", "clean")
    order = days[::-1] if case % 2 == 0 else rng.sample(days, len(days))
    for day in order:
        bibev(shuffled, "transform", "segment", "--date", day)
    assert_same(shuffled, reference, f"case {case}, order {order}")


@pytest.mark.parametrize("case", range(CASES))
def test_a_backfill_in_any_order_then_changed_ends_as_one_run(isolated: Path, case: int) -> None:
    """`transform all --date D` over the days in any order (each day cleaned when its turn
    comes, so a day's neighbours may be cleaned after it was segmented), then one
    `transform all --changed`: the same files and rows as one run."""
    rng = random.Random(20_000 + case)
    shuffled, reference = isolated / "shuffled", isolated / "reference"
    days = fleet_with_missing_days(shuffled, reference, rng, seed=4000 + case)
    bibev(shuffled, "compact")
    order = days[::-1] if case % 2 == 0 else rng.sample(days, len(days))
    for day in order:
        bibev(shuffled, "transform", "all", "--date", day)
    bibev(shuffled, "transform", "all", "--changed")
    assert_same(shuffled, reference, f"case {case}, order {order}")
    assert not (shuffled / "changes").exists()
