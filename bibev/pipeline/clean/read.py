"""Reading the compressed files of many vehicles of one day at once.

One ``scan_parquet`` over a batch's files costs a fraction of one read per file (each read has
a fixed cost that dwarfs a small vehicle-day). Only the columns cleaning uses are read (the
``message_id`` strings are most of the bytes), and each file's rows are kept only for the VIN
its name says, as a read of that file alone would. Files written by another version of the
compressed layer may not scan together (a column of another type): then each file is read on
its own and conformed (``conform_rows``), which also names the file in a storage error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date

import polars as pl

from bibev.schema import COMPRESSED_SCHEMA
from bibev.storage import Storage

from .observe import conform_rows

logger = logging.getLogger(__name__)

#: What cleaning reads of a compressed file.
COLUMNS: tuple[str, ...] = tuple(name for name in COMPRESSED_SCHEMA if name != "message_id")
_PATH = "_file"
_VIN_LENGTH = 17


def day_files(storage: Storage, day: date, vins: Sequence[str]) -> dict[str, str]:
    """VIN → key of ``compressed/{day}/{VIN}.parquet`` for those of ``vins`` that exist (one
    listing, not one request per file)."""
    keys = {vin: storage.day_key("compressed", day, vin) for vin in vins}
    if not keys:
        return {}
    present = set(storage.list(next(iter(keys.values())).rsplit("/", 1)[0]))
    return {vin: key for vin, key in keys.items() if key in present}


def read_compressed(storage: Storage, keys: dict[str, str]) -> pl.DataFrame | None:
    """The rows of the files ``keys`` (VIN → key), each limited to its VIN, with the
    ``COLUMNS`` of ``COMPRESSED_SCHEMA``; ``None`` when there is no file."""
    if not keys:
        return None
    if storage.protocol in ("file", "s3"):
        try:
            return _scan_together(storage, keys)
        except (pl.exceptions.PolarsError, OSError) as exc:
            logger.debug("the files do not scan together (%s): reading them one by one", exc)
    frames = [
        conform_rows(storage.read_parquet(key)).filter(pl.col("vin") == vin)
        for vin, key in keys.items()
    ]
    return pl.concat(frames).select(COLUMNS).collect()


def _scan_together(storage: Storage, keys: dict[str, str]) -> pl.DataFrame:
    paths = [storage.uri(key) for key in keys.values()]
    scan = pl.scan_parquet(
        paths,
        schema={name: COMPRESSED_SCHEMA[name] for name in COLUMNS},
        missing_columns="insert",
        extra_columns="ignore",
        include_file_paths=_PATH,
        storage_options=storage.polars_storage_options(),
    )
    # every file is named {VIN}.parquet, and a VIN has 17 characters
    own = pl.col(_PATH).str.slice(-_VIN_LENGTH - len(".parquet"), _VIN_LENGTH) == pl.col("vin")
    return scan.filter(own).select(COLUMNS).collect()
