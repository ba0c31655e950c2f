"""Apply a provider's declarative mapping to compressed rows.

The result is long and canonical: one row per (vin, ts, column) observation, with the value
converted to canonical units (``value_f64``) or vocabulary (``value_str``). Rows whose key has
no mapping are left out here (they stay in the compressed layer); invalid values come out as
nulls with ``invalid`` set, so the cleaner can count them.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from bibev.providers._json import UNIT_WORDS
from bibev.providers.base import SignalMap
from bibev.schema import CLEAN_COLUMNS

MAPPED_SCHEMA: dict[str, pl.DataType] = {
    "vin": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    "key": pl.String(),
    "column": pl.String(),
    "value_f64": pl.Float64(),
    "value_str": pl.String(),
    "invalid": pl.Boolean(),
}

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def mapping_frames(mapping: Sequence[SignalMap]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The mapping as two join tables: numeric entries and enum vocabulary entries."""
    numeric = [m for m in mapping if m.enum is None]
    vocab = [
        (m.key, m.column, raw.lower(), canon)
        for m in mapping
        if m.enum
        for raw, canon in m.enum.items()
    ]
    numeric_frame = pl.DataFrame(
        {
            "key": [m.key for m in numeric],
            "column": [m.column for m in numeric],
            "scale": [m.scale for m in numeric],
            "offset": [m.offset for m in numeric],
            "cast": [m.cast for m in numeric],
        },
        schema={
            "key": pl.String,
            "column": pl.String,
            "scale": pl.Float64,
            "offset": pl.Float64,
            "cast": pl.String,
        },
    )
    enum_frame = pl.DataFrame(
        vocab,
        schema={"key": pl.String, "column": pl.String, "raw": pl.String, "canonical": pl.String},
        orient="row",
    )
    return numeric_frame, enum_frame


def unit_frame() -> pl.DataFrame:
    """Known unit words → factor to the canonical unit, per canonical column.

    A mapping's ``scale`` assumes the provider's usual unit. When a row names its own unit and
    that unit measures what the column measures, the unit wins: a High Mobility odometer sent in
    ``miles`` is read as miles even though the mapping expects kilometres.
    """
    column_units = {c.name: c.unit for c in CLEAN_COLUMNS if c.unit}
    rows = [
        (column, word, factor)
        for column, unit in column_units.items()
        for word, (canonical, factor) in UNIT_WORDS.items()
        if canonical == unit
    ]
    return pl.DataFrame(
        rows,
        schema={"column": pl.String, "unit_word": pl.String, "unit_factor": pl.Float64},
        orient="row",
    )


def _raw_text() -> pl.Expr:
    return pl.coalesce(
        pl.col("value_str").str.strip_chars(),
        pl.col("value_i64").cast(pl.String),
        pl.col("value_bool").cast(pl.String).str.to_lowercase(),
        pl.col("value_f64").cast(pl.String),
    )


def _raw_number() -> pl.Expr:
    text = pl.col("value_str").str.strip_chars().str.to_lowercase()
    from_text = (
        pl.when(text.is_in(_TRUE))
        .then(1.0)
        .when(text.is_in(_FALSE))
        .then(0.0)
        .otherwise(text.cast(pl.Float64, strict=False))
    )
    return pl.coalesce(
        pl.col("value_f64"),
        pl.col("value_i64").cast(pl.Float64),
        pl.col("value_bool").cast(pl.Float64),
        from_text,
    )


def apply_mapping(frame: pl.DataFrame | pl.LazyFrame, mapping: Sequence[SignalMap]) -> pl.LazyFrame:
    """Compressed rows (``bibev.schema.COMPRESSED_SCHEMA``) → long canonical observations."""
    lazy = frame.lazy()
    numeric, vocab = mapping_frames(mapping)
    invalid = pl.col("invalid").fill_null(False)
    by_unit = pl.col("unit_factor").is_not_null()
    converted = (
        pl.when(by_unit)
        .then(_raw_number() * pl.col("unit_factor"))
        .otherwise(_raw_number() * pl.col("scale") + pl.col("offset"))
    )
    numbers = (
        lazy.join(numeric.lazy(), on="key", how="inner")
        .with_columns(unit_word=pl.col("unit").str.strip_chars().str.to_lowercase())
        .join(unit_frame().lazy(), on=["column", "unit_word"], how="left")
        .with_columns(
            value_f64=pl.when(invalid).then(None).otherwise(converted),
            value_str=pl.lit(None, pl.String),
        )
        .with_columns(
            value_f64=pl.when(pl.col("cast") == "int")
            .then(pl.col("value_f64").round(0))
            .otherwise(pl.col("value_f64"))
        )
    )
    enum_keys = vocab.select("key", "column").unique()
    words = (
        lazy.join(enum_keys.lazy(), on="key", how="inner")
        .with_columns(raw=_raw_text().str.to_lowercase())
        .join(vocab.lazy(), on=["key", "column", "raw"], how="left")
        .with_columns(
            value_f64=pl.lit(None, pl.Float64),
            value_str=pl.when(invalid).then(None).otherwise(pl.col("canonical")),
        )
    )
    columns = list(MAPPED_SCHEMA)
    return pl.concat([numbers.select(columns), words.select(columns)], how="vertical").with_columns(
        invalid=invalid
    )
