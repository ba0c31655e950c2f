"""Why an observation was not used: the reasons the quality record counts."""

from __future__ import annotations

import polars as pl

#: Glitches, in the order they are judged (docs/clean.md describes each).
GLITCHES: tuple[str, ...] = (
    "future_ts",
    "duplicate",
    "soc_out_of_range",
    "out_of_range",
    "soc_jump",
    "odometer_jump",
    "odometer_backwards",
)
#: Not a glitch: a more preferred key of the same column spoke (see ``resolve``).
SUPERSEDED = "superseded"


def reject(reason: str, condition: pl.Expr) -> pl.Expr:
    """Set ``reason`` where ``condition`` holds and no earlier step set one."""
    return (
        pl.when(pl.col("reason").is_null() & condition)
        .then(pl.lit(reason))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )
