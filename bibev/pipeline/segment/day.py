"""The segmentation of vehicles, end to end: clean rows → sessions with features.

``segment_series`` cuts whole series (any span); ``segment_day`` keeps the sessions that start
on one UTC day, which is how a (VIN, day) partition is written: its input is the day with the
days around it (``run.py``), so a session crossing midnight is seen whole and belongs to the
day it starts on. Sessions tile each vehicle's series from its first row to its last: idle is
everything between the charging and driving sessions.

The input may hold one vehicle or many (a batch of a day's VINs): every step works per
vehicle, and each vehicle's sessions are exactly those it gets alone.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from bibev.pipeline.segment.features import SEGMENT_SCHEMA, session_features
from bibev.pipeline.segment.offline import (
    GAP_ESTIMATES,
    extend_runs,
    offline_sessions,
    read_gaps,
)
from bibev.pipeline.segment.params import DEFAULT_PARAMS, SegmentParams
from bibev.pipeline.segment.rules import IDLE, label_rows, shifted
from bibev.pipeline.segment.sessions import computed, session_runs, settle


def active_sessions(
    rows: pl.LazyFrame, params: SegmentParams = DEFAULT_PARAMS, runs: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Labelled rows → the charging and driving sessions, observed and offline, in time order
    and never overlapping (a later session starts no earlier than the one before ends).
    ``runs``: their ``session_runs``, when already computed."""
    runs = session_runs(rows, params) if runs is None else runs
    gaps = settle(read_gaps(runs, params))
    observed = (
        extend_runs(runs, gaps)
        .filter(pl.col("state") != IDLE)
        .select(
            "vin",
            "state",
            "start",
            "end",
            *GAP_ESTIMATES,
            offline=pl.lit(False),
            bridged_gap=pl.col("bridged"),
            estimated_start=pl.col("estimated_start"),
            estimated_end=pl.col("estimated_end"),
            charger_hint=pl.when(pl.col("kind_dc")).then(pl.lit("dc")),
            gap_energy_kwh=pl.col("gap_energy_kwh"),
            provider_n=pl.col("provider_n"),
            physics_n=pl.col("physics_n"),
        )
    )
    hidden = offline_sessions(gaps, params).select(
        "vin",
        "state",
        "start",
        "end",
        *GAP_ESTIMATES,
        offline=pl.lit(True),
        bridged_gap=pl.lit(False),
        estimated_start=pl.lit(True),
        estimated_end=pl.lit(True),
        charger_hint=pl.col("charger_hint"),
        gap_energy_kwh=pl.col("gap_energy_kwh"),
        provider_n=pl.lit(0, pl.Int32),
        physics_n=pl.lit(0, pl.Int32),
    )
    ordered = pl.concat([observed, hidden], how="vertical_relaxed").sort("vin", "start", "end")
    floor = pl.col("end").shift(1).cum_max().over("vin")
    return settle(
        ordered.with_columns(start=pl.max_horizontal("start", floor)).filter(
            pl.col("end") > pl.col("start")
        )
    )


def with_idle(active: pl.LazyFrame, rows: pl.LazyFrame) -> pl.LazyFrame:
    """``active`` plus the idle sessions between them, from each vehicle's first row to its
    last; the sessions at either end are flagged ``open_start``/``open_end`` (cut by the
    data). An idle session shares the gap estimates (``GAP_ESTIMATES``) of the boundaries it
    shares with the sessions around it."""
    bounds = rows.group_by("vin").agg(first=pl.col("ts").min(), last=pl.col("ts").max())
    sentinel = bounds.select(
        "vin", state=pl.lit(-1, pl.Int8), start=pl.col("last"), end=pl.col("last")
    )
    edges = (
        pl.concat(
            [active.select("vin", "state", "start", "end", *GAP_ESTIMATES), sentinel],
            how="diagonal_relaxed",
        )
        .join(bounds, on="vin")
        .sort("vin", "start", "end")
    )
    idle = (
        edges.with_columns(idle_start=shifted(pl.col("end")).fill_null(pl.col("first")))
        .filter(pl.col("start") > pl.col("idle_start"))
        .select(
            "vin",
            state=pl.lit(IDLE, pl.Int8),
            start=pl.col("idle_start"),
            end=pl.col("start"),
            gap_odometer_start=shifted(pl.col("gap_odometer_end")),
            gap_soc_start=shifted(pl.col("gap_soc_end")),
            gap_odometer_end=pl.col("gap_odometer_start"),
            gap_soc_end=pl.col("gap_soc_start"),
        )
    )
    return (
        pl.concat([active, idle], how="diagonal_relaxed")
        .join(bounds, on="vin")
        .with_columns(
            open_start=pl.col("start") <= pl.col("first"),
            open_end=pl.col("end") >= pl.col("last"),
        )
        .drop("first", "last")
        .sort("vin", "start")
    )


def segment_series(clean: pl.LazyFrame, params: SegmentParams = DEFAULT_PARAMS) -> pl.LazyFrame:
    """Clean rows (``bibev.schema.CLEAN_SCHEMA``) of one vehicle or many, in any order → their
    sessions with features (``SEGMENT_SCHEMA`` without ``segment_id`` and ``day``), by VIN
    then start."""
    return _series(clean, params)[0]


def _series(clean: pl.LazyFrame, params: SegmentParams) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """``segment_series`` and the ``chain_reach`` of the rows."""
    labelled = computed(label_rows(clean, params))
    if labelled.height == 0:
        empty = {k: v for k, v in SEGMENT_SCHEMA.items() if k not in ("segment_id", "day")}
        return pl.LazyFrame(schema=empty), chain_reach(pl.LazyFrame(schema=_RUN_BOUNDS))
    rows = labelled.lazy()
    runs = session_runs(rows, params)
    sessions = with_idle(active_sessions(rows, params, runs), rows)
    return settle(session_features(sessions, rows, params)), chain_reach(runs)


_RUN_BOUNDS = {
    "vin": pl.String(),
    "chain": pl.Int32(),
    "start": pl.Datetime("us", "UTC"),
    "last": pl.Datetime("us", "UTC"),
}


def chain_reach(runs: pl.LazyFrame) -> pl.DataFrame:
    """Per VIN of ``runs``, the start of its second chain (``inner_start``) and the last row of
    its last but one (``inner_last``); null with a single chain.

    A chain is a stretch of rows without a telemetry gap (a session continued across one
    joins two). What is laid inside a gap is read from the whole chains on both sides of it
    (``offline.gap_sides``), so the sessions from the first chain's gap to the second chain's
    start, and those from the last but one chain's end on, may change with rows beyond the
    ones given: the first and last chains may be cut."""
    chains = runs.group_by("vin", "chain").agg(
        start=pl.col("start").min(), last=pl.col("last").max()
    )
    return computed(
        chains.group_by("vin").agg(
            inner_start=pl.col("start").sort().slice(1, 1).first(),
            inner_last=pl.col("last").sort(descending=True).slice(1, 1).first(),
        )
    )


def segment_id(vin: str, kind: str, start: datetime) -> str:
    """A stable id: the same session always gets the same id, whatever the run."""
    text = f"{vin}|{kind}|{start.isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _segment_ids(sessions: pl.Series) -> pl.Series:
    """``segment_id`` of each (vin, kind, start) struct: one Python call for the whole column."""
    ids = [segment_id(s["vin"], s["kind"], s["start"]) for s in sessions.to_list()]
    return pl.Series(ids, dtype=pl.String)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def sessions_of_day(sessions: pl.LazyFrame, day: date) -> pl.LazyFrame:
    """The sessions that start on ``day`` (UTC), with ``day`` and ``segment_id``."""
    lo, hi = day_bounds(day)
    ids = pl.struct("vin", "kind", "start").map_batches(
        _segment_ids, return_dtype=pl.String, is_elementwise=True
    )
    return (
        sessions.filter((pl.col("start") >= lo) & (pl.col("start") < hi))
        .with_columns(kind=pl.col("kind").cast(pl.String))
        .with_columns(segment_id=ids, day=pl.lit(day, pl.Date))
        .select([pl.col(name).cast(dtype) for name, dtype in SEGMENT_SCHEMA.items()])
    )


def segment_day(
    clean: pl.LazyFrame, day: date, params: SegmentParams = DEFAULT_PARAMS
) -> pl.LazyFrame:
    """The sessions of each vehicle in ``clean`` that start on ``day``; ``clean`` should hold
    the days around it too (at least the day before and the day after) so that sessions
    crossing midnight are seen whole."""
    return sessions_of_day(segment_series(clean, params), day)


def segment_day_reach(
    clean: pl.LazyFrame, day: date, params: SegmentParams = DEFAULT_PARAMS
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``segment_day`` (computed) and the ``chain_reach`` of ``clean``: whether the rows given
    were enough for the day's sessions."""
    sessions, reach = _series(clean, params)
    return sessions_of_day(sessions, day).collect(), reach
