"""What a compaction writes besides the compressed day, and how it removes its inputs.

Every name is derived from the input, so a re-run after a crash writes the same files again
instead of new ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from bibev.storage import Storage

from .envelope import rerouted_line
from .failpoints import crash_point
from .flatten import FlatBatch
from .locking import STAGE


@dataclass(frozen=True)
class SourceFile:
    """A temp file that went into a batch: its key and its folder's VIN and day."""

    key: str
    vin: str
    day: date

    @property
    def stem(self) -> str:
        return self.key.rsplit("/", 1)[-1].removesuffix(".jsonl")


def reroutes(
    sources: Sequence[SourceFile], batch: FlatBatch, plan: Mapping[date, Sequence[int]]
) -> dict[int, list[tuple[date, str, bytes]]]:
    """The files to write for ``plan`` (other day → line indices): per source file, a list of
    (day, file name, content), one file per source file and day."""
    by_file: dict[tuple[int, date], list[int]] = {}
    for target, lines in plan.items():
        for line in lines:
            by_file.setdefault((batch.file_of(line), target), []).append(line)
    files: dict[int, list[tuple[date, str, bytes]]] = {}
    for (file_index, target), lines in sorted(by_file.items()):
        source = sources[file_index]
        name = f"{source.stem}.from-{source.day:%Y%m%d}.jsonl"
        body = b"".join(
            rerouted_line(batch.lines[i], day=target, source=source.key) + b"\n"
            for i in sorted(lines)
        )
        files.setdefault(file_index, []).append((target, name, body))
    return files


def quarantine_records(sources: Sequence[SourceFile], batch: FlatBatch) -> dict[int, list[bytes]]:
    """The quarantine lines of each source file that had unreadable lines."""
    by_file: dict[int, list[bytes]] = {}
    for item in batch.quarantined:
        file_index = batch.file_of(item.line)
        source = sources[file_index]
        record = {
            "vin": source.vin,
            "day": source.day.isoformat(),
            "source": source.key,
            "line": batch.numbers[item.line],
            "reason": item.reason,
            "raw": batch.lines[item.line].decode("utf-8", "surrogateescape"),
        }
        by_file.setdefault(file_index, []).append(json.dumps(record).encode() + b"\n")
    return by_file


def write_quarantine(storage: Storage, source: SourceFile, records: Sequence[bytes]) -> None:
    name = f"{source.vin}/{source.stem}.jsonl"
    storage.write_bytes(storage.quarantine_key(STAGE, source.day, name), b"".join(records))


def delete_inputs(storage: Storage, keys: Sequence[str]) -> None:
    """Delete exactly the temp files that went into a compressed day."""
    if not keys:
        return
    storage.delete(keys[0])
    crash_point("mid-delete")
    if len(keys) > 1:
        storage.delete_many(keys[1:])
