"""Glitch detection on canonical observations. Each step marks the observations it rejects
with a ``reason`` and leaves the others alone; a step only looks at observations no earlier
step rejected (its windows are partitioned on "still active").

Reasons (see docs/clean.md): ``duplicate``, ``soc_out_of_range``, ``out_of_range``,
``soc_jump``, ``odometer_jump``, ``odometer_backwards`` (``future_ts`` and ``superseded`` are
set by ``observe`` and ``resolve``).

SoC and odometer glitches are judged against the neighbouring values of the same signal: a
value that is impossible to reach from the value before it *and* to leave towards the value
after it, in opposite directions, is an isolated glitch (a spike). At the ends of the series,
where one neighbour is missing, the two values on the other side must agree with each other.
A lasting step is not a glitch: it is what the vehicle says from then on. An odometer value
below the highest one before it (less a rounding tolerance) went backwards.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from .params import CleanParams
from .reasons import not_first, reject

Impossible = Callable[[pl.Expr, pl.Expr], pl.Expr]

_MICROS_PER_MIN = 60_000_000.0


def reject_duplicates(frame: pl.LazyFrame) -> pl.LazyFrame:
    """The same key at the same instant twice: keep one (``frame`` sorted so that a known value
    comes first), the others are ``duplicate``."""
    return frame.with_columns(reject("duplicate", not_first("vin", "ts", "sub", "key")))


def reject_out_of_range(frame: pl.LazyFrame, params: CleanParams) -> pl.LazyFrame:
    """Numbers outside ``params.plausible`` (or not a number at all, NaN)."""
    low = pl.col("column").replace_strict(
        {c: lo for c, (lo, _) in params.plausible.items()}, default=None, return_dtype=pl.Float64
    )
    high = pl.col("column").replace_strict(
        {c: hi for c, (_, hi) in params.plausible.items()}, default=None, return_dtype=pl.Float64
    )
    value = pl.col("value_f64")
    outside = (value.is_nan() | (value < low) | (value > high)).fill_null(False)
    reason = pl.when(pl.col("column") == "soc_pct").then(pl.lit("soc_out_of_range"))
    # one step for both reasons: the bounds are looked up once a row, not once a reason
    return frame.with_columns(
        pl.when(pl.col("reason").is_null() & outside)
        .then(reason.otherwise(pl.lit("out_of_range")))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )


def _minutes(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    return (later - earlier).dt.total_microseconds() / _MICROS_PER_MIN


def _spike(impossible: Impossible) -> pl.Expr:
    """Whether each value is an isolated glitch; needs the ``_n*`` neighbour columns."""
    value, ts = pl.col("value_f64"), pl.col("ts")
    prev, prev_ts, prev2, prev2_ts = (pl.col(c) for c in ("_p1", "_p1_ts", "_p2", "_p2_ts"))
    nxt, nxt_ts, nxt2, nxt2_ts = (pl.col(c) for c in ("_n1", "_n1_ts", "_n2", "_n2_ts"))
    from_prev = impossible(value - prev, _minutes(ts, prev_ts))
    to_next = impossible(nxt - value, _minutes(nxt_ts, ts))
    middle = from_prev & to_next & ((value - prev) * (nxt - value) < 0)
    first = prev.is_null() & to_next & ~impossible(nxt2 - nxt, _minutes(nxt2_ts, nxt_ts))
    last = nxt.is_null() & from_prev & ~impossible(prev - prev2, _minutes(prev_ts, prev2_ts))
    return (middle.fill_null(False) | first.fill_null(False)) | last.fill_null(False)


def _with_neighbours(frame: pl.LazyFrame, subs: tuple[str, ...]) -> pl.LazyFrame:
    """Add the two previous and two next active known values (and their instants) of the same
    signal; ``frame`` sorted by ``vin, sub, ts``."""
    judged = pl.col("reason").is_null() & ~pl.col("missing") & pl.col("sub").is_in(subs)
    group = ["vin", "sub", judged]
    shifts = {"_p1": 1, "_p2": 2, "_n1": -1, "_n2": -2}
    return frame.with_columns(
        *(pl.col("value_f64").shift(n).over(group).alias(name) for name, n in shifts.items()),
        *(pl.col("ts").shift(n).over(group).alias(f"{name}_ts") for name, n in shifts.items()),
        _judged=judged,
    )


_NEIGHBOURS = ("_p1", "_p2", "_n1", "_n2", "_p1_ts", "_p2_ts", "_n1_ts", "_n2_ts", "_judged")


def reject_soc_jumps(frame: pl.LazyFrame, params: CleanParams) -> pl.LazyFrame:
    """SoC spikes faster than the rise/fall limits plus the allowance (``soc_jump``)."""
    allowance = params.soc_jump_allowance_pct

    def impossible(change: pl.Expr, minutes: pl.Expr) -> pl.Expr:
        rise = allowance + params.soc_max_rise_pct_per_min * minutes
        fall = allowance + params.soc_max_fall_pct_per_min * minutes
        return (change > rise) | (change < -fall)

    spike = pl.col("_judged") & _spike(impossible)
    return (
        _with_neighbours(frame, ("soc_pct",))
        .with_columns(reject("soc_jump", spike))
        .drop(_NEIGHBOURS)
    )


def reject_odometer_glitches(frame: pl.LazyFrame, params: CleanParams) -> pl.LazyFrame:
    """Odometer spikes (``odometer_jump`` up, ``odometer_backwards`` down), then every value
    below the highest earlier one less the tolerance (``odometer_backwards``)."""
    tolerance = params.odometer_tolerance_km
    per_minute = params.odometer_max_speed_kmh / 60.0

    def impossible(change: pl.Expr, minutes: pl.Expr) -> pl.Expr:
        forward = params.odometer_jump_allowance_km + per_minute * minutes
        return (change > forward) | (change < -tolerance)

    spike = pl.col("_judged") & _spike(impossible)
    dip = pl.col("value_f64") < pl.coalesce(pl.col("_p1"), pl.col("_n1"))
    frame = (
        _with_neighbours(frame, ("odometer_km",))
        .with_columns(reject("odometer_backwards", spike & dip.fill_null(False)))
        .with_columns(reject("odometer_jump", spike))
        .drop(_NEIGHBOURS)
    )
    judged = pl.col("reason").is_null() & ~pl.col("missing") & (pl.col("sub") == "odometer_km")
    highest = pl.col("value_f64").shift(1).cum_max().over(["vin", "sub", judged])
    backwards = judged & (pl.col("value_f64") < highest - tolerance).fill_null(False)
    return frame.with_columns(reject("odometer_backwards", backwards))
