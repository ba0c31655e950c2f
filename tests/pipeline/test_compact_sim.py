"""Compaction of a simulated fleet (messy Tesla Fleet Telemetry: repeats, re-sends, late and
skewed messages, string values, garbage), checked against an oracle built line by line with
the provider's own adapter."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from bibev.errors import StorageError
from bibev.pipeline.compact import (
    IDENTITY,
    Adapters,
    CompactSummary,
    compact_frames,
    finish,
    inputs,
    run_compact,
    threads,
)
from bibev.pipeline.compact import day as day_module
from bibev.pipeline.compact.flatten import split_lines
from bibev.pipeline.compact.generic import flatten_lines
from bibev.providers.registry import get_registry
from bibev.sim import run_sim
from bibev.storage import Storage
from tests.pipeline.snapshots import snapshot

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


NOW = datetime(2025, 3, 4, tzinfo=UTC)


def lock_files(root: Path) -> list[Path]:
    return sorted((root / "_locks").rglob("*.lock"))


def counts(summary: CompactSummary) -> dict[str, object]:
    return {name: value for name, value in summary.totals().items() if name != "seconds"}


@pytest.fixture(scope="module")
def whole(fleet: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """Every file and count of the fleet compacted by one run with the default chunks."""
    storage = copy_of(fleet, tmp_path_factory.mktemp("whole") / "root")
    summary = run_compact(storage, now=NOW, workers=1)
    assert summary.failures == []
    return snapshot(storage), counts(summary)


def test_many_small_chunks_write_the_same_files_as_one(
    fleet: Path, tmp_path: Path, whole: tuple[dict, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk is written while the next one is read and flattened: the files must not depend
    on how the partitions were grouped, and every lock must be released."""
    monkeypatch.setattr(inputs, "CHUNK_BYTES", 1)
    monkeypatch.setattr(threads, "LOCAL_THREADS", 2)
    chunks: list[int] = []
    real_flatten = day_module.flatten_files

    def flatten(files, vins, **kwargs):  # type: ignore[no-untyped-def]
        chunks.append(len(set(vins)))
        return real_flatten(files, vins, **kwargs)

    monkeypatch.setattr(day_module, "flatten_files", flatten)
    storage = copy_of(fleet, tmp_path / "root")
    progress: list[tuple[int, int]] = []
    summary = run_compact(storage, now=NOW, workers=1, on_progress=lambda *p: progress.append(p))
    assert summary.failures == []
    assert len(chunks) >= 8
    assert max(chunks) <= 2
    done = [d for d, _ in progress]
    assert done == sorted(done)
    assert len(set(done)) > len(chunks) // 2  # reported chunk by chunk, not only at the end
    assert progress[-1][0] == progress[-1][1] == summary.totals()["partitions"]
    assert snapshot(storage) == whole[0]
    assert counts(summary) == whole[1]
    assert lock_files(tmp_path / "root") == []


def test_a_day_that_cannot_be_written_fails_alone_and_keeps_its_files(
    fleet: Path, tmp_path: Path, whole: tuple[dict, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = copy_of(fleet, tmp_path / "root")
    before = storage.list("temp")
    victim = before[0].split("/")[1]
    real_write = finish.write_verified

    def write(target: Storage, key: str, data: bytes, rows: int) -> None:
        if key.endswith(f"/{victim}.parquet"):
            raise StorageError(f"cannot write {key}: disk full")
        real_write(target, key, data, rows)

    monkeypatch.setattr(finish, "write_verified", write)
    summary = run_compact(storage, now=NOW, workers=1)
    assert {partition.split()[0] for partition, _ in summary.failures} == {victim}
    assert all("disk full" in reason for _, reason in summary.failures)
    left = storage.list("temp")
    assert {key.split("/")[1] for key in left} == {victim}
    assert set(before) - set(left) == {key for key in before if f"/{victim}/" not in key}
    assert not any(f"/{victim}.parquet" in key for key in storage.list("compressed"))
    assert lock_files(tmp_path / "root") == []
    monkeypatch.setattr(finish, "write_verified", real_write)
    assert run_compact(storage, now=NOW, workers=1).failures == []
    assert snapshot(storage) == whole[0]
