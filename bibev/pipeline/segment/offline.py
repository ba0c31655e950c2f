"""What happened inside telemetry gaps: charges and drives seen only by their effect.

A gap that the session rules did not bridge is read from the SoC, the odometer and the position
on both sides. The odometer rose more than ``odometer_jump_km``, plus ``reckoning_slack`` of the
distance dead-reckoned since the last reading (which can fall short), plus the odometer's
resolution (1 km when it reads whole kilometres): the car drove. The SoC rose more than
``soc_jump_pct`` (after adding back what the hidden driving used): it charged.

The hidden sessions are then laid out in their natural order, from the start of the gap (a car
that goes dark while active has lost its connection and carries on):

1. a drive seen before the gap goes on into it, a drive seen after it started inside it (half
   the hidden distance each when both), at their own average speed or that of a typical trip
   of their length (``offline_drive_kmh``), whichever is faster;
2. a charge seen before the gap goes on into it, a charge seen after it started inside it, at
   their own observed rate; otherwise the charge is an *offline charge* of its own, starting
   ``offline_stop_s`` after the car stopped and lasting as long as the SoC rise takes at
   ``offline_charge_kw`` on the reported (else the default) capacity, half as fast above
   ``taper_soc_pct``;
3. hidden driving around an offline charge: when the car ends up where the drive before the gap
   started (within ``return_radius_km``) it went out and came back, half the distance each way,
   the way back ``offline_stop_s`` after the charge; otherwise it drove there first and charged;
4. a hidden drive with no charge and no drive on either side ends with the gap (a parked car
   that goes dark is asleep; it woke up to drive and was seen again on arrival).

Nothing is placed beyond the gap. Offline sessions carry ``offline=True``; extended sessions
``estimated_end`` or ``estimated_start``. A charge extended into or out of a gap, and an offline
charge, gets the energy the counter says it added inside the gap (``_gap_energy``), which no
row counts. Every boundary inside a gap carries its odometer, the
one before the gap plus the hidden distance driven before the boundary (a charge drives none,
a drive its share), and its SoC by the same estimate that found the charge: the SoC before the
gap less what the hidden driving before the boundary used, or, once the hidden charge is behind
it, the SoC after the gap plus what the hidden driving after it used. A hidden charge thus rises
by exactly the points the rule found. Without a hidden charge, a drive extended into the gap
reads from its own side and an offline drive runs from the SoC before the gap to the SoC after
it.

Only the runs on each side of a gap are read, so an estimate does not depend on how much history
was loaded. A gap is between two chains of one vehicle (chains never span two), so the runs may
hold many vehicles.
"""

from __future__ import annotations

import polars as pl

from bibev.pipeline.segment.params import DEFAULT_PARAMS, SegmentParams
from bibev.pipeline.segment.rules import CHARGING, DRIVING, divided, seconds

#: What a session learns from the gap rules about each boundary inside a gap: the odometer and
#: the SoC estimated there (null when it is not inside a gap).
GAP_ESTIMATES = ("gap_odometer_start", "gap_odometer_end", "gap_soc_start", "gap_soc_end")
#: The sessions the gap rules add (before their features are computed).
OFFLINE_COLUMNS = (
    "vin",
    "state",
    "start",
    "end",
    "charger_hint",
    "gap_energy_kwh",
    *GAP_ESTIMATES,
)
_KM_PER_DEG = 111.2


def _hours() -> pl.Expr:
    return divided(pl.col("duration_s"), 3600.0)


def _run_speed(params: SegmentParams) -> pl.Expr:
    """Average km/h of a drive observed long enough to tell (its first minutes in town say
    little about the rest of a trip); null otherwise."""
    speed = (pl.col("odo_last") - pl.col("odo_first")) / _hours()
    long_enough = pl.col("duration_s") >= params.speed_sample_s
    drive = (pl.col("state") == DRIVING) & long_enough
    return pl.when(drive & (speed > params.moving_speed_kmh)).then(speed)


def _run_rate(params: SegmentParams) -> pl.Expr:
    """SoC percentage points per hour of a charge: observed, else from its power."""
    rise = pl.col("soc_last") - pl.col("soc_first")
    observed = pl.when((pl.col("duration_s") >= 300) & (rise >= 1.0)).then(rise / _hours())
    capacity = pl.col("capacity").fill_null(params.default_capacity_kwh)
    from_power = pl.col("power_max") / capacity * 100.0
    rate = pl.coalesce(observed, pl.when(from_power > 0).then(from_power))
    return pl.when(pl.col("state") == CHARGING).then(rate)


def _per_km() -> pl.Expr:
    """SoC points a drive used per km (null for short or non-drives)."""
    km = pl.col("odo_last") - pl.col("odo_first")
    used = pl.col("soc_first") - pl.col("soc_last")
    return pl.when((pl.col("state") == DRIVING) & (km >= 5.0) & (used > 0)).then(used / km)


def _apart_km(lat1: str, lon1: str, lat2: str, lon2: str) -> pl.Expr:
    dy = (pl.col(lat2) - pl.col(lat1)) * _KM_PER_DEG
    cos = divided(pl.col(lat1) * 3.141592653589793, 180.0).cos()
    dx = (pl.col(lon2) - pl.col(lon1)) * _KM_PER_DEG * cos
    return (dx.pow(2) + dy.pow(2)).sqrt()


def gap_sides(runs: pl.LazyFrame, params: SegmentParams) -> pl.LazyFrame:
    """One row per gap between two chains of a vehicle: the run before it (``*_a``) and after
    it (``*_b``)."""
    described = runs.with_columns(
        speed=_run_speed(params), rate=_run_rate(params), per_km=_per_km()
    )
    before = described.group_by("vin", "chain", maintain_order=True).agg(
        state_a=pl.col("state").last(),
        ts_a=pl.col("last").last(),
        soc_a=pl.col("soc_last").last(),
        odo_a=pl.col("odo_last").last(),
        reckoned_a=pl.col("reckoned_last").last(),
        odo_step_a=pl.col("odo_step").max(),
        energy_a=pl.col("energy_last").last(),
        speed_a=pl.col("speed").last(),
        dist_a=(pl.col("odo_last") - pl.col("odo_first")).last(),
        rate_a=pl.col("rate").last(),
        per_km_a=pl.col("per_km").drop_nulls().last(),
        capacity_a=pl.col("capacity").drop_nulls().last(),
        dc_a=pl.col("kind_dc").last(),
        lat_a0=pl.col("lat_first").last(),
        lon_a0=pl.col("lon_first").last(),
        lat_a=pl.col("lat_last").drop_nulls().last(),
        lon_a=pl.col("lon_last").drop_nulls().last(),
    )
    after = described.group_by("vin", "chain", maintain_order=True).agg(
        state_b=pl.col("state").first(),
        ts_b=pl.col("start").first(),
        soc_b=pl.col("soc_seen").drop_nulls().first(),
        odo_b=pl.col("odo_seen").drop_nulls().first(),
        reckoned_b=pl.col("reckoned_first").first(),
        odo_step_b=pl.col("odo_step").max(),
        energy_b=pl.col("energy_seen").drop_nulls().first(),
        energy_first_b=pl.col("energy_first").first(),
        speed_b=pl.col("speed").first(),
        dist_b=(pl.col("odo_last") - pl.col("odo_first")).first(),
        rate_b=pl.col("rate").first(),
        per_km_b=pl.col("per_km").drop_nulls().first(),
        capacity_b=pl.col("capacity").drop_nulls().first(),
        dc_b=pl.col("kind_dc").first(),
        lat_b=pl.col("lat_first").drop_nulls().first(),
        lon_b=pl.col("lon_first").drop_nulls().first(),
    )
    following = after.with_columns(chain=pl.col("chain") - 1)
    return before.join(following, on=["vin", "chain"], how="inner").sort("chain")


def _charge(params: SegmentParams) -> list[pl.Expr]:
    """The hidden distance, the SoC points a km of it used (``soc_per_km``: the drive seen on
    either side, else ``drive_soc_per_km``), the points charged in the gap with that driving
    added back, and how long they took at the best rate known (points above ``taper_soc_pct``
    at half the rate, as cells charge in their constant-voltage phase)."""
    km = (pl.col("odo_b") - pl.col("odo_a")).clip(lower_bound=0.0).fill_null(0.0)
    reckoned = pl.col("reckoned_a").fill_null(0.0) + pl.col("reckoned_b").fill_null(0.0)
    resolution = pl.max_horizontal("odo_step_a", "odo_step_b").fill_null(0.0)
    slack = params.odometer_jump_km + params.reckoning_slack * reckoned + resolution
    driven = km > slack
    km = pl.when(driven).then(km).otherwise(0.0)
    per_km = pl.coalesce("per_km_a", "per_km_b", pl.lit(params.drive_soc_per_km))
    charged = (pl.col("soc_b") - pl.col("soc_a")).fill_null(0.0) + km * per_km
    capacity = pl.coalesce("capacity_a", "capacity_b", pl.lit(params.default_capacity_kwh))
    assumed = params.offline_charge_kw / capacity * 100.0
    a, b = pl.col("state_a") == CHARGING, pl.col("state_b") == CHARGING
    rate = pl.when(a).then(pl.col("rate_a")).when(b).then(pl.col("rate_b")).fill_null(assumed)
    top = pl.col("soc_b").fill_null(0.0)
    tapered = (top - pl.max_horizontal(pl.lit(params.taper_soc_pct), top - charged)).clip(
        lower_bound=0.0
    )
    return [
        km.alias("km"),
        per_km.alias("soc_per_km"),
        charged.alias("charged_pp"),
        (charged > params.soc_jump_pct).alias("charged"),
        ((charged + tapered) / rate * 3600.0).alias("charge_s"),
        capacity.alias("capacity"),
    ]


def _legs(params: SegmentParams) -> list[pl.Expr]:
    """How the hidden distance splits: the end of drive A (``km_a``), the start of drive B
    (``km_b``), a way out before the hidden charge (``km_out``) and a way back (``km_back``)."""
    km = pl.col("km")
    a_drive, b_drive = pl.col("state_a") == DRIVING, pl.col("state_b") == DRIVING
    a_charge, b_charge = pl.col("state_a") == CHARGING, pl.col("state_b") == CHARGING
    charged = pl.col("charged")
    near = params.return_radius_km
    came_back_a = charged & (_apart_km("lat_a0", "lon_a0", "lat_b", "lon_b") < near)
    came_back = charged & (_apart_km("lat_a", "lon_a", "lat_b", "lon_b") < near)
    observed = pl.col("dist_a").fill_null(0.0)
    way_out = ((observed + km) / 2.0 - observed).clip(0.0, km)
    km_a = (
        pl.when(a_drive & b_drive)
        .then(km / 2.0)
        .when(a_drive & came_back_a.fill_null(False))
        .then(way_out)
        .when(a_drive)
        .then(km)
        .otherwise(0.0)
    )
    km_b = pl.when(b_drive).then(km - km_a).otherwise(0.0)
    rest = km - km_a - km_b
    own_charge = charged & ~a_charge & ~b_charge
    km_out = (
        pl.when(a_drive | b_drive)
        .then(0.0)
        .when(own_charge & came_back.fill_null(False))
        .then(rest / 2.0)
        .when(own_charge | b_charge)
        .then(rest)
        .otherwise(0.0)
    )
    return [
        km_a.alias("km_a"),
        km_b.alias("km_b"),
        km_out.alias("km_out"),
        (rest - km_out).alias("km_back"),
    ]


def _trip_speed(km: pl.Expr, params: SegmentParams) -> pl.Expr:
    """Typical average speed of a trip of ``km`` (longer trips reach faster roads):
    ``offline_drive_kmh`` at 10 km, growing with the square root of the distance, between
    0.6 and 2 times that."""
    factor = divided(km.clip(lower_bound=0.0), 10.0).sqrt().clip(0.6, 2.0)
    return factor * params.offline_drive_kmh


def _drive_times(params: SegmentParams) -> list[pl.Expr]:
    """Seconds each hidden leg took. A drive seen long enough keeps its own average speed
    when faster than a typical trip of its length."""
    gap = seconds(pl.col("ts_b") - pl.col("ts_a"))

    def seen(side: str) -> pl.Expr:
        trip = pl.col(f"km_{side}") + pl.col(f"dist_{side}").fill_null(0.0)
        speed = pl.max_horizontal(pl.col(f"speed_{side}"), _trip_speed(trip, params))
        return pl.col(f"km_{side}") / speed * 3600.0

    def own(leg: str) -> pl.Expr:
        return pl.col(f"km_{leg}") / _trip_speed(pl.col(f"km_{leg}"), params) * 3600.0

    return [
        gap.alias("gap_s"),
        seen("a").alias("ext_a"),
        seen("b").alias("back_b"),
        own("out").alias("out_s"),
        own("back").alias("back_s"),
    ]


def _layout(params: SegmentParams) -> list[pl.Expr]:
    """Offsets (seconds from the start of the gap) of every hidden session."""
    gap, stop = pl.col("gap_s"), params.offline_stop_s
    a_charge, b_charge = pl.col("state_a") == CHARGING, pl.col("state_b") == CHARGING
    charged = pl.col("charged")
    own_charge = charged & ~a_charge & ~b_charge
    hi = (gap - pl.col("back_b")).clip(lower_bound=0.0)
    a_ext = pl.when(a_charge & charged).then(pl.col("charge_s")).otherwise(pl.col("ext_a"))
    a_ext = a_ext.clip(0.0, hi)
    out_end = (a_ext + pl.col("out_s")).clip(upper_bound=hi)
    charge_start = out_end + stop
    charge_end = charge_start + pl.col("charge_s")
    follows = pl.when(own_charge).then(charge_end + stop).when(a_charge).then(a_ext + stop)
    back_start = follows.fill_null(hi - pl.col("back_s"))
    back_end = (back_start + pl.col("back_s")).clip(upper_bound=hi)
    back_start = (back_end - pl.col("back_s")).clip(lower_bound=out_end)
    room = pl.when(pl.col("back_s") > 0).then(back_start - stop).otherwise(hi)
    fits = charge_end <= room
    b_back = pl.when(b_charge & charged & ~a_charge).then(
        pl.col("charge_s").clip(0.0, (gap - out_end - stop).clip(lower_bound=0.0))
    )
    return [
        pl.when(pl.col("state_a") == DRIVING)
        .then(pl.col("ext_a").clip(0.0, hi))
        .when(a_charge & charged)
        .then(a_ext)
        .alias("extend_a_s"),
        pl.when(pl.col("state_b") == DRIVING)
        .then(pl.col("back_b").clip(0.0, gap))
        .otherwise(b_back)
        .alias("advance_b_s"),
        pl.when(own_charge).then(pl.when(fits).then(charge_start).otherwise(out_end)).alias("c0"),
        pl.when(own_charge)
        .then(pl.when(fits).then(charge_end).otherwise(room.clip(lower_bound=out_end)))
        .alias("c1"),
        pl.when(pl.col("out_s") > 0).then(a_ext).alias("o0"),
        pl.when(pl.col("out_s") > 0).then(out_end).alias("o1"),
        pl.when(pl.col("back_s") > 0).then(back_start).alias("b0"),
        pl.when(pl.col("back_s") > 0).then(back_end).alias("b1"),
        divided((room - out_end).clip(lower_bound=0.0), 3600.0).alias("slot_h"),
    ]


def _plus(instant: pl.Expr, secs: pl.Expr) -> pl.Expr:
    return instant + pl.duration(microseconds=(secs * 1e6).cast(pl.Int64))


def _instants() -> list[pl.Expr]:
    at = pl.col("ts_a")
    return [
        _plus(at, pl.col("c0")).alias("charge_start"),
        _plus(at, pl.col("c1")).alias("charge_end"),
        _plus(at, pl.col("o0")).alias("out_start"),
        _plus(at, pl.col("o1")).alias("out_end"),
        _plus(at, pl.col("b0")).alias("back_start"),
        _plus(at, pl.col("b1")).alias("back_end"),
    ]


def _gap_energy() -> list[pl.Expr]:
    """What the energy counter says each charge added inside the gap, where no row counts it
    (``rules._energy_step``). The counter is the charging session's: it holds the last
    session's total until a new session starts it from zero. Read from its last value before
    the gap to the value the rows after the gap count from: grown after a charge seen before
    the gap, that charge went on into the gap and added the growth (``energy_in_a``); changed
    after anything else, a session began in the gap, and a charge seen after the gap that
    started inside it added all the counter held (``energy_in_b``), an offline charge all it
    showed when first read (``energy_own``). Reset after a charge, the new session's part
    belongs to the charge after, which is not extended into the gap then: no charge takes it."""
    before, after, found = pl.col("energy_a"), pl.col("energy_first_b"), pl.col("energy_b")
    a_charge, b_charge = pl.col("state_a") == CHARGING, pl.col("state_b") == CHARGING
    began = (after != before) & (after > 0)
    return [
        pl.when(a_charge & (after > before)).then(after - before).alias("energy_in_a"),
        pl.when(b_charge & ~a_charge & began).then(after).alias("energy_in_b"),
        pl.when((found != before) & (found > 0)).then(found).alias("energy_own"),
    ]


def read_gaps(runs: pl.LazyFrame, params: SegmentParams = DEFAULT_PARAMS) -> pl.LazyFrame:
    """Every gap with its hidden driving and charging (see the module docstring)."""
    return (
        gap_sides(runs, params)
        .with_columns(*_charge(params), *_gap_energy())
        .with_columns(_legs(params))
        .with_columns(_drive_times(params))
        .with_columns(_layout(params))
        .with_columns(_instants())
    )


def _charger_hint(params: SegmentParams) -> pl.Expr:
    needed_kw = divided(pl.col("charged_pp"), 100.0) * pl.col("capacity") / pl.col("slot_h")
    dc = pl.col("dc_a") | pl.col("dc_b") | (needed_kw > params.dc_power_kw)
    return pl.when(dc.fill_null(False)).then(pl.lit("dc")).otherwise(pl.lit("ac"))


def _estimate(at: str, km_before: pl.Expr, from_after: pl.Expr) -> dict[str, pl.Expr]:
    """``gap_odometer_{at}`` and ``gap_soc_{at}`` of a boundary inside the gap with
    ``km_before`` hidden km driven before it: the odometer before the gap plus that distance;
    the SoC before the gap less what that driving used, or, when ``from_after``, the SoC after
    the gap plus what the hidden driving after it used (the two differ by the points charged in
    the gap)."""
    per_km = pl.col("soc_per_km")
    soc = (
        pl.when(from_after)
        .then(pl.col("soc_b") + (pl.col("km") - km_before) * per_km)
        .otherwise(pl.col("soc_a") - km_before * per_km)
    )
    return {f"gap_odometer_{at}": pl.col("odo_a") + km_before, f"gap_soc_{at}": soc}


def offline_sessions(gaps: pl.LazyFrame, params: SegmentParams = DEFAULT_PARAMS) -> pl.LazyFrame:
    """The sessions that lie wholly inside gaps (``OFFLINE_COLUMNS``), with the estimates of
    their boundaries (``GAP_ESTIMATES``): a charge stands still and rises by the points found;
    a way out ahead of it reads from before the gap, a way back behind it from after."""
    charged, a_charge = pl.col("charged"), pl.col("state_a") == CHARGING
    out = pl.col("km_a") + pl.col("km_out")
    charges = gaps.filter(pl.col("charge_start").is_not_null()).select(
        "vin",
        state=pl.lit(CHARGING, pl.Int8),
        start=pl.col("charge_start"),
        end=pl.col("charge_end"),
        charger_hint=_charger_hint(params),
        gap_energy_kwh=pl.col("energy_own"),
        **_estimate("start", out, pl.lit(False)),
        **_estimate("end", out, pl.lit(True)),
    )
    # (start, end) of each leg: its hidden km before it, and whether a charge is behind it
    legs = {
        "out": ((pl.col("km_a"), a_charge & charged), (out, ~(charged & ~a_charge))),
        "back": ((out, charged), (out + pl.col("km_back"), pl.lit(True))),
    }
    drives = [
        gaps.filter(pl.col(f"{leg}_start").is_not_null()).select(
            "vin",
            state=pl.lit(DRIVING, pl.Int8),
            start=pl.col(f"{leg}_start"),
            end=pl.col(f"{leg}_end"),
            charger_hint=pl.lit(None, pl.String),
            gap_energy_kwh=pl.lit(None, pl.Float64),
            **_estimate("start", *start),
            **_estimate("end", *end),
        )
        for leg, (start, end) in legs.items()
    ]
    return pl.concat([charges, *drives]).filter(pl.col("end") > pl.col("start"))


def extend_runs(runs: pl.LazyFrame, gaps: pl.LazyFrame) -> pl.LazyFrame:
    """The runs with the ends and starts the gaps moved (``estimated_end``/``_start``), the
    estimates of those boundaries (``GAP_ESTIMATES``) and what an extended charge added inside
    its gap (``gap_energy_kwh``: ``_gap_energy``): a drive drove its share of the hidden
    distance; the SoC at the end of a charge extended into the gap and at the start of a drive
    extended out of it is read from after the gap, the others from before."""
    a_charge, b_drive = pl.col("state_a") == CHARGING, pl.col("state_b") == DRIVING
    ends = gaps.select(
        "chain",
        "extend_a_s",
        energy_end=pl.col("energy_in_a"),
        **_estimate("end", pl.col("km_a"), a_charge),
    ).filter(pl.col("extend_a_s") > 0)
    starts = gaps.select(
        chain=pl.col("chain") + 1,
        advance_b_s=pl.col("advance_b_s"),
        energy_start=pl.col("energy_in_b"),
        **_estimate("start", pl.col("km") - pl.col("km_b"), b_drive),
    ).filter(pl.col("advance_b_s") > 0)
    last = pl.col("chain") != pl.col("chain").shift(-1)
    first = pl.col("chain") != pl.col("chain").shift(1)

    def shift_by(column: str) -> pl.Expr:
        return pl.duration(microseconds=(pl.col(column).fill_null(0.0) * 1e6).cast(pl.Int64))

    return (
        runs.with_columns(is_last=last.fill_null(True), is_first=first.fill_null(True))
        .join(ends, on="chain", how="left", maintain_order="left")
        .join(starts, on="chain", how="left", maintain_order="left")
        .with_columns(
            extend_a_s=pl.when(pl.col("is_last")).then(pl.col("extend_a_s")),
            advance_b_s=pl.when(pl.col("is_first")).then(pl.col("advance_b_s")),
        )
        .with_columns(
            end=pl.col("end") + shift_by("extend_a_s"),
            start=pl.col("start") - shift_by("advance_b_s"),
            estimated_end=pl.col("extend_a_s").fill_null(0.0) > 0,
            estimated_start=pl.col("advance_b_s").fill_null(0.0) > 0,
        )
        .with_columns(
            gap_odometer_end=pl.when("estimated_end").then("gap_odometer_end"),
            gap_soc_end=pl.when("estimated_end").then("gap_soc_end"),
            gap_odometer_start=pl.when("estimated_start").then("gap_odometer_start"),
            gap_soc_start=pl.when("estimated_start").then("gap_soc_start"),
            gap_energy_kwh=pl.sum_horizontal(
                pl.when("estimated_end").then("energy_end"),
                pl.when("estimated_start").then("energy_start"),
            ),
        )
        .drop("is_last", "is_first", "extend_a_s", "advance_b_s", "energy_end", "energy_start")
    )
