"""How a compressed day is encoded, written and checked."""

from __future__ import annotations

import io

import polars as pl
import pyarrow.parquet as pq

from bibev.errors import StorageError
from bibev.storage import Storage

from .failpoints import crash_point

# A vehicle-day is ~100k-1M rows: a handful of row groups, each a slice of the day (rows are
# ordered by time), so that time filters skip most of a file; the page index narrows further.
ROW_GROUP_ROWS = 65_536
# Time columns are (nearly) sorted: delta encoding stores them in a few bits per row. A message
# id is "{vin}:{time}", sharing a long prefix with its neighbours. Low-cardinality columns are
# dictionary encoded. Measured on simulated fleet days this is ~20 % smaller than the defaults.
ENCODINGS = {
    "ts": "DELTA_BINARY_PACKED",
    "received_at": "DELTA_BINARY_PACKED",
    "message_id": "DELTA_BYTE_ARRAY",
}
DICTIONARY = ["vin", "provider", "key", "unit", "value_str", "value_i64"]


def encode(frame: pl.DataFrame) -> bytes:
    """The Parquet bytes of a compressed day (deterministic for a given frame): zstd, min/max
    statistics and a page index on every column."""
    buffer = io.BytesIO()
    # The newest Arrow types (string views) are polars' own: no conversion, the same bytes out.
    table = frame.to_arrow(compat_level=pl.CompatLevel.newest())
    pq.write_table(
        table,
        buffer,
        compression="zstd",
        compression_level=3,
        row_group_size=ROW_GROUP_ROWS,
        use_dictionary=DICTIONARY,
        column_encoding=ENCODINGS,
        write_statistics=True,
        write_page_index=True,
        store_schema=False,
    )
    return buffer.getvalue()


def write_verified(storage: Storage, key: str, data: bytes, rows: int) -> None:
    """Write ``data`` to ``key`` atomically, then read it back and check that it is the same
    bytes and a Parquet file of ``rows`` rows; ``StorageError`` when it is not."""
    with storage.writer(key) as fh:
        fh.write(data)
        crash_point("mid-write")
    stored = storage.read_bytes(key)
    if stored != data:
        raise StorageError(f"{key} in {storage.url} does not hold what was written")
    try:
        found = pq.ParquetFile(io.BytesIO(stored)).metadata.num_rows
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise StorageError(f"{key} in {storage.url} is not readable Parquet: {exc}") from exc
    if found != rows:
        raise StorageError(f"{key} in {storage.url} has {found} rows, expected {rows}")
