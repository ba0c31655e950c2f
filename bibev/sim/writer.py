"""Writing what the simulator produced: raw message files in ``temp/`` and the ``truth/``.

File names follow the ingest layout, ``{HHMMSSffffff}-{uuid}.jsonl``, but both parts are
derived from the content (the arrival time of the first line, and a UUID 5 of the seed,
vehicle, day and chunk) so that the same seed writes the same files.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from bibev.sim.wire.render import piece_bytes
from bibev.storage import Storage

_NAMESPACE = uuid.UUID("3f0c9a52-7d4e-5b1a-9c3e-6a2b8d4f1e07")
_US = 1_000_000


@dataclass(frozen=True)
class WrittenFile:
    key: str
    vin: str
    day: date
    lines: int
    bytes: int


def file_name(
    seed: int, fmt: str, vin: str, day: date, step: date, chunk: int, first_us: int
) -> str:
    """``HHMMSSffffff-uuid.jsonl``: time of day of the first arrival, and a stable UUID."""
    first = datetime.fromtimestamp(first_us / _US, UTC)
    stamp = f"{first:%H%M%S}{first_us % _US:06d}"
    ident = uuid.uuid5(
        _NAMESPACE, f"{seed}/{fmt}/{vin}/{day.isoformat()}/{step.isoformat()}/{chunk}"
    )
    return f"{stamp}-{ident.hex}.jsonl"


def file_groups(messages: pl.DataFrame) -> Iterator[tuple[int, int]]:
    """(first, end) message rows of each file: messages sharing vehicle, day and chunk."""
    pos, day, chunk = (messages[c].to_numpy() for c in ("pos", "day", "chunk"))
    n = pos.size
    if n == 0:
        return
    change = (pos[1:] != pos[:-1]) | (day[1:] != day[:-1]) | (chunk[1:] != chunk[:-1])
    starts = np.concatenate([[0], np.flatnonzero(change) + 1, [n]])
    yield from zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True)


class TempWriter:
    """Writes files of one simulation through a small thread pool (the storage's atomic writes
    spend most of their time waiting on the disk or the network)."""

    def __init__(self, storage: Storage, *, seed: int, fmt: str, threads: int = 4) -> None:
        self.storage, self.seed, self.fmt = storage, seed, fmt
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bibev-sim-write")
        self.pending: list[Future[None]] = []
        self.files: list[WrittenFile] = []

    def write_batch(
        self,
        messages: pl.DataFrame,
        pieces: pa.Array,
        head_pos: np.ndarray,
        vins: list[str],
        step: date,
    ) -> list[tuple[str, int]]:
        """Queue the files of one batch; returns (key, first message row) of each file."""
        received = messages["received_us"].to_numpy()
        pos, day, chunk = (messages[c].to_numpy() for c in ("pos", "day", "chunk"))
        keys = []
        for first, end in file_groups(messages):
            vin = vins[int(pos[first])]
            folder = date.fromordinal(date(1970, 1, 1).toordinal() + int(day[first]))
            name = file_name(
                self.seed, self.fmt, vin, folder, step, int(chunk[first]), int(received[first])
            )
            key = self.storage.temp_key(vin, folder, name)
            data = piece_bytes(pieces, int(head_pos[first]), int(head_pos[end]))
            self.files.append(WrittenFile(key, vin, folder, end - first, len(data)))
            self.pending.append(self.pool.submit(self.storage.write_bytes, key, data))
            keys.append((key, first))
        self._drain(limit=64)
        return keys

    def _drain(self, limit: int = 0) -> None:
        while len(self.pending) > limit:
            self.pending.pop(0).result()

    def close(self) -> None:
        try:
            self._drain()
        finally:
            self.pool.shutdown(wait=True)


def write_truth(
    storage: Storage, frames: dict[str, pl.DataFrame], manifest: dict[str, Any]
) -> None:
    """``truth/{name}.parquet`` for each frame, and ``truth/manifest.json``."""
    for name, frame in frames.items():
        storage.write_parquet(storage.truth_key(f"{name}.parquet"), frame, statistics=False)
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    storage.write_text(storage.truth_key("manifest.json"), text)
