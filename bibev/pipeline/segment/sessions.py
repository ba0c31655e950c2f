"""Session rules: labelled rows → runs of one state → the charging and driving sessions.

A *run* is a stretch of consecutive rows in one state inside one telemetry period. Runs are few
(tens a day), so the rules work on a small frame, in this order:

1. a stop shorter than ``min_stop_s`` between two drives belongs to the drive;
2. a drive shorter than ``min_drive_s``, a drive that never moved ``min_drive_km``, a charge
   shorter than ``min_charge_s`` and a charge with no physics at all (the power was reported
   and never crossed the threshold, the SoC and the energy counter did not rise) become idle;
3. a pause shorter than ``max_charge_pause_s`` between two charges belongs to the charge;
4. a drive continues across a telemetry gap up to ``bridge_drive_s`` long when the car drives on
   both sides and did not charge meanwhile; a charge continues across a gap of any length when
   the car charges on both sides and did not drive meanwhile (``bridged_gap``).

A run ends where the next one starts (the instant the state changed), or at its last row when a
telemetry gap follows. What happened inside the gaps that remain is read from the SoC and
odometer jumps across them (``offline.py``). Idle is what is left between sessions.

The frames may hold many vehicles: runs keep their ``vin``, periods and chains never span two
vehicles, and a rule that reads the run before or after looks only within the vehicle.
"""

from __future__ import annotations

import polars as pl

from bibev.pipeline.segment.params import DEFAULT_PARAMS, SegmentParams
from bibev.pipeline.segment.rules import (
    CHARGING,
    DRIVING,
    IDLE,
    in_order_sum,
    seconds,
    shifted,
)


def _first_seen(name: str) -> pl.Expr:
    return pl.col(name).drop_nulls().first()


def _last_seen(name: str) -> pl.Expr:
    return pl.col(name).drop_nulls().last()


def _capacity() -> pl.Expr:
    """Usable capacity (kWh at 100 %) implied by the energy content the car reports."""
    usable = pl.col("soc_pct") > 10
    return (pl.col("energy_remaining_kwh") / pl.col("soc_pct") * 100.0).filter(usable).median()


def runs(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Labelled rows (``rules.label_rows``) → one row per run, with what the rules need."""
    change = (pl.col("state") != pl.col("state").shift()) | (
        pl.col("period") != pl.col("period").shift()
    )
    return (
        rows.with_columns(
            run=change.fill_null(True).cast(pl.Int32).cum_sum(),
            next_ts=shifted(pl.col("ts"), -1),
        )
        .with_columns(e_sum=in_order_sum(pl.col("e_step"), "run"))
        .group_by("run", maintain_order=True)
        .agg(
            vin=pl.col("vin").first(),
            state=pl.col("state").first(),
            period=pl.col("period").first(),
            start=pl.col("ts").first(),
            last=pl.col("ts").last(),
            n=pl.len(),
            soc_first=pl.col("soc").first(),
            soc_last=pl.col("soc").last(),
            soc_seen=_first_seen("soc_pct"),
            odo_first=pl.col("odo").first(),
            odo_last=pl.col("odo").last(),
            odo_seen=pl.coalesce("odo", "odo_next").first(),
            reckoned_first=pl.col("until_reading").first(),
            odo_step=pl.col("odo_step_km").max(),
            lat_first=_first_seen("lat"),
            lon_first=_first_seen("lon"),
            lat_last=_last_seen("lat"),
            lon_last=_last_seen("lon"),
            reckoned_last=pl.col("since_reading").last(),
            energy_first=pl.col("energy").first(),
            energy_last=pl.col("energy").last(),
            energy_seen=_first_seen("energy_added_kwh"),
            energy_inc=pl.col("e_sum").last(),
            power_max=pl.col("charging_power_kw").max(),
            powered_last=_last_seen("by_power"),
            moved_last_at=pl.col("ts").filter(pl.col("moving") | pl.col("by_gear")).last(),
            power_off_at=pl.col("next_ts").filter(pl.col("by_power")).last(),
            power_known=pl.col("charging_power_kw").is_not_null().any(),
            by_power_any=pl.col("by_power").fill_null(False).any(),
            moving_any=pl.col("moving").fill_null(False).any(),
            moving_known=pl.col("moving").is_not_null().any(),
            gear_known=pl.col("by_gear").is_not_null().any(),
            provider_n=pl.col("by_provider").cast(pl.Int32).sum(),
            physics_n=pl.col("by_physics").cast(pl.Int32).sum(),
            kind_dc=(pl.col("kind_now") == "dc").fill_null(False).any(),
            capacity=_capacity(),
        )
        .with_columns(
            chain=pl.col("period"),
            period_end=pl.col("period"),
            bridged=pl.lit(False),
        )
        .drop("run")
    )


_MERGE = (
    pl.col("vin").first(),
    pl.col("state").first(),
    pl.col("period").first(),
    pl.col("period_end").last(),
    pl.col("chain").first(),
    pl.col("start").first(),
    pl.col("last").last(),
    pl.col("n").sum(),
    pl.col("soc_first").first(),
    pl.col("soc_last").last(),
    _first_seen("soc_seen"),
    pl.col("odo_first").first(),
    pl.col("odo_last").last(),
    _first_seen("odo_seen"),
    pl.col("reckoned_first").first(),
    pl.col("odo_step").max(),
    _first_seen("lat_first"),
    _first_seen("lon_first"),
    _last_seen("lat_last"),
    _last_seen("lon_last"),
    pl.col("reckoned_last").last(),
    pl.col("energy_first").first(),
    pl.col("energy_last").last(),
    _first_seen("energy_seen"),
    pl.col("energy_inc").last(),  # the in-order sum (``coalesce``)
    pl.col("power_max").max(),
    _last_seen("powered_last"),
    pl.col("moved_last_at").max(),
    pl.col("power_off_at").max(),
    pl.col("power_known").any(),
    pl.col("by_power_any").any(),
    pl.col("moving_any").any(),
    pl.col("moving_known").any(),
    pl.col("gear_known").any(),
    pl.col("provider_n").sum(),
    pl.col("physics_n").sum(),
    pl.col("kind_dc").any(),
    pl.col("capacity").median(),
    pl.col("bridged").any(),
)


def with_ends(runs: pl.LazyFrame) -> pl.LazyFrame:
    """``end`` and ``duration_s``. A run ends where the next one in its chain starts, else at
    its last row; a drive seen without a gear ends at its last row that moved (position fixes
    tell that the car moved up to the fix, not after it); a charge whose power was seen to fall
    while the state still said charging ends where the power fell (the state lagged)."""
    same = pl.col("chain").shift(-1) == pl.col("chain")
    end = pl.when(same).then(pl.col("start").shift(-1)).otherwise(pl.col("last"))
    off = pl.col("power_off_at")
    lagged = (
        (pl.col("state") == CHARGING)
        & ~pl.col("powered_last")
        & (off > pl.col("start"))
        & (off < pl.col("end"))
    ).fill_null(False)
    moved = pl.col("moved_last_at")
    stopped = (
        (pl.col("state") == DRIVING)
        & ~pl.col("gear_known")
        & (moved > pl.col("start"))
        & (moved < pl.col("end"))
    )
    return (
        runs.with_columns(end=end)
        .with_columns(
            end=pl.when(lagged)
            .then(off)
            .when(stopped.fill_null(False))
            .then(moved)
            .otherwise(pl.col("end"))
        )
        .with_columns(duration_s=seconds(pl.col("end") - pl.col("start")))
    )


def computed(frame: pl.LazyFrame) -> pl.DataFrame:
    """``frame`` collected by the in-memory engine, which runs these many small queries (a
    batch holds tens of thousands of rows, its runs a few thousand) faster than the streaming
    one. The result is the same with either: sums are added in row order (``in_order_sum``)
    and divisions by a constant are products (``divided``), whatever the chunks."""
    return frame.collect(engine="in-memory")


def settle(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Run-level frames are small (tens of rows a vehicle): computing them between rules keeps
    each query plan small (a rule reads its input several times, and plans would otherwise
    nest)."""
    return computed(frame).lazy()


def coalesce(runs: pl.LazyFrame) -> pl.LazyFrame:
    """Merge neighbouring runs of one state in one chain."""
    change = (pl.col("state") != pl.col("state").shift()) | (
        pl.col("chain") != pl.col("chain").shift()
    )
    merged = (
        runs.with_columns(group=change.fill_null(True).cast(pl.Int32).cum_sum())
        .with_columns(energy_inc=in_order_sum(pl.col("energy_inc"), "group"))
        .group_by("group", maintain_order=True)
        .agg(*_MERGE)
        .drop("group")
    )
    return settle(with_ends(merged))


def _between(state: int, around: int, limit: float) -> pl.Expr:
    """A run of ``state`` shorter than ``limit`` between two runs of ``around``, no gap."""
    chain = pl.col("chain")
    return (
        (pl.col("state") == state)
        & (pl.col("state").shift(1) == around)
        & (pl.col("state").shift(-1) == around)
        & (chain.shift(1) == chain)
        & (chain.shift(-1) == chain)
        & (pl.col("duration_s") < limit)
    ).fill_null(False)


def _any(runs: pl.LazyFrame, condition: pl.Expr) -> bool:
    return bool(computed(runs.select(condition.any())).item())


def _relabel(runs: pl.LazyFrame, condition: pl.Expr, state: int) -> pl.LazyFrame:
    """Runs where ``condition`` holds take ``state`` (``runs`` is settled: a rule that
    changes nothing costs one small query)."""
    if not _any(runs, condition):
        return runs
    relabelled = runs.with_columns(
        state=pl.when(condition).then(pl.lit(state, pl.Int8)).otherwise(pl.col("state"))
    )
    return coalesce(relabelled)


def _noise(params: SegmentParams) -> pl.Expr:
    distance = (pl.col("odo_last") - pl.col("odo_first")).abs().fill_null(0.0)
    drive = pl.col("state") == DRIVING
    charge = pl.col("state") == CHARGING
    still = pl.col("moving_known") & ~pl.col("moving_any") & (distance < params.min_drive_km)
    rose = (pl.col("soc_last") - pl.col("soc_first")).fill_null(0.0) >= 1.0
    phantom = pl.col("power_known") & ~pl.col("by_power_any") & ~rose
    phantom = phantom & (pl.col("energy_inc") <= 0.1)
    return (
        (drive & ((pl.col("duration_s") < params.min_drive_s) | still))
        | (charge & ((pl.col("duration_s") < params.min_charge_s) | phantom))
    ).fill_null(False)


def _bridge(params: SegmentParams) -> pl.Expr:
    """Whether a run (the first of its period) continues the previous run across the gap."""
    new_period = pl.col("period") != shifted(pl.col("period_end"))
    same = pl.col("state") == shifted(pl.col("state"))
    gap = seconds(pl.col("start") - shifted(pl.col("last")))
    soc_rise = pl.col("soc_seen").fill_null(pl.col("soc_first")) - shifted(pl.col("soc_last"))
    odo_rise = pl.col("odo_seen").fill_null(pl.col("odo_first")) - shifted(pl.col("odo_last"))
    drive = (
        (pl.col("state") == DRIVING)
        & (gap <= params.bridge_drive_s)
        & (soc_rise.fill_null(0.0) <= params.soc_jump_pct)
    )
    charge = (
        (pl.col("state") == CHARGING)
        & (soc_rise.fill_null(0.0) >= -params.soc_jump_pct)
        & (odo_rise.fill_null(0.0) <= params.odometer_jump_km)
    )
    return (new_period & same & (drive | charge)).fill_null(False)


def bridge_gaps(runs: pl.LazyFrame, params: SegmentParams) -> pl.LazyFrame:
    """Join runs across the telemetry gaps a session continued through (rule 4)."""
    bridge = _bridge(params)
    if not _any(runs, bridge):
        return runs
    new_chain = (pl.col("period") != shifted(pl.col("period_end"))).fill_null(True) & ~bridge
    joined = runs.with_columns(
        bridged=pl.col("bridged") | bridge | shifted(bridge, -1).fill_null(False),
        chain=new_chain.cast(pl.Int32).cum_sum(),
    )
    return coalesce(joined)


def session_runs(rows: pl.LazyFrame, params: SegmentParams = DEFAULT_PARAMS) -> pl.LazyFrame:
    """Labelled rows → coalesced runs after rules 1–4 (idle runs included)."""
    current = settle(with_ends(runs(rows)))
    current = _relabel(current, _between(IDLE, DRIVING, params.min_stop_s), DRIVING)
    current = _relabel(current, _noise(params), IDLE)
    current = _relabel(current, _between(IDLE, CHARGING, params.max_charge_pause_s), CHARGING)
    return bridge_gaps(current, params)
