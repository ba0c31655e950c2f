"""Clean one (VIN, day): read the compressed days around it, clean, write if changed.

Runs in worker processes (``CleanJob`` and ``clean_partition`` pickle). The output bytes depend
only on the compressed files of the day and its two neighbours, so cleaning a day again, in
any order with its neighbours, gives the same file; an unchanged file is not rewritten.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl

from bibev.errors import ConfigError
from bibev.providers.base import SignalMap
from bibev.providers.registry import get_registry
from bibev.storage import Storage

from .frame import clean_frame
from .params import CleanParams
from .quality import QualityRecord

logger = logging.getLogger(__name__)

# A clean vehicle-day is small (one row per instant): one row group unless it is huge.
WRITE_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "compression_level": 3,
    "statistics": True,
    "row_group_size": 131_072,
}


@dataclass(frozen=True)
class CleanJob:
    """Everything a worker needs to clean a partition (picklable)."""

    storage: Storage
    plugins: tuple[str, ...] | None = None
    params: CleanParams = field(default_factory=CleanParams)
    now: datetime | None = None


@dataclass(frozen=True)
class CleanResult:
    """What cleaning one (VIN, day) did."""

    vin: str
    day: date
    quality: QualityRecord
    written: bool = False
    bytes_out: int = 0


def encode(frame: pl.DataFrame) -> bytes:
    """The Parquet bytes of a clean day (the same frame always gives the same bytes)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, **WRITE_OPTIONS)  # type: ignore[arg-type]
    return buffer.getvalue()


def _read(storage: Storage, day: date, vin: str) -> pl.DataFrame | None:
    key = storage.day_key("compressed", day, vin)
    return storage.read_parquet(key) if storage.exists(key) else None


def _mappings(
    plugins: tuple[str, ...] | None, day: pl.DataFrame, neighbours: list[pl.DataFrame]
) -> dict[str, list[SignalMap]]:
    """The mapping of every provider of the day (``ConfigError`` for an unknown one) and of
    the neighbouring days where it is known (their rows only give context)."""
    registry = get_registry(plugins)
    mappings = {name: list(registry.get(name).mapping) for name in _providers(day)}
    for frame in neighbours:
        for name in _providers(frame) - mappings.keys():
            try:
                mappings[name] = list(registry.get(name).mapping)
            except ConfigError as exc:
                logger.warning("ignoring the %s rows next to this day: %s", name, exc)
    return dict(sorted(mappings.items()))


def _providers(frame: pl.DataFrame) -> set[str]:
    return {name for name in frame["provider"].unique().to_list() if name}


def write_if_changed(storage: Storage, key: str, data: bytes) -> bool:
    """Write ``data`` to ``key`` atomically unless it already holds exactly that."""
    if storage.exists(key) and storage.read_bytes(key) == data:
        return False
    storage.write_bytes(key, data)
    return True


def clean_partition(job: CleanJob, partition: tuple[str, date]) -> CleanResult:
    """Clean ``compressed/{day}/{vin}.parquet`` into ``clean/{day}/{vin}.parquet``."""
    vin, day = partition
    storage = job.storage
    compressed = _read(storage, day, vin)
    if compressed is None:
        return CleanResult(vin, day, QualityRecord(vin, day))
    previous = _read(storage, day - timedelta(days=1), vin)
    following = _read(storage, day + timedelta(days=1), vin)
    neighbours = [f for f in (previous, following) if f is not None]
    cleaned = clean_frame(
        compressed.filter(pl.col("vin") == vin),
        _mappings(job.plugins, compressed, neighbours),
        day=day,
        previous=previous,
        following=following,
        params=job.params,
        now=job.now,
    )
    frame = cleaned.frame.collect()
    quality = next((q for q in cleaned.quality if q.vin == vin), QualityRecord(vin, day))
    data = encode(frame)
    written = write_if_changed(storage, storage.day_key("clean", day, vin), data)
    logger.info(
        "cleaned %s %s: %d rows in, %d observations, %d dropped, %d rows out%s",
        vin,
        day,
        quality.rows_in,
        quality.observations,
        quality.dropped_total,
        quality.rows_out,
        "" if written else " (unchanged)",
    )
    return CleanResult(vin, day, quality, written, len(data) if written else 0)
