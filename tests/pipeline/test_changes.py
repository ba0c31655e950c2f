"""The notes of changed (VIN, day)s that one stage leaves for the next (``changes/``)."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest

from bibev.pipeline.changes import around, clear, existing, note, pending, remind
from bibev.storage import Storage

VIN, VIN2 = "5YJ3E1EA7KF000001", "WBA21EF0XMR150626"
D1, D2, D3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(str(tmp_path / "root"))


def test_notes_are_read_back_together_and_cleared(storage: Storage) -> None:
    first = note(storage, "compressed", [(VIN, D2), (VIN, D1), (VIN, D2)], by="compact")
    second = note(storage, "compressed", [(VIN2, D3)], by="compact")
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

    notes = pending(storage, "compressed")
    assert notes.keys == tuple(sorted([first, second]))
    assert notes.partitions == {(VIN, D1), (VIN, D2), (VIN2, D3)}
    assert pending(storage, "clean").keys == ()

    later = note(storage, "compressed", [(VIN2, D1)], by="compact")  # written after the read
    clear(storage, notes)
    assert storage.list("changes/compressed") == [later]


def test_a_note_that_cannot_be_read_is_skipped_and_kept(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    good = note(storage, "clean", [(VIN, D1)], by="transform clean")
    storage.write_text("changes/clean/broken.json", "{not json")
    storage.write_text(
        "changes/clean/bad-vin.json", '{"partitions": [["../../etc", "2025-03-01"]]}'
    )
    with caplog.at_level(logging.WARNING):
        notes = pending(storage, "clean")
    assert notes.keys == (good,)
    assert notes.partitions == {(VIN, D1)}
    warned = sorted(r.getMessage().split(":")[0] for r in caplog.records)
    assert warned == ["skipping changes/clean/bad-vin.json", "skipping changes/clean/broken.json"]
    clear(storage, notes)
    assert storage.list("changes/clean") == [
        "changes/clean/bad-vin.json",
        "changes/clean/broken.json",
    ]


def test_around_adds_the_days_before_and_after_and_existing_keeps_the_files_there(
    storage: Storage,
) -> None:
    assert around([(VIN, D2)]) == {(VIN, D1), (VIN, D2), (VIN, D3)}
    for vin, day in [(VIN, D1), (VIN, D3), (VIN2, D2)]:
        storage.write_bytes(storage.day_key("clean", day, vin), b"x")
    assert existing(storage, "clean", around([(VIN, D2)])) == [(VIN, D1), (VIN, D3)]


def test_a_run_of_some_days_says_that_notes_wait(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    note(storage, "compressed", [(VIN, D1)], by="compact")
    note(storage, "compressed", [(VIN, D2)], by="compact")
    with caplog.at_level(logging.INFO):
        remind(storage, "compressed")
        remind(storage, "clean")
    assert [r.getMessage() for r in caplog.records] == [
        "2 note(s) of changed compressed days wait in changes/compressed/ for a --changed run"
    ]
