"""Session features: what each session did, computed from the clean rows inside it.

Every clean row belongs to the last session that started at or before it, so the rows of a
window are shared out without overlap. The SoC at a boundary is the value nearest to it (within
``gap_s``); the odometer a reading taken while the car stood still there, else the dead-reckoned
estimate (``rules.py``). A boundary inside a telemetry gap (an offline session's, the one an
extended session got, and the idle sessions' that share them) is where no reading can be: its
SoC and odometer are the ones the gap rules estimated there (``offline.py``: the odometer before
the gap plus the hidden distance driven before the boundary). A charge's energy is what the
counter added over its rows, plus what it says the charge added inside a gap
(``gap_energy_kwh``: ``offline.py``), where no row counts it. Sessions and rows may hold many
vehicles: every lookup is made within the session's vehicle (``join_asof(by="vin")``).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial, reduce
from typing import Any, Literal

import polars as pl

from bibev.pipeline.segment.params import DEFAULT_PARAMS, SegmentParams
from bibev.pipeline.segment.rules import (
    CHARGING,
    DRIVING,
    KINDS,
    divided,
    fresh,
    in_order_sum,
    seconds,
)
from bibev.pipeline.segment.sessions import settle
from bibev.schema import CHARGER_KINDS, UTC_US

SOURCES = ("provider", "physics", "both", "gap")
Strategy = Literal["backward", "forward", "nearest"]

#: One row per session: ``segments/YYYY/MM/DD/{VIN}.parquet`` and the ``segments`` table.
SEGMENT_SCHEMA: dict[str, pl.DataType] = {
    "vin": pl.String(),
    "segment_id": pl.String(),
    "day": pl.Date(),
    "kind": pl.Enum(KINDS),
    "start": UTC_US,
    "end": UTC_US,
    "duration_s": pl.Float64(),
    "soc_start": pl.Float64(),
    "soc_end": pl.Float64(),
    "odometer_start_km": pl.Float64(),
    "odometer_end_km": pl.Float64(),
    "distance_km": pl.Float64(),
    "energy_added_kwh": pl.Float64(),
    "charger_kind": pl.Enum(CHARGER_KINDS),
    "max_power_kw": pl.Float64(),
    "mean_power_kw": pl.Float64(),
    "temp_mean_c": pl.Float64(),
    "n_points": pl.Int64(),
    "source": pl.Enum(SOURCES),
    "offline": pl.Boolean(),
    "bridged_gap": pl.Boolean(),
    "estimated_start": pl.Boolean(),
    "estimated_end": pl.Boolean(),
    "open_start": pl.Boolean(),
    "open_end": pl.Boolean(),
}
#: The quality flags, in schema order.
FLAGS = ("offline", "bridged_gap", "estimated_start", "estimated_end", "open_start", "open_end")
#: As-of lookups stay within a vehicle. Both sides are sorted by VIN then time, which polars
#: cannot check when the lookup is grouped.
_PER_VEHICLE: dict[str, Any] = {"by": "vin", "check_sortedness": False}


def _readings(rows: pl.LazyFrame, column: str) -> pl.LazyFrame:
    return rows.filter(pl.col(column).is_not_null()).select(
        "vin", at=pl.col("ts"), value=pl.col(column)
    )


def _value_at(
    sessions: pl.LazyFrame, rows: pl.LazyFrame, at: str, *, column: str, gap_s: float
) -> pl.LazyFrame:
    """``sid, {column}@{at}``: the reading nearest to the instant ``at`` within
    ``gap_s``, else the last one before a start / the first one after an end. A session wholly
    inside a gap reads its start before the gap and its end after it (where the gap rules give
    no estimate: ``_gap_estimates``)."""
    readings = _readings(rows, column)
    probe = sessions.select("sid", "vin", "offline", pl.col(at).alias("t")).sort("vin", "t")

    def asof(strategy: Strategy, tolerance: timedelta | None, name: str) -> pl.LazyFrame:
        return probe.join_asof(
            readings,
            left_on="t",
            right_on="at",
            strategy=strategy,
            tolerance=tolerance,
            **_PER_VEHICLE,
        ).select("sid", pl.col("value").alias(name))

    outward: Strategy = "backward" if at == "start" else "forward"
    found = (
        probe.select("sid", "offline")
        .join(asof("nearest", timedelta(seconds=gap_s), "near"), on="sid")
        .join(asof(outward, None, "outward"), on="sid")
        .join(asof("backward" if at == "end" else "forward", None, "inward"), on="sid")
    )
    value = (
        pl.when(pl.col("offline"))
        .then(pl.col("outward"))
        .otherwise(pl.coalesce("near", "outward", "inward"))
    )
    return found.select("sid", value.alias(f"{column}@{at}"))


def _odometer_at(
    sessions: pl.LazyFrame, rows: pl.LazyFrame, at: str, parked_km: float = 0.02
) -> pl.LazyFrame:
    """``sid, odometer_km@{at}``. The odometer is read seldom, so the nearest
    reading taken while the car stood where it stood at ``at`` (the distance travelled in
    between, ``travel``, below ``parked_km``) is used; else the dead-reckoned ``odo``. A
    session wholly inside a gap reads its start before the gap and its end after it (where the
    gap rules give no estimate: ``_gap_estimates``)."""
    readings = rows.filter(fresh("odometer_km")).select(
        "vin", at=pl.col("ts"), value=pl.col("odometer_km"), moved=pl.col("travel")
    )
    probe = (
        sessions.select("sid", "vin", "offline", pl.col(at).alias("t"))
        .sort("vin", "t")
        .join_asof(
            rows.select("vin", at=pl.col("ts"), here=pl.col("travel"), odo=pl.col("odo")),
            left_on="t",
            right_on="at",
            **_PER_VEHICLE,
            strategy="backward",
        )
        .drop("at")
    )

    def side(strategy: Strategy) -> pl.LazyFrame:
        found = probe.join_asof(
            readings, left_on="t", right_on="at", strategy=strategy, **_PER_VEHICLE
        )
        same = (pl.col("moved") - pl.col("here")).abs() < parked_km
        return found.select(
            "sid",
            pl.when(same).then(pl.col("value")).alias(strategy),
            pl.when(same).then((pl.col("at") - pl.col("t")).abs()).alias(f"{strategy}_dt"),
        )

    outward = "backward" if at == "start" else "forward"
    nearer_after = pl.col("forward").is_not_null() & (
        pl.col("backward").is_null() | (pl.col("forward_dt") < pl.col("backward_dt"))
    )
    both = (
        probe.join(side("backward"), on="sid")
        .join(side("forward"), on="sid")
        .with_columns(
            value=pl.when(pl.col("offline"))
            .then(pl.coalesce(outward, "odo"))
            .when(nearer_after)
            .then(pl.col("forward"))
            .otherwise(pl.coalesce("backward", "odo"))
        )
    )
    return both.select("sid", pl.col("value").alias(f"odometer_km@{at}"))


def _energy(rows: pl.LazyFrame, sessions: pl.LazyFrame) -> pl.LazyFrame:
    """The increase of the energy counter over each session: the steps of the rows in
    (start, end], a step being what was added since the row before."""
    owners = sessions.select("sid", "vin", "start").sort("vin", "start")
    return (
        rows.select("vin", "ts", "e_step")
        .join_asof(
            owners,
            left_on="ts",
            right_on="start",
            **_PER_VEHICLE,
            strategy="backward",
            allow_exact_matches=False,
        )
        .with_columns(e_sum=in_order_sum(pl.col("e_step"), "sid"))
        .group_by("sid")
        .agg(energy_inc=pl.col("e_sum").last())
    )


def _row_stats(rows: pl.LazyFrame, sessions: pl.LazyFrame) -> pl.LazyFrame:
    """Aggregates of the rows each session holds (``n_points`` 0 for none)."""
    owners = sessions.select("sid", "vin", "start").sort("vin", "start")
    values = {
        "charge": pl.col("charging_power_kw"),
        "battery": divided((pl.col("pack_voltage_v") * pl.col("pack_current_a")).abs(), 1000.0),
        "temp": pl.mean_horizontal("battery_temp_min_c", "battery_temp_max_c"),
    }

    def mean(name: str) -> pl.Expr:
        count = pl.col(name).count()
        return pl.when(count > 0).then(pl.col(f"{name}_sum").last() / count)

    return (
        rows.join_asof(owners, left_on="ts", right_on="start", strategy="backward", **_PER_VEHICLE)
        .filter(pl.col("sid").is_not_null())
        .with_columns(**values)
        .with_columns(in_order_sum(pl.col(name), "sid").alias(f"{name}_sum") for name in values)
        .group_by("sid")
        .agg(
            n_points=pl.len().cast(pl.Int64),
            charge_max=pl.col("charge").max(),
            charge_mean=mean("charge"),
            battery_max=pl.col("battery").max(),
            battery_mean=mean("battery"),
            temp_mean_c=mean("temp"),
            dc_rows=(pl.col("charger_kind") == "dc").any(),
        )
    )


def _charger_kind(params: SegmentParams) -> pl.Expr:
    dc = (
        (pl.col("charger_hint") == "dc")
        | pl.col("dc_rows")
        | (pl.col("charge_max") > params.dc_power_kw)
    ).fill_null(False)
    kind = pl.when(pl.col("state") != CHARGING).then(pl.lit("none"))
    return kind.when(dc).then(pl.lit("dc")).otherwise(pl.lit("ac"))


def _gap_estimates() -> list[pl.Expr]:
    """The SoC and odometer at the boundaries inside gaps, as the gap rules estimated them:
    readings from either side of a gap would give a hidden charge the distance and the energy
    use of the hidden drives around it, and an extended drive none of its hidden distance."""
    return [
        pl.coalesce(f"gap_{name}_{at}", f"{column}@{at}").alias(f"{column}@{at}")
        for at in ("start", "end")
        for name, column in (("soc", "soc_pct"), ("odometer", "odometer_km"))
    ]


def _source() -> pl.Expr:
    provider, physics = pl.col("provider_n") > 0, pl.col("physics_n") > 0
    return (
        pl.when(pl.col("offline"))
        .then(pl.lit("gap"))
        .when(pl.col("state") == 0)
        .then(None)
        .when(provider & physics)
        .then(pl.lit("both"))
        .when(provider)
        .then(pl.lit("provider"))
        .otherwise(pl.lit("physics"))
    )


def session_features(
    sessions: pl.LazyFrame, rows: pl.LazyFrame, params: SegmentParams = DEFAULT_PARAMS
) -> pl.LazyFrame:
    """Sessions (``vin, state, start, end``, ``GAP_ESTIMATES``, flags, ``charger_hint``,
    ``gap_energy_kwh``, ``provider_n``, ``physics_n``) + the vehicles' labelled rows
    (``label_rows``: sorted by VIN and time) → ``SEGMENT_SCHEMA`` columns (without
    ``segment_id`` and ``day``), by VIN then start."""
    indexed = settle(sessions.sort("vin", "start").with_row_index("sid"))
    values = [
        probe(indexed, rows, at)
        for at in ("start", "end")
        for probe in (partial(_value_at, column="soc_pct", gap_s=params.gap_s), _odometer_at)
    ]
    charging, driving = pl.col("state") == CHARGING, pl.col("state") == DRIVING
    energy = pl.sum_horizontal("energy_inc", "gap_energy_kwh")
    return (
        reduce(lambda left, right: left.join(right, on="sid", how="left"), values, indexed)
        .drop("energy_inc", strict=False)
        .join(_row_stats(rows, indexed), on="sid", how="left")
        .join(_energy(rows, indexed), on="sid", how="left")
        .with_columns(_gap_estimates())
        .sort("sid")
        .select(
            "vin",
            kind=pl.col("state").replace_strict(dict(enumerate(KINDS)), return_dtype=pl.String),
            start=pl.col("start"),
            end=pl.col("end"),
            duration_s=seconds(pl.col("end") - pl.col("start")),
            soc_start=pl.col("soc_pct@start"),
            soc_end=pl.col("soc_pct@end"),
            odometer_start_km=pl.col("odometer_km@start"),
            odometer_end_km=pl.col("odometer_km@end"),
            distance_km=(pl.col("odometer_km@end") - pl.col("odometer_km@start")).clip(
                lower_bound=0.0
            ),
            energy_added_kwh=pl.when(charging & (energy > 0)).then(energy),
            charger_kind=_charger_kind(params),
            max_power_kw=pl.when(charging)
            .then(pl.col("charge_max"))
            .when(driving)
            .then(pl.col("battery_max")),
            mean_power_kw=pl.when(charging)
            .then(pl.col("charge_mean"))
            .when(driving)
            .then(pl.col("battery_mean")),
            temp_mean_c=pl.col("temp_mean_c"),
            n_points=pl.col("n_points").fill_null(0),
            source=_source(),
            **{flag: pl.col(flag).fill_null(False) for flag in FLAGS},
        )
    )
