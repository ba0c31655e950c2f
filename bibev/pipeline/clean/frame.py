"""``clean_frame``: one day of compressed rows → the clean frame and its quality records.

Pure: frames in, frames out; the day, the thresholds and (optionally) "now" are arguments.
The steps, in order:

1. ``gather_rows``: the day's rows, the previous day's tail, the next day's head;
2. ``observe``: the provider's mapping, clocks fixed (``future_ts`` dropped); names come as
   dictionary codes from here on (``observe.CODED``), strings again only for inspection;
3. one deterministic order, then the judging steps: ``duplicate``, ranges, preference among
   keys (``superseded``), SoC spikes, odometer spikes and backwards steps;
4. ``widen``: one row per instant of the day, values carried forward within their age limit,
   charger kind, power and energy resolved;
5. ``summarize``: the quality record per VIN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property

import polars as pl

from .glitches import (
    reject_duplicates,
    reject_odometer_glitches,
    reject_out_of_range,
    reject_soc_jumps,
)
from .observe import (
    Mappings,
    conform_rows,
    day_bounds,
    decode,
    gather_rows,
    mapped_keys,
    mapping_levels,
    observe,
)
from .params import CleanParams
from .quality import QualityRecord, input_stats, last_kept, summarize
from .resolve import supersede
from .widen import widen

#: A total order of observations: ties are broken down to the value, so equal inputs always
#: give equal outputs. Signal first: every judging step looks at one signal of one vehicle at a
#: time, and the spike rules at one signal only, which is then one slice of the frame.
ORDER = ("sub", "vin", "ts", "missing", "priority", "key", "value_f64", "value_str", "ts_raw")


def flag_observations(
    compressed: pl.LazyFrame | pl.DataFrame,
    mappings: Mappings,
    *,
    day: date,
    previous: pl.LazyFrame | pl.DataFrame | None = None,
    following: pl.LazyFrame | pl.DataFrame | None = None,
    params: CleanParams | None = None,
    now: datetime | None = None,
) -> pl.LazyFrame:
    """Every canonical observation around ``day`` (``OBSERVATION_SCHEMA``), in ``ORDER``, with
    ``reason`` set on the ones not used (null on the kept ones). See the module doc for the
    steps."""
    params = params or CleanParams()
    observed = _observe(compressed, mappings, day, previous, following, params, now)
    return decode(_judge(_in_order(observed), mappings, params))


def _observe(
    compressed: pl.LazyFrame | pl.DataFrame,
    mappings: Mappings,
    day: date,
    previous: pl.LazyFrame | pl.DataFrame | None,
    following: pl.LazyFrame | pl.DataFrame | None,
    params: CleanParams,
    now: datetime | None,
) -> pl.LazyFrame:
    """The observations around ``day``, names coded (``observe.CODED``)."""
    rows = gather_rows(compressed, day=day, previous=previous, following=following, params=params)
    return observe(rows, mappings, day=day, params=params, now=now)


def _instant_key(subs: int) -> pl.Expr:
    """``sub, vin, ts`` packed in one Int128 that orders as the three do, nulls last: ``sub``
    by its code (``subs``: how many codes there are, in the order of the names), ``vin`` by
    its rank (below ``2**32``), ``ts`` in microseconds moved to start at 0. Each part keeps
    one value more than its largest, for null."""
    sub = pl.col("sub").to_physical().cast(pl.Int128).fill_null(subs)
    vin = pl.col("vin").rank("dense").cast(pl.Int128).fill_null(2**32)
    ts = (pl.col("ts").to_physical().cast(pl.Int128) + 2**63).fill_null(2**64)
    return (sub * (2**32 + 1) + vin) * (2**64 + 1) + ts


def _in_order(observations: pl.LazyFrame) -> pl.LazyFrame:
    """Coded observations (``observe``) sorted by ``ORDER``, ``duplicate`` set
    (``reject_duplicates``, the first judging step).

    A sort by several columns costs several times a sort by one number, and observations
    seldom share their first three columns (two keys of a column at one instant, a duplicate):
    so the frame is sorted by ``_instant_key`` alone, and only the rows that share one are
    sorted by the whole ``ORDER`` and merged back. Only those rows can be duplicates (same
    ``sub, vin, ts``, same key), so only they are compared, in the order they keep in the
    whole frame: comparing every row would find no other.
    """
    subs = len(observations.collect_schema()["sub"].categories)  # type: ignore[attr-defined]
    key = pl.col("_key")
    shared = ((key == key.shift(1)) | (key == key.shift(-1))).fill_null(False)
    by_key = (
        observations.with_columns(_key=_instant_key(subs))
        .sort("_key")
        .with_columns(_shared=shared)
        .cache()  # both parts below read it: sort once
    )
    alone = by_key.filter(~pl.col("_shared"))
    together = reject_duplicates(
        by_key.filter(pl.col("_shared")).sort(["_key", *ORDER[3:]], nulls_last=True)
    )
    return alone.merge_sorted(together, key="_key").drop("_key", "_shared")


def _judge(frame: pl.LazyFrame, mappings: Mappings, params: CleanParams) -> pl.LazyFrame:
    """The judging steps after ``duplicate`` (set by ``_in_order``) on observations in
    ``ORDER``: ``reason`` set where one applies."""
    frame = reject_out_of_range(frame, params)
    frame = supersede(frame, levels=mapping_levels(mappings), max_age=params.max_age)
    # The spike rules judge one signal each: run them on its slice, not on the whole frame.
    sub = pl.col("sub")
    return pl.concat(
        [
            frame.filter(sub < "odometer_km"),
            reject_odometer_glitches(frame.filter(sub == "odometer_km"), params),
            frame.filter((sub > "odometer_km") & (sub < "soc_pct")),
            reject_soc_jumps(frame.filter(sub == "soc_pct"), params),
            frame.filter((sub > "soc_pct") | sub.is_null()),
        ],
        how="vertical",
    )


@dataclass(frozen=True)
class CleanDay:
    """The clean rows of a day (``CLEAN_SCHEMA``; computed, lazy for the caller's next steps)
    and one quality record per VIN; ``observations`` for inspection."""

    frame: pl.LazyFrame
    quality: list[QualityRecord]
    coded: pl.DataFrame = field(repr=False)

    @cached_property
    def observations(self) -> pl.DataFrame:
        """The flagged observations (``OBSERVATION_SCHEMA``), decoded when first asked for: a
        run writing files never needs them."""
        return decode(self.coded.lazy()).collect()


def silence_start(
    earlier: pl.LazyFrame | pl.DataFrame,
    mappings: Mappings,
    *,
    day: date,
    params: CleanParams | None = None,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Per VIN of ``earlier`` (compressed rows of days before ``day``, typically each VIN's
    latest day with rows when it has none the day before): ``vin, before``, the instant of its
    last kept observation. Only the end of each VIN's rows is judged, as the day before's tail
    is (every row of the last ``tail_window`` before its last row and the last
    ``tail_rows_per_key`` rows of every key), and on its own: it never reaches the clean rows.
    """
    params = params or CleanParams()
    start, _ = day_bounds(day)
    rows = conform_rows(earlier).filter(pl.col("ts") < start)
    recent = pl.col("ts") >= pl.col("ts").max().over("vin") - params.tail_window
    last = (
        pl.col("ts").rank("ordinal", descending=True).over(["vin", "key"])
        <= params.tail_rows_per_key
    )
    observed = observe(rows.filter(recent | last), mappings, day=day, params=params, now=now)
    observations = _judge(_in_order(observed.collect().lazy()), mappings, params)
    return last_kept(observations.collect(engine="in-memory"), day=day).collect()


def clean_frame(
    compressed: pl.LazyFrame | pl.DataFrame,
    mappings: Mappings,
    *,
    day: date,
    previous: pl.LazyFrame | pl.DataFrame | None = None,
    following: pl.LazyFrame | pl.DataFrame | None = None,
    earlier: pl.LazyFrame | pl.DataFrame | None = None,
    params: CleanParams | None = None,
    now: datetime | None = None,
) -> CleanDay:
    """Clean one day of compressed rows (``bibev.schema.COMPRESSED_SCHEMA``).

    ``mappings`` is the provider's mapping, or one per provider name. ``previous`` and
    ``following`` are the compressed rows of the days before and after (or ``None``); only
    their ends are read. ``earlier`` (optional): compressed rows of earlier days of VINs
    without rows in ``previous`` (each VIN's latest day with rows, within
    ``params.gap_lookback_days``); only the instant of each VIN's last kept observation is
    taken from them (``silence_start``), to measure the silence before its first instant of
    the day in the quality record: they change no clean row. The flagged observations are
    computed once (they feed both the frame and the quality records) and returned too, for
    inspection.
    """
    params = params or CleanParams()
    since = None
    if earlier is not None:
        since = silence_start(earlier, mappings, day=day, params=params, now=now)
    observing = _observe(compressed, mappings, day, previous, following, params, now)
    stats = input_stats(conform_rows(compressed), mapped_keys(mappings))
    observed, day_stats = pl.collect_all([observing, stats])
    # In-memory from here: sorting and judging (windows over one sorted frame and its slices)
    # run slower in the streaming engine, and slower still in one query with the steps above;
    # chained as-of joins need their left frame to stay sorted, which the streaming engine has
    # been known not to keep (pola-rs/polars#27619).
    ordered = _in_order(observed.lazy())
    observations = _judge(ordered, mappings, params).collect(engine="in-memory")
    frame = widen(observations.lazy(), day=day, params=params).collect(engine="in-memory")
    quality = summarize(observations, day_stats, frame, day=day, params=params, since=since)
    return CleanDay(frame.lazy(), quality, observations)
