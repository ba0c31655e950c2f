"""Reading the compressed files of many vehicles of one day at once.

One ``scan_parquet`` over a batch's files costs a fraction of one read per file (each read has
a fixed cost that dwarfs a small vehicle-day). Only the columns cleaning uses are read (the
``message_id`` strings are most of the bytes).

A compressed file holds the rows of the VIN its name says and nothing else: ``compact`` files
every message under its own folder's VIN and quarantines a message of another. So a file with
a row of another VIN (or without a VIN), or without one of the ``REQUIRED`` columns (a file of
another layer copied there, say), is not a compressed file of that vehicle: it is refused with
a ``DataContractError`` that names it and says what is wrong, never read in part. The optional
columns may be missing (a file written by an older version of the compressed layer, or by
another writer): they read as null (``invalid`` as false). The check costs one boolean per row
in the same scan; only when it fails are the files read again one by one, to say which.

Files written by another version of the compressed layer may not scan together (a column of
another type): then each file is read on its own and conformed (``conform_rows``), which also
names the file in a storage error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, timedelta

import polars as pl

from bibev.errors import DataContractError
from bibev.schema import COMPRESSED_SCHEMA
from bibev.storage import Storage

from .observe import conform_rows

logger = logging.getLogger(__name__)

#: What cleaning reads of a compressed file.
COLUMNS: tuple[str, ...] = tuple(name for name in COMPRESSED_SCHEMA if name != "message_id")
#: The columns without which a row is no observation of its vehicle: who, which provider's
#: key, when. Every compressed file ``compact`` ever wrote has them, never null.
REQUIRED: tuple[str, ...] = ("vin", "provider", "ts", "key")
_PATH = "_file"
_OK = "_ok"
_VIN_LENGTH = 17


def day_files(storage: Storage, day: date, vins: Sequence[str]) -> dict[str, str]:
    """VIN → key of ``compressed/{day}/{VIN}.parquet`` for those of ``vins`` that exist (one
    listing, not one request per file)."""
    keys = {vin: storage.day_key("compressed", day, vin) for vin in vins}
    if not keys:
        return {}
    present = set(storage.list(next(iter(keys.values())).rsplit("/", 1)[0]))
    return {vin: key for vin, key in keys.items() if key in present}


def latest_files(storage: Storage, before: date, vins: Sequence[str], days: int) -> dict[str, str]:
    """VIN → key of the latest compressed file of each of ``vins`` on one of the ``days`` days
    before ``before`` (``before - 1`` … ``before - days``), for those that have one: one listing
    per day looked at, and a day is looked at only while some VIN is still missing."""
    found: dict[str, str] = {}
    missing = list(vins)
    for back in range(1, days + 1):
        if not missing:
            break
        keys = day_files(storage, before - timedelta(days=back), missing)
        found.update(keys)
        missing = [vin for vin in missing if vin not in keys]
    return found


def read_compressed(storage: Storage, keys: dict[str, str]) -> pl.DataFrame | None:
    """The rows of the files ``keys`` (VIN → key) with the ``COLUMNS`` of
    ``COMPRESSED_SCHEMA``; ``None`` when there is no file. A file that is not a compressed file
    of its VIN (see the module doc) raises ``DataContractError``."""
    if not keys:
        return None
    if storage.protocol in ("file", "s3"):
        try:
            rows = _scan_together(storage, keys)
        except (pl.exceptions.PolarsError, OSError) as exc:
            logger.debug("the files do not scan together (%s): reading them one by one", exc)
        else:
            if rows[_OK].all():
                return rows.drop(_OK)
            logger.debug("a file holds rows that are not its own: reading them one by one")
    frames = [_read_one(storage, vin, key) for vin, key in keys.items()]
    return pl.concat(frames).select(COLUMNS).collect()


def _scan_together(storage: Storage, keys: dict[str, str]) -> pl.DataFrame:
    """Every row of the files with ``_ok``: the row is its file's (the VIN of the file name,
    the ``REQUIRED`` columns set; a missing column reads as null)."""
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
    named = pl.col(_PATH).str.slice(-_VIN_LENGTH - len(".parquet"), _VIN_LENGTH)
    ok = (named == pl.col("vin")) & pl.all_horizontal(pl.col(REQUIRED).is_not_null())
    return scan.select(*COLUMNS, ok.fill_null(False).alias(_OK)).collect()


def _read_one(storage: Storage, vin: str, key: str) -> pl.LazyFrame:
    """The rows of one file, conformed; ``DataContractError`` naming it when it is not a
    compressed file of ``vin`` (see the module doc)."""
    frame = storage.read_parquet(key)
    if frame.height == 0:  # nothing in it to lose
        return conform_rows(frame)
    where = f"{key!r} in {storage.url}"
    absent = [name for name in REQUIRED if name not in frame.columns]
    if absent:
        raise DataContractError(
            f"{where} is not a compressed file: required column(s) {', '.join(absent)} "
            f"missing ({frame.height} rows; its columns: {_listed(frame.columns)})"
        )
    rows = conform_rows(frame).collect()
    others = rows.filter(pl.col("vin").ne_missing(vin))
    if others.height:
        names = others["vin"].drop_nulls().unique().sort().to_list()
        whose = [f"VIN {_listed(names)}"] if names else []
        if others["vin"].null_count():
            whose.append(f"{others['vin'].null_count()} without a VIN")
        raise DataContractError(
            f"{where} holds rows of another vehicle: {others.height} of its {rows.height} rows "
            f"are not of {vin}, the VIN of its name ({'; '.join(whose)})"
        )
    unset = [name for name in REQUIRED if rows[name].null_count()]
    if unset:
        counts = ", ".join(f"{rows[name].null_count()} without {name}" for name in unset)
        raise DataContractError(
            f"{where} is not a compressed file: rows without a required column "
            f"({counts}, of {rows.height} rows)"
        )
    return rows.lazy()


def _listed(names: Sequence[str], shown: int = 6) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
