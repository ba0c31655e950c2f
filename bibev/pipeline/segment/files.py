"""Reading the clean days a batch of vehicles needs, and writing their segments files.

A (VIN, day) is segmented from the clean files of its day and of the days around it. For a batch
(many VINs of one day) those files are read in one ``scan_parquet``: each read of a small file
has a fixed cost that dwarfs the file. Each file's rows are kept only for the VIN its name says,
as a read of that file alone would. Files that do not scan together (a column of another type)
and ``memory://`` roots are read one by one, which also names the file in a storage error.

A segments file is written only when its bytes change (``encode`` gives the same bytes for the
same frame), so a re-run rewrites nothing. A batch's files are encoded and written by a few
threads: a small file costs mostly fixed time (the writer's set-up, an fsync) that threads
overlap, as polars and the file system release the GIL.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import polars as pl

from bibev.errors import DataContractError
from bibev.pipeline.segment.rules import INPUT_COLUMNS
from bibev.schema import CLEAN_SCHEMA
from bibev.storage import Storage

logger = logging.getLogger(__name__)

WRITE_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3, "statistics": True}
#: Threads that encode and write the segments files of a batch.
WRITE_THREADS = 4
_PATH = "_file"
#: A key or path ends in ``{VIN}.parquet``: the VIN is the 17 characters before the suffix.
_VIN_AT = -len("XXXXXXXXXXXXXXXXX.parquet")


def encode(frame: pl.DataFrame) -> bytes:
    """The Parquet bytes of a segments day (the same frame always gives the same bytes)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, **WRITE_OPTIONS)
    return buffer.getvalue()


def window_days(day: date, around: int) -> list[date]:
    """``day`` first, then ``around`` days before it and after it."""
    return [
        day + timedelta(days=offset) for offset in [0, *range(-around, 0), *range(1, around + 1)]
    ]


def window_keys(storage: Storage, vins: Sequence[str], day: date, around: int) -> dict[str, str]:
    """Key → VIN of the clean files the batch reads: those of the VINs' own day and of the
    days around it that exist (one listing per day, not one request per file). A VIN may have
    none on its own day: a day without rows between two with rows."""
    keys: dict[str, str] = {}
    for other in window_days(day, around):
        present = storage.day_keys("clean", other)
        keys |= {present[vin]: vin for vin in vins if vin in present}
    return keys


def read_windows(
    storage: Storage, vins: Sequence[str], day: date, around: int = 1
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The clean rows (``INPUT_COLUMNS``) of ``vins`` on ``day`` and ``around`` days on each
    side; and the number of rows of each VIN's own day file. A file with rows of another VIN
    than its name's is refused (``DataContractError``)."""
    keys = window_keys(storage, vins, day, around)
    rows = None
    if storage.protocol in ("file", "s3") and len(keys) > 1:
        try:
            rows = _scan_together(storage, list(keys))
        except (pl.exceptions.PolarsError, OSError) as exc:
            logger.debug("the clean files do not scan together (%s): one by one", exc)
    if rows is None:
        rows = _read_one_by_one(storage, list(keys))
    counts = rows.group_by(_PATH).len()
    own_day = f"{day:%Y/%m/%d}/"
    rows_in = {
        path[_VIN_AT : _VIN_AT + 17]: n
        for path, n in counts.iter_rows()
        if path[_VIN_AT - len(own_day) : _VIN_AT] == own_day
    }
    return _own_rows(rows), {vin: rows_in.get(vin, 0) for vin in vins}


def read_day(storage: Storage, vins: Sequence[str], day: date) -> pl.DataFrame | None:
    """The clean rows (``INPUT_COLUMNS``) of those ``vins`` that have a file on ``day``, or
    ``None`` when none has."""
    present = storage.day_keys("clean", day)
    keys = [present[vin] for vin in vins if vin in present]
    if not keys:
        return None
    return _own_rows(_read_one_by_one(storage, keys))


def _own_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` without their file column, once each file is seen to hold only rows of the VIN
    of its name (bibev writes nothing else there: another VIN's rows are a foreign or damaged
    file, refused rather than left out)."""
    foreign = rows.filter(pl.col(_PATH).str.slice(_VIN_AT, 17).ne_missing(pl.col("vin")))
    if foreign.height:
        path = foreign[_PATH][0]
        total = rows.filter(pl.col(_PATH) == path).height
        others = foreign.filter(pl.col(_PATH) == path)
        raise DataContractError(
            f"{path!r} holds rows of another vehicle: {others.height} of its {total} rows are "
            f"not of {path[_VIN_AT : _VIN_AT + 17]}, the VIN of its name"
        )
    return rows.drop(_PATH)


def _scan_together(storage: Storage, keys: list[str]) -> pl.DataFrame:
    scan = pl.scan_parquet(
        [storage.uri(key) for key in keys],
        include_file_paths=_PATH,
        storage_options=storage.polars_storage_options(),
        glob=False,
    )
    return scan.select(*INPUT_COLUMNS, _PATH).collect()


def _read_one_by_one(storage: Storage, keys: list[str]) -> pl.DataFrame:
    if not keys:
        schema = {name: CLEAN_SCHEMA[name] for name in INPUT_COLUMNS}
        return pl.DataFrame(schema={**schema, _PATH: pl.String()})
    frames = [
        storage.read_parquet(key, columns=list(INPUT_COLUMNS)).with_columns(
            pl.lit(storage.uri(key)).alias(_PATH)
        )
        for key in keys
    ]
    return pl.concat(frames, how="vertical_relaxed")


def store(storage: Storage, key: str, data: bytes, existing: bool) -> bool:
    """Write ``data`` to ``key`` unless it already holds those bytes; whether it wrote."""
    if existing and storage.read_bytes(key) == data:
        return False
    storage.write_bytes(key, data)
    return True


def write_segments(
    storage: Storage, day: date, frames: Mapping[str, pl.DataFrame]
) -> dict[str, tuple[bool, int]]:
    """Each VIN's sessions of ``day`` → ``segments/YYYY/MM/DD/{VIN}.parquet``, unless the file
    already holds those bytes; VIN → (whether it was written, its size in bytes)."""
    existing = storage.day_keys("segments", day)

    def write(vin: str) -> tuple[bool, int]:
        data = encode(frames[vin])
        key = storage.day_key("segments", day, vin)
        return store(storage, key, data, vin in existing), len(data)

    if len(frames) <= 1:
        return {vin: write(vin) for vin in frames}
    with ThreadPoolExecutor(min(WRITE_THREADS, len(frames))) as pool:
        return dict(zip(frames, pool.map(write, frames), strict=True))
