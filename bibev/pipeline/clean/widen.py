"""Kept observations → the wide clean frame: one row per (vin, instant), values carried forward.

An instant is any ``ts`` with at least one kept observation. At each instant every column
holds its last observed value if that is at most the column's ``max_age`` old, else null. An
observation without a value (the provider said "invalid", or sent a word outside the
vocabulary) is news too: it ends the carrying of the value before it. Rows of the previous
and next day take part in carrying and are then left out: only instants of the day remain.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from bibev.schema import CLEAN_SCHEMA

from .observe import day_bounds
from .params import CleanParams
from .resolve import SUBS, column_of, resolve_rows


def _is_word(column: str) -> bool:
    return isinstance(CLEAN_SCHEMA[column], pl.Enum)


def carry_forward(kept: pl.LazyFrame, instants: pl.LazyFrame, params: CleanParams) -> pl.LazyFrame:
    """At each of ``instants`` (``vin, ts``, sorted), each sub-column's last kept observation at
    or before it, while at most its ``max_age`` old; ``kept`` in ``ORDER`` (one observation per
    ``sub, vin, ts`` at most, so each sub-column's rows are sorted by ``vin, ts``).

    One as-of join per sub-column: a merge of two sorted lists, where a pivot to one row per
    instant followed by a forward fill per column costs a group-by and two passes per column.
    """
    wide = instants
    for sub in SUBS:
        # words are coded (``observe.CODED``): as strings they meet the clean enums by name
        word = _is_word(column_of(sub))
        value = pl.col("value_str").cast(pl.String) if word else pl.col("value_f64")
        observed = kept.filter(pl.col("sub") == sub).select("vin", "ts", value.alias(sub))
        wide = wide.join_asof(
            observed,
            on="ts",
            by="vin",
            strategy="backward",
            tolerance=params.max_age[column_of(sub)],
            check_sortedness=False,
        )
    return wide


def _typed(column: str, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Enum):
        words = list(dtype.categories)
        return pl.when(pl.col(column).is_in(words)).then(pl.col(column)).cast(dtype).alias(column)
    return pl.col(column).cast(dtype)


def widen(observations: pl.LazyFrame, *, day: date, params: CleanParams) -> pl.LazyFrame:
    """Flagged observations (``flag_observations``, in its ``ORDER``) → the day's clean frame
    with exactly ``bibev.schema.CLEAN_SCHEMA``, sorted by ``vin, ts``. Collect it with
    ``engine="in-memory"`` (see ``clean_frame``)."""
    start, end = day_bounds(day)
    kept = observations.filter(pl.col("reason").is_null())
    in_day = (pl.col("ts") >= start) & (pl.col("ts") < end)
    instants = kept.filter(in_day).select("vin", "ts").unique().sort(["vin", "ts"])
    wide = resolve_rows(carry_forward(kept, instants, params))
    return wide.select([_typed(name, dtype) for name, dtype in CLEAN_SCHEMA.items()])
