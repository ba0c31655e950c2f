"""Compressed rows → canonical observations with fixed clocks (the first steps of cleaning).

The day's rows are read together with the end of the previous day (so that state carries
across midnight) and the first minutes of the next day (a record whose clock ran ahead may
belong to this day once corrected). Every observation keeps its ``origin``: ``-1`` previous
day, ``0`` this day, ``1`` next day, judged on the timestamp as sent, which is also how the
compressed layer files it.

Clocks: a message's ``received_at`` is the earliest time bibev saw that (vin, ts), so a re-send
does not count. ``ts`` later than that by more than ``clock_tolerance`` is a skewed clock: up to
``max_clock_skew`` it is moved back to ``received_at`` (``clamped``), beyond it the observation
is impossible and dropped (``future_ts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from bibev.pipeline.mapping import Mappings, MappingTables, map_rows, mapping_tables
from bibev.schema import COMPRESSED_SCHEMA, UTC_US

from .params import CleanParams
from .resolve import SUBS, sub_column

ORIGIN_PREVIOUS, ORIGIN_DAY, ORIGIN_NEXT = -1, 0, 1

OBSERVATION_SCHEMA: dict[str, pl.DataType] = {
    "vin": pl.String(),
    "ts": UTC_US,
    "ts_raw": UTC_US,
    "origin": pl.Int8(),
    "key": pl.String(),
    "column": pl.String(),
    "sub": pl.String(),
    "priority": pl.Int32(),
    "value_f64": pl.Float64(),
    "value_str": pl.String(),
    "missing": pl.Boolean(),
    "invalid": pl.Boolean(),
    "clamped": pl.Boolean(),
    "reason": pl.String(),
}
#: The names ``observe`` gives as dictionary codes, so that sorting, grouping and comparing
#: them costs integer work: ``vin`` categorical, the others ``pl.Enum`` of the mappings' names,
#: sorted (the codes order as the strings do). ``decode`` turns them back into strings.
CODED = ("vin", "key", "column", "sub", "value_str")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The first instant of ``day`` and of the day after, in UTC."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def conform_rows(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Rows with exactly the compressed columns and types (missing ones null, ``invalid``
    false), whatever version of the compressed layer wrote them."""
    lazy = frame.lazy()
    present = set(lazy.collect_schema().names())
    columns = []
    for name, dtype in COMPRESSED_SCHEMA.items():
        if name in present:
            columns.append(pl.col(name).cast(dtype))
        else:
            default = False if name == "invalid" else None
            columns.append(pl.lit(default, dtype).alias(name))
    return lazy.select(columns)


def gather_rows(
    compressed: pl.LazyFrame | pl.DataFrame,
    *,
    day: date,
    previous: pl.LazyFrame | pl.DataFrame | None = None,
    following: pl.LazyFrame | pl.DataFrame | None = None,
    params: CleanParams,
) -> pl.LazyFrame:
    """The day's rows, the previous day's tail and the next day's head (see the module doc).

    The tail is every row of the last ``tail_window`` before midnight plus the last
    ``tail_rows_per_key`` rows of each key (a value sent once in the afternoon is still the
    last known one at midnight); the head is the next day's first ``max_clock_skew``.
    """
    start, end = day_bounds(day)
    frames = [conform_rows(compressed)]
    if previous is not None:
        recent = pl.col("ts") >= start - params.tail_window
        last = (
            pl.col("ts").rank("ordinal", descending=True).over(["vin", "key"])
            <= params.tail_rows_per_key
        )
        tail = conform_rows(previous).filter(pl.col("ts") < start)
        frames.append(tail.filter(recent | last))
    if following is not None:
        head = conform_rows(following).filter(
            (pl.col("ts") >= end) & (pl.col("ts") < end + params.max_clock_skew)
        )
        frames.append(head)
    return pl.concat(frames, how="vertical")


def _key_table(mappings: Mappings, tables: MappingTables) -> pl.DataFrame:
    """Per entry (``tables.entry_schema()``): its priority (order of preference among the
    column's keys in its mapping) and its sub-column (coded: ``_sub_codes``)."""
    per_provider = mappings.items() if isinstance(mappings, Mapping) else [(None, mappings)]
    rows = []
    for provider, mapping in per_provider:
        named = (provider,) if "provider" in tables.on else ()
        seen: dict[str, list[str]] = {}
        for item in mapping:
            keys = seen.setdefault(item.column, [])
            if item.key not in keys:
                keys.append(item.key)
        rows += [
            (*named, key, column, priority, sub_column(column, key))
            for column, keys in seen.items()
            for priority, key in enumerate(keys)
        ]
    return pl.DataFrame(
        rows,
        schema={**tables.entry_schema(), "priority": pl.Int32, "sub": _sub_codes(mappings)},
        orient="row",
    )


def _sub_codes(mappings: Mappings) -> pl.Enum:
    """The codes of the sub-columns: every one of ``SUBS`` (the judging steps name some) and
    any other the mappings give."""
    entries = mappings.values() if isinstance(mappings, Mapping) else [mappings]
    given = {sub_column(m.column, m.key) for mapping in entries for m in mapping}
    return pl.Enum(sorted({*SUBS, *given}))


def mapping_levels(mappings: Mappings) -> int:
    """The largest number of keys feeding one column in any of the mappings."""
    tables = mappings.values() if isinstance(mappings, Mapping) else [mappings]
    levels = 0
    for mapping in tables:
        keys: dict[str, set[str]] = {}
        for item in mapping:
            keys.setdefault(item.column, set()).add(item.key)
        levels = max([levels, *(len(k) for k in keys.values())])
    return levels


def mapped_keys(mappings: Mappings) -> pl.DataFrame:
    """``provider, key`` of every mapped key (``provider`` null for a mapping of every row)."""
    pairs: set[tuple[str | None, str]]
    if isinstance(mappings, Mapping):
        pairs = {(p, m.key) for p, mapping in mappings.items() for m in mapping}
    else:
        pairs = {(None, m.key) for m in mappings}
    return pl.DataFrame(
        sorted(pairs, key=lambda pair: (pair[0] or "", pair[1])),
        schema={"provider": pl.String, "key": pl.String},
        orient="row",
    )


def observe(
    rows: pl.LazyFrame,
    mappings: Mappings,
    *,
    day: date,
    params: CleanParams,
    now: datetime | None = None,
) -> pl.LazyFrame:
    """Gathered rows → observations (``OBSERVATION_SCHEMA``, names coded: see ``CODED``) with
    fixed clocks; the ones whose clock is beyond repair carry ``reason = "future_ts"``.
    ``now``, when given, also makes any ``ts`` later than ``now + max_clock_skew`` a future
    one (for rows without ``received_at``)."""
    start, end = day_bounds(day)
    # read by the mapping and by the clocks below: computed once
    rows = rows.with_columns(pl.col("vin").cast(pl.Categorical)).cache()
    tables = mapping_tables(mappings)
    tables = tables.with_entry_columns(_key_table(mappings, tables))
    # Only an instant reported by a clock ahead of its reception can have a skew above the
    # tolerance, and the earliest reception of such an instant is one of those: grouping
    # them alone is grouping a handful of rows, not all of them.
    ahead = pl.col("received_at") < pl.col("ts") - params.clock_tolerance
    received = (
        rows.filter(ahead).group_by(["vin", "ts"]).agg(first_received=pl.col("received_at").min())
    )
    skew = pl.col("ts") - pl.col("first_received")
    future = (skew > params.max_clock_skew).fill_null(False)
    if now is not None:
        future = future | (pl.col("ts") > now + params.max_clock_skew)
    clamped = ~future & (skew > params.clock_tolerance).fill_null(False)
    origin = (
        pl.when(pl.col("ts") < start)
        .then(ORIGIN_PREVIOUS)
        .when(pl.col("ts") >= end)
        .then(ORIGIN_NEXT)
        .otherwise(ORIGIN_DAY)
    )
    return (
        map_rows(rows, tables)
        .join(received, on=["vin", "ts"], how="left")
        .with_columns(
            ts_raw=pl.col("ts"),
            ts=pl.when(clamped).then(pl.col("first_received")).otherwise(pl.col("ts")),
            origin=origin.cast(pl.Int8),
            missing=pl.col("value_f64").is_null() & pl.col("value_str").is_null(),
            clamped=clamped,
            reason=pl.when(future).then(pl.lit("future_ts")),
        )
        .select(
            [pl.col(n) if n in CODED else pl.col(n).cast(d) for n, d in OBSERVATION_SCHEMA.items()]
        )
    )


def decode(observations: pl.LazyFrame) -> pl.LazyFrame:
    """Coded observations (``observe``) with their names as strings (``OBSERVATION_SCHEMA``)."""
    return observations.with_columns(pl.col(CODED).cast(pl.String))
