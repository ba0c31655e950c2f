"""The simulator's output does not depend on how the fleet is cut into batches."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from bibev.sim import SimConfig, simulate_fleet
from bibev.sim.feed import tesla_payloads
from bibev.sim.wire import FORMATS
from bibev.storage import Storage

from .conftest import START

DEFAULT_BATCH = next(f.default for f in fields(SimConfig) if f.name == "batch_size")
#: Batch sizes compared: one vehicle per batch (each vehicle alone), two, and the default.
BATCH_SIZES = (1, 2, DEFAULT_BATCH)
#: Seed 5 with 6 vehicles × 4 days has a trace that runs past midnight next to vehicles whose
#: traces do not (the poll formats answered their polls after midnight too), and a High
#: Mobility car whose first ``current_type`` of a day was compared with its neighbour's.
OPTIONS = {"start": START, "vehicles": 6, "days": 4, "seed": 5}


def _written(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, the manifest without the batch size."""
    out = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        key = path.relative_to(root).as_posix()
        data = path.read_bytes()
        if key == "truth/manifest.json":
            manifest = json.loads(data)
            del manifest["config"]["batch_size"]
            data = json.dumps(manifest, sort_keys=True).encode()
        out[key] = data
    return out


@pytest.mark.parametrize(
    ("provider", "fmt"), sorted(FORMATS), ids=[f"{p}/{f}" for p, f in sorted(FORMATS)]
)
def test_files_do_not_depend_on_the_batch_size(tmp_path: Path, provider: str, fmt: str) -> None:
    written = {}
    for size in BATCH_SIZES:
        config = SimConfig(**OPTIONS, provider=provider, format=fmt, batch_size=size)
        simulate_fleet(config, Storage(str(tmp_path / str(size))))
        written[size] = _written(tmp_path / str(size))
    alone = written[1]
    assert any(key.startswith("temp/") for key in alone)
    for size in BATCH_SIZES[1:]:
        temp = {k for k in set(alone) | set(written[size]) if k.startswith("temp/")}
        differ = sorted(k for k in temp if alone.get(k) != written[size].get(k))
        assert differ == [], f"batch size {size}: {len(differ)} temp files differ"
        assert written[size] == alone


def test_kafka_feed_does_not_depend_on_the_batch_size() -> None:
    feeds = [
        list(tesla_payloads(SimConfig(**{**OPTIONS, "days": 2}, batch_size=size)))
        for size in BATCH_SIZES
    ]
    assert feeds[0]
    assert all(feed == feeds[0] for feed in feeds[1:])
