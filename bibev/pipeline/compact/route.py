"""Which rows belong to the day being compacted, and which messages belong to other days.

The date folder of a temp file is the UTC day of its messages, but not always: a buffer flushed
across midnight, a message whose values carry several timestamps, a sender's clock. Rows are
compacted into the day of their own ``ts``. A line with rows of another day is *rerouted*: it is
written, whole, into ``temp/{VIN}/{that day}/`` with ``rows_of_day`` set, and the compaction of
that day takes only that day's rows from it. A rerouted line is never rerouted again, so a
message with rows on two days cannot bounce between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import polars as pl

from bibev.schema import COMPRESSED_SCHEMA


@dataclass(frozen=True)
class DaySplit:
    """``rows``: this day's rows (compressed schema); ``reroute``: other day → line indices;
    ``dropped``: rows of other days in already rerouted lines (compacted from their origin)."""

    rows: pl.DataFrame
    reroute: dict[date, list[int]] = field(default_factory=dict)
    dropped: int = 0


def split_by_day(rows: pl.DataFrame, day: date | None = None) -> DaySplit:
    """Split flattened rows (with ``line`` and ``rows_of_day``) read from ``day``'s folder, or
    from the folder named per row in a ``folder_day`` column when ``day`` is ``None``."""
    folder = pl.lit(day, pl.Date) if day is not None else pl.col("folder_day")
    row_day = pl.col("ts").dt.date()
    if rows.select((row_day == folder).fill_null(False).all()).item():
        return DaySplit(rows.select(list(COMPRESSED_SCHEMA)))  # the usual case: nothing to copy
    mine = rows.filter(row_day == folder)
    others = rows.filter(row_day != folder)
    dropped = others.filter(pl.col("rows_of_day").is_not_null()).height
    moving = (
        others.filter(pl.col("rows_of_day").is_null())
        .select(row_day.alias("day"), "line")
        .unique()
        .sort("day", "line")
    )
    reroute: dict[date, list[int]] = {}
    for target, line in moving.iter_rows():
        reroute.setdefault(target, []).append(line)
    return DaySplit(mine.select(list(COMPRESSED_SCHEMA)), reroute, dropped)
