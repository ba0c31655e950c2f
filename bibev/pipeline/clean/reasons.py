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


def not_first(*columns: str) -> pl.Expr:
    """Whether an observation still active (no reason yet) comes after another active one with
    the same ``columns``, in the frame's order. (``is_first_distinct`` over the whole frame:
    numbering the rows of every group with ``int_range(...).over(...)`` costs a call per
    group, and these groups hold one or two rows.)"""
    active = pl.col("reason").is_null().alias("_active")
    return ~pl.struct(*columns, active).is_first_distinct()


def not_first_in_run(run: pl.Expr) -> pl.Expr:
    """Whether an observation still active comes after another active one in the same run of
    rows (``run``: a run id, e.g. ``rle_id``, of a frame sorted so that a group is one run).
    Counts instead of windows: no hashing at all."""
    active = pl.col("reason").is_null().cast(pl.UInt32)
    before = active.cum_sum() - active  # active rows before this one, in the whole frame
    starts = (run != run.shift(1)).fill_null(True)
    at_start = pl.when(starts).then(before).forward_fill()
    return before > at_start
