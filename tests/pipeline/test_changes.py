"""The notes of changed (VIN, day)s that one stage leaves for the next (``changes/``)."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bibev.pipeline.changes import RUNNING_STALE, around, existing, note, pending, settle
from bibev.storage import Storage

VIN, VIN2 = "5YJ3E1EA7KF000001", "WBA21EF0XMR150626"
D1, D2, D3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(str(tmp_path / "root"))


@pytest.fixture
def logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """The records of ``bibev.pipeline.changes``, whatever a command run before set up."""
    monkeypatch.setattr(logging.getLogger("bibev"), "propagate", True)
    caplog.set_level(logging.INFO, logger="bibev.pipeline.changes")
    return caplog


def test_notes_are_read_back_together(storage: Storage) -> None:
    first = note(storage, "compressed", [(VIN, D2), (VIN, D1), (VIN, D2)], by="compact")
    second = note(storage, "compressed", [(VIN2, D3)], by="compact", running=True)
    assert note(storage, "compressed", [], by="compact") is None  # nothing to say: no file
    assert first is not None
    assert first.startswith("changes/compressed/")
    assert first.endswith(".json")
    assert storage.read_bytes(first).decode().splitlines() == [
        '{"layer": "compressed", "by": "compact", "partitions": [',
        f'["{VIN}", "2025-03-01"],',
        f'["{VIN}", "2025-03-02"]',
        "]}",
    ]
    assert second is not None
    assert second.endswith("-running.json")

    notes = pending(storage, "compressed")
    assert [n.key for n in notes.notes] == sorted([first, second])
    assert [n.running for n in notes.notes] == [False, True]
    assert notes.partitions == {(VIN, D1), (VIN, D2), (VIN2, D3)}
    assert pending(storage, "clean").notes == ()


def test_settling_removes_what_was_done_and_keeps_the_rest(
    storage: Storage, logs: pytest.LogCaptureFixture
) -> None:
    whole = note(storage, "clean", [(VIN, D1), (VIN, D2)], by="transform clean")
    part = note(storage, "clean", [(VIN2, D1), (VIN2, D2)], by="transform clean")
    notes = pending(storage, "clean")
    later = note(storage, "clean", [(VIN, D3)], by="transform clean")  # written after the read

    assert settle(storage, notes, {(VIN, D1), (VIN, D2), (VIN2, D1)}) == 1
    left = pending(storage, "clean")
    assert whole not in {n.key for n in left.notes}
    assert part not in {n.key for n in left.notes}
    assert later in {n.key for n in left.notes}
    assert left.partitions == {(VIN2, D2), (VIN, D3)}
    assert [r.getMessage() for r in logs.records] == [
        "1 changed (VIN, day)s of clean wait in changes/clean/ (for a --changed run)"
    ]


def test_a_running_note_is_left_to_its_writer_until_it_is_stale(storage: Storage) -> None:
    young = note(storage, "compressed", [(VIN, D1)], by="compact", running=True)
    assert settle(storage, pending(storage, "compressed"), {(VIN, D1)}) == 1
    assert [n.key for n in pending(storage, "compressed").notes] == [young]

    old = datetime.now(UTC) - RUNNING_STALE - timedelta(minutes=1)
    name = f"{old:%Y%m%dT%H%M%S%fZ}-0123456789ab-running.json"
    storage.write_bytes(f"changes/compressed/{name}", storage.read_bytes(young or ""))
    storage.delete(young or "")
    assert settle(storage, pending(storage, "compressed"), {(VIN, D1)}) == 0
    assert pending(storage, "compressed").notes == ()


def test_a_note_that_cannot_be_read_goes_to_quarantine(
    storage: Storage, logs: pytest.LogCaptureFixture
) -> None:
    good = note(storage, "clean", [(VIN, D1)], by="transform clean")
    storage.write_text("changes/clean/20250301T000000000000Z-broken.json", "{not json")
    storage.write_text(
        "changes/clean/20250301T000000000000Z-vin.json",
        '{"partitions": [["../../etc", "2025-03-01"]]}',
    )
    storage.write_text("changes/clean/README.txt", "mine")  # not a note: left alone
    storage.write_text("changes/clean/sub/x.json", "{}")

    notes = pending(storage, "clean")
    assert [n.key for n in notes.notes] == [good]
    assert storage.list("changes/clean") == sorted(
        ["changes/clean/README.txt", good, "changes/clean/sub/x.json"]
    )
    kept = [json.loads(storage.read_bytes(k)) for k in storage.list("quarantine/changes")]
    assert sorted(k["note"] for k in kept) == [
        "changes/clean/20250301T000000000000Z-broken.json",
        "changes/clean/20250301T000000000000Z-vin.json",
    ]
    broken = next(k for k in kept if k["note"].endswith("broken.json"))
    assert base64.b64decode(broken["content_base64"]) == b"{not json"
    assert broken["reason"].startswith("not a note of changed (VIN, day)s: ")
    warned = [r.getMessage() for r in logs.records if r.levelno == logging.WARNING]
    assert len(warned) == 2
    assert "invalid VIN" in next(m for m in warned if "vin.json" in m)


def test_around_adds_the_days_before_and_after_and_existing_keeps_the_files_there(
    storage: Storage,
) -> None:
    assert around([(VIN, D2)]) == {(VIN, D1), (VIN, D2), (VIN, D3)}
    for vin, day in [(VIN, D1), (VIN, D3), (VIN2, D2)]:
        storage.write_bytes(storage.day_key("clean", day, vin), b"x")
    assert existing(storage, "clean", around([(VIN, D2)])) == [(VIN, D1), (VIN, D3)]


def test_a_clean_run_in_the_middle_of_a_compaction_misses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`transform clean --changed` runs after compact noted what it is about to write and
    before it wrote it (a cron overlap): the next `--changed` run still cleans all of it."""
    from bibev.pipeline.clean import run_clean
    from bibev.pipeline.compact import run as compact_run
    from bibev.pipeline.compact import run_compact
    from bibev.pipeline.segment import run_segment
    from bibev.sim.run import SimConfig, simulate_fleet

    now = datetime(2025, 6, 1, tzinfo=UTC)
    config = SimConfig(start=D1, vehicles=3, days=2, seed=5)
    overlapped, reference = Storage(str(tmp_path / "a")), Storage(str(tmp_path / "b"))
    for storage in (overlapped, reference):
        simulate_fleet(config, storage)
    real_run = compact_run._run
    during: list[int] = []

    def run_then_clean(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not during:  # compact's note is there, its files are not
            during.append(len(run_clean(overlapped, changed=True, workers=1).results))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(compact_run, "_run", run_then_clean)
    run_compact(overlapped, now=now, workers=1)
    monkeypatch.setattr(compact_run, "_run", real_run)
    assert during == [0]
    assert pending(overlapped, "compressed").partitions  # left for the next run
    run_clean(overlapped, changed=True, workers=1)
    run_segment(overlapped, changed=True, workers=1)

    run_compact(reference, now=now, workers=1)
    run_clean(reference, workers=1)
    run_segment(reference, workers=1)
    for layer in ("compressed", "clean", "segments"):
        keys = reference.list(layer)
        assert keys
        assert overlapped.list(layer) == keys
        assert all(overlapped.read_bytes(k) == reference.read_bytes(k) for k in keys)
    assert overlapped.list("changes") == reference.list("changes") == []


def test_a_deeply_nested_note_is_quarantined_and_an_empty_one_settled(storage: Storage) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    storage.write_text("changes/clean/20250301T000000000000Z-deep.json", deep)
    empty = "changes/clean/20250301T000000000000Z-empty.json"
    storage.write_text(empty, '{"layer": "clean", "by": "someone", "partitions": []}')
    notes = pending(storage, "clean")
    assert [n.key for n in notes.notes] == [empty]
    assert len(storage.list("quarantine/changes")) == 1
    assert settle(storage, notes, set()) == 0
    assert storage.list("changes/clean") == []


def test_a_note_settled_by_another_run_meanwhile_is_skipped(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = note(storage, "clean", [(VIN, D1)], by="transform clean")
    kept = note(storage, "clean", [(VIN, D2)], by="transform clean")
    listed = storage.list

    def list_then_settle(prefix: str) -> list[str]:
        found = listed(prefix)
        storage.delete(gone or "")  # another run removes it between listing and reading
        return found

    monkeypatch.setattr(storage, "list", list_then_settle)
    assert [n.key for n in pending(storage, "clean").notes] == [kept]
