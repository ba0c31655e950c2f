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


def _seen(sub: str) -> str:
    return f"{sub}@seen"


def _last(sub: str) -> str:
    return f"{sub}@last"


def pivot(kept: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (vin, ts): each sub-column's value at that instant and whether it was
    observed then (an observation may be a null value)."""
    aggregations = []
    for sub in SUBS:
        source = "value_str" if _is_word(column_of(sub)) else "value_f64"
        here = pl.col("sub") == sub
        aggregations.append(pl.col(source).filter(here).first().alias(sub))
        aggregations.append(here.any().alias(_seen(sub)))
    return kept.group_by(["vin", "ts"]).agg(aggregations).sort(["vin", "ts"])


def carry_forward(wide: pl.LazyFrame, params: CleanParams) -> pl.LazyFrame:
    """Each sub-column's last observation, kept while at most its ``max_age`` old."""
    last = [
        pl.when(pl.col(_seen(sub)))
        .then(pl.struct(pl.col(sub).alias("value"), pl.col("ts").alias("at")))
        .forward_fill()
        .over("vin")
        .alias(_last(sub))
        for sub in SUBS
    ]
    fresh = []
    for sub in SUBS:
        observed = pl.col(_last(sub)).struct.field("at")
        current = (pl.col("ts") - observed) <= params.max_age[column_of(sub)]
        fresh.append(pl.when(current).then(pl.col(_last(sub)).struct.field("value")).alias(sub))
    helpers = [name for sub in SUBS for name in (_seen(sub), _last(sub))]
    return wide.with_columns(last).with_columns(fresh).drop(helpers)


def _typed(column: str, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Enum):
        words = list(dtype.categories)
        return pl.when(pl.col(column).is_in(words)).then(pl.col(column)).cast(dtype).alias(column)
    return pl.col(column).cast(dtype)


def widen(observations: pl.LazyFrame, *, day: date, params: CleanParams) -> pl.LazyFrame:
    """Flagged observations (``bibev.pipeline.clean.observe``) → the day's clean frame with
    exactly ``bibev.schema.CLEAN_SCHEMA``, sorted by ``vin, ts``."""
    start, end = day_bounds(day)
    kept = observations.filter(pl.col("reason").is_null())
    wide = resolve_rows(carry_forward(pivot(kept), params))
    in_day = (pl.col("ts") >= start) & (pl.col("ts") < end)
    return (
        wide.filter(in_day)
        .select([_typed(name, dtype) for name, dtype in CLEAN_SCHEMA.items()])
        .sort(["vin", "ts"])
    )
