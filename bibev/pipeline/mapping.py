"""Apply a provider's declarative mapping to compressed rows.

The result is long and canonical: one row per (vin, ts, column) observation, with the value
converted to canonical units (``value_f64``) or vocabulary (``value_str``). Rows whose key has
no mapping are left out here (they stay in the compressed layer); invalid values come out as
nulls with ``invalid`` set, so the cleaner can count them.

How: the names a mapping knows (keys, canonical columns, vocabulary words) are dictionary-coded
(``pl.Enum``, sorted, so that the codes order as the names do), and the mapping becomes small
tables (``MappingTables``). Whatever depends only on a row's key and unit (its entries, the
unit word lowercased, the unit's factor) is worked out once per distinct (key, unit) of the
rows, and each row is joined once to that: a few dozen combinations, not a string operation
per row. Rows of enum keys are few; they are matched to the vocabulary row by row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import polars as pl

from bibev.providers._json import UNIT_WORDS
from bibev.providers.base import SignalMap
from bibev.schema import CLEAN_COLUMNS, SIGNAL_COLUMNS

MAPPED_SCHEMA: dict[str, pl.DataType] = {
    "vin": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    "key": pl.String(),
    "column": pl.String(),
    "value_f64": pl.Float64(),
    "value_str": pl.String(),
    "invalid": pl.Boolean(),
}

#: One mapping for every row, or one per provider (the ``provider`` column of the rows).
Mappings = Sequence[SignalMap] | Mapping[str, Sequence[SignalMap]]

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclass(frozen=True)
class MappingTables:
    """Mappings as join tables over dictionary codes (see the module doc).

    - ``keys``, ``columns``, ``words``: the codes (``pl.Enum``) of the mapped keys, of the
      canonical columns (every clean signal and any other a mapping names) and of the
      vocabulary's canonical words;
    - ``on``: what a row is matched on: ``key``, or ``provider`` and ``key`` (one mapping per
      provider: rows of another provider are left out);
    - ``numbers``: one row per numeric entry (``on``, ``column``, ``scale``, ``offset``,
      ``whole`` for a value read as an integer);
    - ``enum_keys``: one row per distinct (``on``, ``column``) of the enum entries;
    - ``vocab``: one row per vocabulary word (``on``, ``column``, ``raw`` lowercased,
      ``canonical``);
    - ``extra``: more columns of ``numbers`` and ``enum_keys`` (``with_entry_columns``).
    """

    keys: pl.Enum
    columns: pl.Enum
    words: pl.Enum
    on: tuple[str, ...]
    numbers: pl.DataFrame
    enum_keys: pl.DataFrame
    vocab: pl.DataFrame
    extra: tuple[str, ...] = ()

    def entry_schema(self) -> dict[str, pl.DataType]:
        """The columns naming an entry: ``on`` and ``column``, coded."""
        schema: dict[str, pl.DataType] = {"provider": pl.String(), "key": self.keys}
        return {**{name: schema[name] for name in self.on}, "column": self.columns}

    def with_entry_columns(self, table: pl.DataFrame) -> MappingTables:
        """These tables with more columns per entry, which every observation of the entry then
        carries (``map_rows``): ``table`` holds the ``entry_schema`` columns and the others."""
        names = list(self.entry_schema())
        return replace(
            self,
            numbers=self.numbers.join(table, on=names, how="left"),
            enum_keys=self.enum_keys.join(table, on=names, how="left"),
            extra=tuple(name for name in table.columns if name not in names),
        )


def _entries(mappings: Mappings) -> list[tuple[str | None, SignalMap]]:
    if isinstance(mappings, Mapping):
        return [(provider, m) for provider, mapping in mappings.items() for m in mapping]
    return [(None, m) for m in mappings]


def mapping_tables(mappings: Mappings) -> MappingTables:
    """The tables of a mapping, or of one mapping per provider."""
    entries = _entries(mappings)
    on = ("provider", "key") if isinstance(mappings, Mapping) else ("key",)
    keys = pl.Enum(sorted({m.key for _, m in entries}))
    columns = pl.Enum(sorted({*SIGNAL_COLUMNS, *(m.column for _, m in entries)}))
    words = pl.Enum(sorted({word for _, m in entries if m.enum for word in m.enum.values()}))
    names: dict[str, pl.DataType] = {"provider": pl.String(), "key": keys, "column": columns}
    entry = {name: names[name] for name in (*on, "column")}

    def named(provider: str | None, m: SignalMap) -> tuple[object, ...]:
        return (provider, m.key, m.column) if "provider" in on else (m.key, m.column)

    numbers = pl.DataFrame(
        [(*named(p, m), m.scale, m.offset, m.cast == "int") for p, m in entries if m.enum is None],
        schema={**entry, "scale": pl.Float64, "offset": pl.Float64, "whole": pl.Boolean},
        orient="row",
    )
    enum_keys = pl.DataFrame(
        list(dict.fromkeys(named(p, m) for p, m in entries if m.enum)), schema=entry, orient="row"
    )
    vocab = pl.DataFrame(
        [
            (*named(p, m), raw.lower(), canonical)
            for p, m in entries
            if m.enum
            for raw, canonical in m.enum.items()
        ],
        schema={**entry, "raw": pl.String, "canonical": words},
        orient="row",
    )
    return MappingTables(keys, columns, words, on, numbers, enum_keys, vocab)


def unit_frame(columns: pl.DataType) -> pl.DataFrame:
    """Known unit words → factor to the canonical unit, per canonical column (``columns``: the
    dtype of the ``column`` codes).

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
        schema={"column": columns, "unit_word": pl.String, "unit_factor": pl.Float64},
        orient="row",
    )


def _raw_text() -> pl.Expr:
    return pl.coalesce(
        pl.col("value_str").str.strip_chars(),
        pl.col("value_i64").cast(pl.String),
        pl.col("value_bool").cast(pl.String).str.to_lowercase(),
        pl.col("value_f64").cast(pl.String),
    )


def _raw_number(text: pl.Expr) -> pl.Expr:
    """The number a row carries; ``text``: its ``value_str`` stripped and lowercased."""
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


def _numbers(rows: pl.LazyFrame, tables: MappingTables) -> pl.LazyFrame:
    """The rows of numeric entries, converted: one join to their (key, unit) combinations."""
    on = list(tables.on)
    combinations = (
        rows.select(*on, "unit")
        .unique()
        .join(tables.numbers.lazy(), on=on)
        .with_columns(unit_word=pl.col("unit").str.strip_chars().str.to_lowercase())
        .join(unit_frame(tables.columns).lazy(), on=["column", "unit_word"], how="left")
    )
    invalid = pl.col("invalid").fill_null(False)
    raw, value = pl.col("_raw"), pl.col("_value")
    converted = (
        pl.when(pl.col("unit_factor").is_not_null())
        .then(raw * pl.col("unit_factor"))
        .otherwise(raw * pl.col("scale") + pl.col("offset"))
    )
    # each step a column of its own: written as one expression, the raw number (string
    # parsing included) was computed once per branch that reads it, four times a row, and
    # the text three times
    return (
        rows.join(combinations, on=[*on, "unit"], nulls_equal=True)
        .with_columns(_text=pl.col("value_str").str.strip_chars().str.to_lowercase())
        .with_columns(_raw=_raw_number(pl.col("_text")))
        .with_columns(_value=pl.when(invalid).then(None).otherwise(converted))
        .with_columns(
            value_f64=pl.when(pl.col("whole")).then(value.round(0)).otherwise(value),
            value_str=pl.lit(None, tables.words),
        )
        .drop("_text", "_raw", "_value")
    )


def _words(rows: pl.LazyFrame, tables: MappingTables) -> pl.LazyFrame:
    """The rows of enum entries, matched case-insensitively to the vocabulary."""
    on = list(tables.on)
    invalid = pl.col("invalid").fill_null(False)
    return (
        rows.join(tables.enum_keys.lazy(), on=on)
        .with_columns(raw=_raw_text().str.to_lowercase())
        .join(tables.vocab.lazy(), on=[*on, "column", "raw"], how="left")
        .with_columns(
            value_f64=pl.lit(None, pl.Float64),
            value_str=pl.when(invalid).then(None).otherwise(pl.col("canonical")),
        )
    )


def map_rows(rows: pl.LazyFrame, tables: MappingTables) -> pl.LazyFrame:
    """Compressed rows (``bibev.schema.COMPRESSED_SCHEMA``) → long canonical observations
    (``MAPPED_SCHEMA`` with ``key``, ``column`` and ``value_str`` coded, then the
    ``tables.extra`` columns of each observation's entry)."""
    # a key no mapping knows becomes null, which matches no entry
    coded = rows.with_columns(pl.col("key").cast(tables.keys, strict=False))
    columns = [*MAPPED_SCHEMA, *tables.extra]
    parts = [_numbers(coded, tables).select(columns), _words(coded, tables).select(columns)]
    return pl.concat(parts, how="vertical").with_columns(invalid=pl.col("invalid").fill_null(False))


def apply_mapping(frame: pl.DataFrame | pl.LazyFrame, mapping: Sequence[SignalMap]) -> pl.LazyFrame:
    """Compressed rows (``bibev.schema.COMPRESSED_SCHEMA``) → long canonical observations."""
    mapped = map_rows(frame.lazy(), mapping_tables(mapping))
    return mapped.select([pl.col(name).cast(dtype) for name, dtype in MAPPED_SCHEMA.items()])
