"""``clean_frame``: one day of compressed rows → the clean frame and its quality records.

Pure: frames in, frames out; the day, the thresholds and (optionally) "now" are arguments.
The steps, in order:

1. ``gather_rows``: the day's rows, the previous day's tail, the next day's head;
2. ``observe``: the provider's mapping, clocks fixed (``future_ts`` dropped);
3. one deterministic order, then the judging steps: ``duplicate``, ranges, preference among
   keys (``superseded``), SoC spikes, odometer spikes and backwards steps;
4. ``widen``: one row per instant of the day, values carried forward within their age limit,
   charger kind, power and energy resolved;
5. ``summarize``: the quality record per VIN.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

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
    gather_rows,
    mapped_keys,
    mapping_levels,
    observe,
)
from .params import CleanParams
from .quality import QualityRecord, input_stats, summarize
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
    """Every canonical observation around ``day``, in ``ORDER``, with ``reason`` set on the
    ones not used (null on the kept ones). See the module doc for the steps."""
    params = params or CleanParams()
    rows = gather_rows(compressed, day=day, previous=previous, following=following, params=params)
    frame = observe(rows, mappings, day=day, params=params, now=now).sort(
        list(ORDER), nulls_last=True
    )
    frame = reject_duplicates(frame)
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
    and one quality record per VIN."""

    frame: pl.LazyFrame
    quality: list[QualityRecord]
    observations: pl.DataFrame


def clean_frame(
    compressed: pl.LazyFrame | pl.DataFrame,
    mappings: Mappings,
    *,
    day: date,
    previous: pl.LazyFrame | pl.DataFrame | None = None,
    following: pl.LazyFrame | pl.DataFrame | None = None,
    params: CleanParams | None = None,
    now: datetime | None = None,
) -> CleanDay:
    """Clean one day of compressed rows (``bibev.schema.COMPRESSED_SCHEMA``).

    ``mappings`` is the provider's mapping, or one per provider name. ``previous`` and
    ``following`` are the compressed rows of the days before and after (or ``None``); only
    their ends are read. The flagged observations are computed once (they feed both the frame
    and the quality records) and returned too, for inspection.
    """
    params = params or CleanParams()
    flagged = flag_observations(
        compressed,
        mappings,
        day=day,
        previous=previous,
        following=following,
        params=params,
        now=now,
    )
    stats = input_stats(conform_rows(compressed), mapped_keys(mappings))
    observations, day_stats = pl.collect_all([flagged, stats])
    # In-memory: chained as-of joins need their left frame to stay sorted, which the streaming
    # engine has been known not to keep (pola-rs/polars#27619); here it costs nothing.
    frame = widen(observations.lazy(), day=day, params=params).collect(engine="in-memory")
    quality = summarize(observations, day_stats, frame, day=day, params=params)
    return CleanDay(frame.lazy(), quality, observations)
