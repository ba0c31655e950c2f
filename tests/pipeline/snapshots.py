"""A storage root as tests compare it: every file's bytes, and of the notes of changed days
(``changes/``, whose names differ from run to run) the (VIN, day)s they name."""

from __future__ import annotations

from bibev.pipeline.changes import pending
from bibev.storage import Storage


def snapshot(storage: Storage) -> dict[str, object]:
    found: dict[str, object] = {
        key: storage.read_bytes(key) for key in storage.list("") if not key.startswith("changes/")
    }
    found["noted compressed"] = pending(storage, "compressed").partitions
    found["noted clean"] = pending(storage, "clean").partitions
    return found
