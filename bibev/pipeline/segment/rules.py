"""Row rules: what each instant of a vehicle's clean series says the car was doing.

Clean rows are sparse (a provider sends a signal when it changes), so each signal is carried
forward to the following rows, but never across a telemetry gap (``gap_s``): after a gap the
car has woken up and re-sent its state. Two kinds of evidence are read at every row:

- the provider's own state: ``gear`` in D/R/N means driving, ``charging_state == charging``
  means charging (``unknown`` or missing says nothing);
- the physics: a speed above ``moving_speed_kmh`` (reported, or derived from positions or
  odometer readings when the provider sends no speed) means moving, a charging power above
  ``charging_power_kw`` means charging.

A row is *driving* when either says so, else *charging* when either says so, else *idle*: the
physics fills in a missing state and overrides a stale one (a parked gear carried into a drive,
a charge the state never announced). The session rules (``sessions.py``) then remove what one
wrong row cannot decide alone: blips, stops at traffic lights, charges with no physics at all.

A frame may hold many vehicles (a batch: one query for many VINs costs little more than one
for a single VIN). Rows are sorted by VIN then time, a vehicle's first row starts a new period,
and every step that looks at neighbouring rows stops at the vehicle's edges (``shifted``,
``vehicle_filled``, ``.over("vin")``), so each vehicle gets exactly what it gets alone.
"""

from __future__ import annotations

import polars as pl

from bibev.pipeline.segment.params import DEFAULT_PARAMS, SegmentParams

IDLE, DRIVING, CHARGING = 0, 1, 2
KINDS = ("idle", "driving", "charging")
_DRIVE_GEARS = ("D", "R", "N")
_KM_PER_DEG = 111.2
_US = 1_000_000.0

#: Clean columns segmentation reads (the others are not loaded).
INPUT_COLUMNS = (
    "vin",
    "ts",
    "soc_pct",
    "odometer_km",
    "speed_kmh",
    "gear",
    "charging_state",
    "charger_kind",
    "charging_power_kw",
    "energy_added_kwh",
    "pack_voltage_v",
    "pack_current_a",
    "energy_remaining_kwh",
    "battery_temp_min_c",
    "battery_temp_max_c",
    "latitude",
    "longitude",
)


def divided(expr: pl.Expr, divisor: float) -> pl.Expr:
    """``expr / divisor`` for a constant ``divisor``, computed as polars does on a column of
    many rows (times the reciprocal) also when the frame has one row, where polars divides
    exactly: otherwise a value's last bits would depend on how many rows came with it (the
    other vehicles of a batch)."""
    return expr * (1.0 / divisor)


def seconds(expr: pl.Expr) -> pl.Expr:
    """A duration expression in seconds (float)."""
    return divided(expr.dt.total_microseconds().cast(pl.Float64), _US)


def same_vehicle(offset: int = 1) -> pl.Expr:
    """Whether the row ``offset`` rows before (after, when negative) is of the same vehicle."""
    return pl.col("vin") == pl.col("vin").shift(offset)


def shifted(expr: pl.Expr, offset: int = 1) -> pl.Expr:
    """``expr`` at the row ``offset`` rows before (after, when negative), null where that row
    is another vehicle's: ``shift`` within each vehicle of a VIN-sorted frame."""
    return pl.when(same_vehicle(offset)).then(expr.shift(offset))


def vehicle_filled(expr: pl.Expr) -> pl.Expr:
    """``expr`` filled forward within each vehicle of a VIN-sorted frame (a plain fill masked
    where the value came from another vehicle: cheaper than a window over the VINs)."""
    source = pl.when(expr.is_not_null()).then(pl.col("vin"))
    return pl.when(source.forward_fill() == pl.col("vin")).then(expr.forward_fill())


def in_order_sum(expr: pl.Expr, group: str) -> pl.Expr:
    """The running sum of ``expr`` (nulls as 0) within each ``group``, added row by row in the
    frame's order: its last value is the group's sum. A ``sum()`` in a group-by adds a group's
    floats in chunks whose bounds depend on the whole frame and on the number of threads, so a
    vehicle's sums would change in their last bits with the other vehicles of its batch."""
    return expr.fill_null(0.0).cum_sum().over(group)


def fresh(name: str) -> pl.Expr:
    """Whether the row reports ``name`` anew: a value that differs from the row before (clean
    series carry values forward, so an unchanged value says nothing new)."""
    value = pl.col(name)
    return value.is_not_null() & (value != shifted(value)).fill_null(True)


def in_period(expr: pl.Expr, *, backward: bool = False) -> pl.Expr:
    """``expr`` filled forward (or backward) within each period only. Periods are contiguous
    runs of rows (a vehicle's first row starts one), so this is a plain fill masked where the
    value came from another period (much cheaper than a window over the periods)."""
    period = pl.col("period")
    source = pl.when(expr.is_not_null()).then(period)
    if backward:
        return pl.when(source.backward_fill() == period).then(expr.backward_fill())
    return pl.when(source.forward_fill() == period).then(expr.forward_fill())


def previous_in_period(expr: pl.Expr) -> pl.Expr:
    """``expr`` at the row before, within the period (null on a period's first row)."""
    return pl.when(pl.col("period") == pl.col("period").shift(1)).then(expr.shift(1))


def next_in_period(expr: pl.Expr) -> pl.Expr:
    """``expr`` at the row after, within the period (null on a period's last row)."""
    return pl.when(pl.col("period") == pl.col("period").shift(-1)).then(expr.shift(-1))


def _carried(name: str) -> pl.Expr:
    """The last value of ``name`` seen in the row's period (null before the first one)."""
    return in_period(pl.col(name))


def _steps(params: SegmentParams) -> list[pl.Expr]:
    """Per row: the time since the row before (``dt``), whether it reports a new position fix
    (``fix``) or odometer reading (``reading``), and the straight distance from the previous
    row's position (``step_km``)."""
    lat0, lon0 = previous_in_period(pl.col("lat")), previous_in_period(pl.col("lon"))
    dy = (pl.col("lat") - lat0) * _KM_PER_DEG
    cos = divided(pl.col("lat") * 3.141592653589793, 180).cos()
    dx = (pl.col("lon") - lon0) * _KM_PER_DEG * cos
    fix = (fresh("latitude") | fresh("longitude")) & pl.col("lat").is_not_null()
    return [
        seconds(pl.col("ts") - previous_in_period(pl.col("ts"))).alias("dt"),
        fix.alias("fix"),
        fresh("odometer_km").alias("reading"),
        (dx.pow(2) + dy.pow(2)).sqrt().alias("step_km"),
        (pl.col("odo_read") - previous_in_period(pl.col("odo_read"))).abs().alias("odo_step"),
    ]


def _travel(params: SegmentParams) -> pl.Expr:
    """Distance travelled since the first row: speed × time, else the steps between fixes."""
    by_speed = divided(previous_in_period(pl.col("speed")) * pl.col("dt"), 3600.0)
    moved = pl.col("fix") & (pl.col("step_km") * 1000.0 >= params.min_move_m)
    by_position = pl.when(moved).then(pl.col("step_km"))
    return pl.coalesce(by_speed, by_position, pl.lit(0.0)).cum_sum().over("vin")


def _reading_interval(params: SegmentParams) -> pl.Expr:
    """How long a moving car stays online at most without a new reading (a position fix or
    an odometer reading): ``max_fix_interval_s``, or ``gap_intervals`` typical intervals of a
    polled series."""
    return pl.max_horizontal(
        pl.lit(params.max_fix_interval_s), pl.col("typical_s") * params.gap_intervals
    )


def _online(params: SegmentParams) -> pl.Expr:
    """Seconds online since the start of the period (a running sum in row order): the steps
    between rows, without the silences longer than a reading interval (a tunnel, a lost
    connection: nothing could be sent, so no reading was missed)."""
    step = pl.col("dt")
    return in_order_sum(pl.when(step <= _reading_interval(params)).then(step), "period")


def _helper_columns(name: str) -> tuple[str, str, str]:
    """The helper columns of the derived speed ``name``: its own, so that the speeds from
    positions and from the odometer do not overwrite each other's."""
    return f"_{name}_since", f"_{name}_online", f"_{name}_interval"


def _derived_speed(
    flag: str, distance: str, name: str, params: SegmentParams
) -> list[list[pl.Expr]]:
    """Stages computing ``name``: km/h between consecutive readings (rows where ``flag``) of
    one period, given at every row of the interval a reading closes. A reading also takes the
    speed of the interval it opens when that is the larger: a state holds from its row on, so
    a drive seen only from readings starts at the last one at rest, not one reading late.
    Null when the car was online longer than a reading interval (``_reading_interval``)
    without a new reading: a moving car sends one, so the distance may have been covered in
    any part of the interval (a car parked, then driven off). A silence does not count
    (``online_s``): a short drive seen by two readings across a tunnel spans the tunnel
    instead of collapsing onto one row."""
    present = pl.col(flag)
    since, online, interval = _helper_columns(name)
    dt = seconds(pl.col("ts") - pl.col(since))
    unread = pl.col("online_s") - pl.col(online)
    moved = pl.col(distance) * 1000.0 >= params.min_move_m
    # NaN marks a reading that cannot tell, so that it is not filled from a later reading.
    speed = pl.when(present).then(
        pl.when((dt > 0) & (unread <= _reading_interval(params)))
        .then(pl.when(moved).then(pl.col(distance) / dt * 3600.0).otherwise(0.0))
        .otherwise(float("nan"))
    )
    opened = pl.when(present).then(next_in_period(pl.col(interval)))
    return [
        [
            previous_in_period(pl.when(present).then(pl.col("ts"))).alias(since),
            previous_in_period(pl.when(present).then(pl.col("online_s"))).alias(online),
        ],
        [in_period(pl.col(since)).alias(since), in_period(pl.col(online)).alias(online)],
        [speed.alias(interval)],
        [in_period(pl.col(interval), backward=True).fill_nan(None).alias(interval)],
        [pl.max_horizontal(pl.col(interval), opened).alias(name)],
    ]


def _dead_reckoning() -> list[list[pl.Expr]]:
    """The odometer at every row, from the readings and the distance travelled since.

    Providers read the odometer seldom (once an hour for some), so the last reading before a
    gap can be far behind the car. ``travel`` adds up the distance between rows (speed × time,
    else the straight steps between position fixes, which fall short of the road); ``odo`` is
    the last reading plus the travel since (``since_reading``), ``odo_next`` the next reading
    of the same period minus the travel until it (``until_reading``)."""
    reading, travel = pl.col("reading"), pl.col("travel")
    return [
        [
            pl.when(reading).then(travel).alias("_read_travel"),
            pl.when(reading).then(pl.col("odometer_km")).alias("_read_value"),
        ],
        [
            (travel - vehicle_filled(pl.col("_read_travel"))).alias("since_reading"),
            (in_period(pl.col("_read_travel"), backward=True) - travel).alias("until_reading"),
            in_period(pl.col("_read_value"), backward=True).alias("_next_value"),
        ],
        [
            (pl.col("odo_read") + pl.col("since_reading")).alias("odo"),
            (pl.col("_next_value") - pl.col("until_reading")).alias("odo_next"),
        ],
    ]


def _energy_step() -> pl.Expr:
    """Increase of the per-session energy counter since the previous row (a reset counts from
    zero: the first value after it is all new energy); nothing across a telemetry gap."""
    step = pl.col("energy") - shifted(pl.col("energy"))
    after_gap = pl.col("period") != shifted(pl.col("period"))
    increase = pl.when(step >= 0).then(step).otherwise(pl.col("energy"))
    return pl.when(after_gap).then(0.0).otherwise(increase).fill_null(0.0)


def _staged(frame: pl.LazyFrame, stages: list[list[pl.Expr]]) -> pl.LazyFrame:
    for stage in stages:
        frame = frame.with_columns(stage)
    return frame


def carried_signals(clean: pl.LazyFrame, params: SegmentParams) -> pl.LazyFrame:
    """Rows sorted by VIN and time with ``period`` (telemetry gaps), every signal carried
    forward within its vehicle, the dead-reckoned odometer (``odo``, ``odo_next``) and its
    resolution (``odo_step_km``: 1 km on a vehicle's day when every reading was a whole
    number). A gap is a silence longer than
    ``gap_s`` and than ``gap_intervals`` typical intervals between rows (a provider polled
    every 15 minutes is not silent between two polls)."""
    step = seconds(pl.col("ts") - shifted(pl.col("ts")))
    # The typical interval of each vehicle's UTC day, so that a row's threshold does not depend
    # on how many days around it were loaded.
    vehicle_day = [pl.col("vin"), pl.col("ts").dt.date()]
    typical = step.median().over(vehicle_day).fill_null(0.0)
    gap = step > pl.max_horizontal(pl.lit(params.gap_s), pl.col("typical_s") * params.gap_intervals)
    carried = [
        vehicle_filled(pl.col("soc_pct")).alias("soc"),
        vehicle_filled(pl.col("odometer_km")).alias("odo_read"),
        vehicle_filled(pl.col("energy_added_kwh")).alias("energy"),
        _carried("speed_kmh").alias("speed"),
        _carried("gear").alias("gear_now"),
        _carried("charging_state").alias("state_now"),
        _carried("charger_kind").alias("kind_now"),
        _carried("charging_power_kw").alias("power"),
        _carried("latitude").alias("lat"),
        _carried("longitude").alias("lon"),
    ]
    whole = (pl.col("odometer_km") % 1.0 == 0.0).all().over(vehicle_day)
    # Each vehicle's first row starts a period (numbered from 0, as for a vehicle alone).
    new_period = gap.fill_null(False) | ~same_vehicle().fill_null(True)
    stages = [
        [typical.alias("typical_s"), pl.when(whole).then(1.0).otherwise(0.0).alias("odo_step_km")],
        [new_period.cast(pl.Int32).cum_sum().alias("period")],
        carried,
        _steps(params),
        [_travel(params).alias("travel"), _energy_step().alias("e_step")],
        *_dead_reckoning(),
    ]
    return _staged(clean.select(INPUT_COLUMNS).sort("vin", "ts"), stages)


def movement(frame: pl.LazyFrame, params: SegmentParams) -> pl.LazyFrame:
    """``frame`` with ``moving``: whether the car moves at each row, from the reported speed
    first, then the positions, then the odometer (null when none of them can tell)."""
    by_position = _derived_speed("fix", "step_km", "by_position", params)
    by_odometer = _derived_speed("reading", "odo_step", "by_odometer", params)
    stages = [a + b for a, b in zip(by_position, by_odometer, strict=True)]
    threshold = params.moving_speed_kmh
    moving = pl.coalesce(
        pl.col("speed") > threshold,
        pl.col("by_position") > threshold,
        pl.col("by_odometer") > threshold,
    )
    helpers = [*_helper_columns("by_position"), *_helper_columns("by_odometer")]
    return _staged(
        frame, [[_online(params).alias("online_s")], *stages, [moving.alias("moving")]]
    ).drop("online_s", *helpers)


def label_rows(clean: pl.LazyFrame, params: SegmentParams = DEFAULT_PARAMS) -> pl.LazyFrame:
    """Clean rows (one vehicle or many) → the same rows, sorted by VIN and time, with
    ``period``, carried signals,
    the evidence (``moving``, ``by_gear``, ``by_state``, ``by_power``) and ``state``
    (``IDLE``/``DRIVING``/``CHARGING``), plus ``by_provider``/``by_physics``: which evidence
    made the row's state."""
    state_known = pl.col("state_now").is_not_null() & (pl.col("state_now") != "unknown")
    lf = movement(carried_signals(clean, params), params).with_columns(
        by_gear=pl.col("gear_now").cast(pl.String).is_in(_DRIVE_GEARS),
        by_state=pl.when(state_known).then(pl.col("state_now") == "charging"),
        by_power=pl.col("power") > params.charging_power_kw,
    )
    driving = pl.col("by_gear").fill_null(False) | pl.col("moving").fill_null(False)
    charging = pl.col("by_state").fill_null(False) | pl.col("by_power").fill_null(False)
    return lf.with_columns(
        state=pl.when(driving)
        .then(pl.lit(DRIVING))
        .when(charging)
        .then(pl.lit(CHARGING))
        .otherwise(pl.lit(IDLE))
        .cast(pl.Int8),
        by_provider=pl.when(driving)
        .then(pl.col("by_gear").fill_null(False))
        .otherwise(charging & pl.col("by_state").fill_null(False)),
        by_physics=pl.when(driving)
        .then(pl.col("moving").fill_null(False))
        .otherwise(charging & pl.col("by_power").fill_null(False)),
    )
