"""Compaction of a simulated fleet (messy Tesla Fleet Telemetry: repeats, re-sends, late and
skewed messages, string values, garbage), checked against an oracle built line by line with
the provider's own adapter."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from bibev.pipeline.compact import IDENTITY, Adapters, compact_frames, run_compact
from bibev.pipeline.compact.flatten import split_lines
from bibev.pipeline.compact.generic import flatten_lines
from bibev.providers.registry import get_registry
from bibev.sim import run_sim
from bibev.storage import Storage

START = date(2025, 3, 1)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight vehicles over two days, simulated once; tests work on copies of ``temp/``."""
    root = tmp_path_factory.mktemp("fleet") / "root"
    run_sim(Storage(str(root)), start=START, vehicles=8, days=2, seed=11)
    return root


def copy_of(fleet: Path, target: Path) -> Storage:
    storage = Storage(str(target))
    source = Storage(str(fleet))
    for key in source.list("temp"):
        storage.write_bytes(key, source.read_bytes(key))
    return storage


def oracle(storage: Storage) -> tuple[dict[tuple[str, date], pl.DataFrame], set[tuple[str, int]]]:
    """Every temp line through the adapter, one at a time; rows grouped by their own day and
    deduplicated; and the (file, line) of every line the adapter refuses."""
    adapters = Adapters(get_registry())
    frames, refused = [], set()
    for key in storage.list("temp"):
        vin = key.split("/")[1]
        _, lines, numbers = split_lines(storage.read_bytes(key))
        rows, quarantined = flatten_lines(
            lines, [vin] * len(lines), range(len(lines)), adapters=adapters
        )
        frames.append(rows)
        refused |= {(key, numbers[q.line]) for q in quarantined}
    rows = pl.concat(frames).with_columns(pl.col("ts").dt.date().alias("day"))
    expected = {
        (vin, day): compact_frames(None, group.drop("day"))
        for (vin, day), group in rows.partition_by("vin", "day", as_dict=True).items()
    }
    return expected, refused


def test_a_simulated_fleet_compacts_to_exactly_what_the_adapter_reads(
    fleet: Path, tmp_path: Path
) -> None:
    storage = copy_of(fleet, tmp_path / "root")
    expected, refused = oracle(storage)
    summary = run_compact(storage, now=datetime(2025, 3, 4, tzinfo=UTC), workers=1)
    assert summary.failures == []
    assert storage.list("temp") == []
    for (vin, day), frame in expected.items():
        found = storage.read_parquet(storage.day_key("compressed", day, vin))
        assert found.equals(frame), (vin, day)
    assert sorted(storage.list("compressed")) == sorted(
        storage.day_key("compressed", day, vin) for vin, day in expected
    )
    quarantined = {
        (record["source"], record["line"])
        for key in storage.list("quarantine")
        for record in pl.read_ndjson(storage.read_bytes(key)).iter_rows(named=True)
    }
    assert quarantined == refused
    assert summary.totals()["rows_out"] == sum(frame.height for frame in expected.values())


def test_the_simulators_garbage_is_what_gets_quarantined(fleet: Path, tmp_path: Path) -> None:
    storage = copy_of(fleet, tmp_path / "root")
    garbage = pl.read_parquet(fleet / "truth" / "garbage.parquet")
    run_compact(storage, now=datetime(2025, 3, 4, tzinfo=UTC), workers=1)
    records = [
        record
        for key in storage.list("quarantine")
        for record in pl.read_ndjson(storage.read_bytes(key)).iter_rows(named=True)
    ]
    assert garbage.height > 0
    assert sorted((r["source"], r["line"]) for r in records) == sorted(
        garbage.select("key", "line").iter_rows()
    )


def test_no_duplicate_observation_survives(fleet: Path, tmp_path: Path) -> None:
    storage = copy_of(fleet, tmp_path / "root")
    run_compact(storage, now=datetime(2025, 3, 4, tzinfo=UTC), workers=1)
    for key in storage.list("compressed"):
        frame = storage.read_parquet(key)
        assert frame.height == frame.unique(list(IDENTITY)).height
        assert frame.get_column("ts").is_sorted()
        assert frame.get_column("ts").dt.date().unique().to_list() == [
            date.fromisoformat(key.split("/", 1)[1].rsplit("/", 1)[0].replace("/", "-"))
        ]
