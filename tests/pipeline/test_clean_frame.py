"""``clean_frame`` on small hand-made days: one row per instant, carrying values forward within
their age limit, across midnight, clocks, duplicates, and the quality record."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from bibev.errors import ConfigError
from bibev.pipeline.clean import (
    OBSERVATION_SCHEMA,
    ORDER,
    CleanParams,
    QualityRecord,
    clean_frame,
    flag_observations,
)
from bibev.providers.base import FlatRow, SignalMap
from bibev.schema import CLEAN_SCHEMA, rows_to_frame

VIN = "5YJ3E1EA7KF000001"
DAY = date(2025, 3, 1)
MAPPING = (
    SignalMap("soc", "soc_pct"),
    SignalMap("odo", "odometer_km"),
    SignalMap("speed", "speed_kmh"),
    SignalMap(
        "state",
        "charging_state",
        enum={"charging": "charging", "unplugged": "disconnected", "plugged": "plugged"},
        cast="str",
    ),
    SignalMap("temp", "outside_temp_c"),
    SignalMap("lat", "latitude"),
    SignalMap("soh", "oem_soh_pct"),
)


def at(hour: int, minute: int = 0, second: int = 0, *, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def msg(
    ts: datetime,
    *,
    received: datetime | None = None,
    invalid: tuple[str, ...] = (),
    vin: str = VIN,
    provider: str = "test",
    **values: object,
) -> pl.DataFrame:
    """One message: its values as compressed rows, received a second after ``ts``."""
    rows = [
        FlatRow(vin, ts, key, None if key in invalid else value, invalid=key in invalid)  # type: ignore[arg-type]
        for key, value in values.items()
    ]
    return rows_to_frame(rows, provider=provider, received_at=received or ts + timedelta(seconds=1))


def day_of(*messages: pl.DataFrame) -> pl.DataFrame:
    return pl.concat(messages)


def clean(
    rows: pl.DataFrame,
    *,
    previous: pl.DataFrame | None = None,
    following: pl.DataFrame | None = None,
    params: CleanParams | None = None,
    mapping: tuple[SignalMap, ...] = MAPPING,
    day: date = DAY,
    now: datetime | None = None,
) -> tuple[pl.DataFrame, QualityRecord]:
    result = clean_frame(
        rows,
        mapping,
        day=day,
        previous=previous,
        following=following,
        params=params,
        now=now,
    )
    [quality] = result.quality
    return result.frame.collect(), quality


def column(frame: pl.DataFrame, name: str) -> list[object]:
    return frame[name].to_list()


def test_one_row_per_instant_in_time_order_with_the_clean_schema() -> None:
    rows = day_of(
        msg(at(10, 5), soc=70.0),
        msg(at(10), soc=71.0, odo=1000.0),
        msg(at(10), state="charging"),  # another message at the same instant
        msg(at(10, 10), soc=69.5),
    )
    frame, quality = clean(rows)
    assert frame.schema == pl.Schema(CLEAN_SCHEMA)
    assert column(frame, "ts") == [at(10), at(10, 5), at(10, 10)]
    assert column(frame, "soc_pct") == [71.0, 70.0, 69.5]
    assert column(frame, "charging_state") == ["charging"] * 3
    assert column(frame, "vin") == [VIN] * 3
    assert quality.rows_out == 3
    assert (quality.first_ts, quality.last_ts) == (at(10), at(10, 10))


def test_order_of_the_input_does_not_matter() -> None:
    messages = [msg(at(9, m), soc=80.0 - m, speed=float(m)) for m in range(0, 50, 7)]
    forward, _ = clean(day_of(*messages))
    backward, _ = clean(day_of(*reversed(messages)))
    assert forward.equals(backward)
    assert forward.height == len(messages)


@pytest.mark.parametrize(
    ("minutes_later", "carried"),
    [(5, 71.0), (30, 71.0), (31, None), (360, None)],
)
def test_values_are_carried_within_their_age_limit(minutes_later: int, carried: float) -> None:
    rows = day_of(msg(at(6), soc=71.0), msg(at(6) + timedelta(minutes=minutes_later), temp=4.0))
    frame, _ = clean(rows)
    assert column(frame, "soc_pct") == [71.0, carried]
    assert column(frame, "outside_temp_c") == [None, 4.0]


def test_age_limits_are_parameters() -> None:
    rows = day_of(msg(at(6), soc=71.0), msg(at(6, 10), temp=4.0))
    short = CleanParams(max_age={"soc_pct": timedelta(minutes=5)})
    frame, _ = clean(rows, params=short)
    assert column(frame, "soc_pct") == [71.0, None]
    assert short.max_age["odometer_km"] == timedelta(hours=2)  # the others keep their defaults


def test_an_invalid_value_ends_the_carried_one() -> None:
    rows = day_of(
        msg(at(8), soc=64.0, lat=48.1),
        msg(at(8, 1), lat=48.2, soc=None, invalid=("soc",)),
        msg(at(8, 2), lat=48.3),
        msg(at(8, 3), soc=63.5),
    )
    frame, quality = clean(rows)
    assert column(frame, "soc_pct") == [64.0, None, None, 63.5]
    assert quality.invalid_values == 1
    assert quality.dropped == {}


def test_state_carries_across_midnight_from_the_previous_day() -> None:
    previous = day_of(
        msg(at(23, 40, day=date(2025, 2, 28)), soc=55.0, state="plugged"),
        msg(at(8, day=date(2025, 2, 28)), soh=93.5),  # long before midnight, long max age
        msg(at(9, day=date(2025, 2, 28)), temp=2.0),  # too old to be current at 00:10
    )
    rows = day_of(msg(at(0, 10), speed=0.0))
    frame, quality = clean(rows, previous=previous)
    assert frame.height == 1  # the previous day's instants are not written again
    row = frame.row(0, named=True)
    assert (row["soc_pct"], row["charging_state"], row["oem_soh_pct"]) == (55.0, "plugged", 93.5)
    assert row["outside_temp_c"] is None
    assert quality.rows_in == 1
    assert quality.longest_gap_s == 30 * 60  # from 23:40 the day before
    alone, _ = clean(rows)
    assert alone.row(0, named=True)["soc_pct"] is None


def test_a_silence_since_an_earlier_day_counts_and_changes_no_row() -> None:
    """No rows the day before: the silence before the first instant is measured from the last
    kept observation of an earlier day (``earlier``), here 42 h 50 min; the clean rows are
    those without it (an odometer reading below the earlier one is not judged against it)."""
    two_days_ago = DAY - timedelta(days=2)
    earlier = day_of(
        msg(at(21, 0, day=two_days_ago), soc=57.0, odo=1200.0),
        msg(at(22, 8, day=two_days_ago), soc=56.0),
        msg(at(22, 30, day=two_days_ago), unknown=1),  # no observation
        msg(at(23, 0, day=two_days_ago), soc=150.0),  # out of range: not kept
    )
    rows = day_of(msg(at(16, 58), soc=55.0, odo=1100.0), msg(at(17, 10), soc=54.0))
    result = clean_frame(rows, MAPPING, day=DAY, earlier=earlier)
    [quality] = result.quality
    assert (quality.gaps, quality.longest_gap_s) == (1, (42 * 60 + 50) * 60.0)
    frame, alone = clean(rows)
    assert result.frame.collect().equals(frame)
    assert (alone.gaps, alone.longest_gap_s) == (0, 12 * 60.0)
    assert replace(quality, gaps=0, longest_gap_s=12 * 60.0) == alone
    # rows of the day before come first: an earlier day cannot end a silence later than it
    previous = msg(at(23, 30, day=DAY - timedelta(days=1)), soc=55.5)
    _, quality = clean(rows, previous=previous)
    both = clean_frame(rows, MAPPING, day=DAY, previous=previous, earlier=earlier)
    assert both.quality == [quality]
    assert quality.longest_gap_s == (17 * 60 + 28) * 60.0


def test_a_clock_ahead_of_its_reception_is_moved_back() -> None:
    woke = at(7, 0, 30)
    rows = day_of(
        msg(woke + timedelta(minutes=4), received=woke, soc=60.0),  # first record after wake-up
        msg(at(7, 1), soc=59.9),
    )
    frame, quality = clean(rows)
    assert column(frame, "ts") == [woke, at(7, 1)]
    assert column(frame, "soc_pct") == [60.0, 59.9]
    assert quality.clamped_ts == 1
    assert quality.dropped == {}


def test_a_clock_beyond_the_skew_limit_is_dropped() -> None:
    rows = day_of(
        msg(at(12, 30), received=at(12), soc=10.0),  # 30 minutes ahead: impossible
        msg(at(12, 1), soc=60.0),
    )
    frame, quality = clean(rows)
    assert column(frame, "soc_pct") == [60.0]
    assert quality.dropped == {"future_ts": 1}
    relaxed, _ = clean(rows, params=CleanParams(max_clock_skew=timedelta(hours=1)))
    assert column(relaxed, "soc_pct") == [10.0, 60.0]  # moved back to 12:00


def test_without_reception_times_now_bounds_the_future() -> None:
    rows = msg(at(15), soc=50.0).with_columns(received_at=pl.lit(None, pl.Datetime("us", "UTC")))
    frame, quality = clean(rows, now=at(14))
    assert frame.height == 0
    assert quality.dropped == {"future_ts": 1}
    frame, _ = clean(rows, now=at(16))
    assert column(frame, "soc_pct") == [50.0]


def test_a_skewed_record_of_the_next_day_comes_back_to_this_one() -> None:
    following = msg(at(0, 2, day=date(2025, 3, 2)), received=at(23, 59, 30), soc=42.0)
    frame, _ = clean(msg(at(23, 50), soc=43.0), following=following)
    assert column(frame, "ts") == [at(23, 50), at(23, 59, 30)]
    assert column(frame, "soc_pct") == [43.0, 42.0]
    next_day, quality = clean(following, previous=msg(at(23, 50), soc=43.0), day=date(2025, 3, 2))
    assert next_day.height == 0
    assert (quality.rows_in, quality.clamped_ts, quality.rows_out) == (1, 1, 0)


def test_duplicates_after_mapping_keep_one_and_are_counted() -> None:
    rows = day_of(
        msg(at(10), soc=71.2),
        msg(at(10), soc="71.2"),  # the same value, sent as a string: not removed by compaction
        msg(at(10), soc=71.2, odo=5.0),
    )
    frame, quality = clean(rows)
    assert column(frame, "soc_pct") == [71.2]
    assert quality.dropped == {"duplicate": 2}
    assert quality.observations == 4


def test_a_duplicate_is_found_past_other_keys_of_its_instant() -> None:
    # In ``ORDER`` a known value comes before a missing one, whatever its key: the missing
    # ``soc`` sorts after ``level`` (another key of the column), not next to the known ``soc``.
    mapping = (*MAPPING, SignalMap("level", "soc_pct"))
    rows = day_of(
        msg(at(10), soc=71.2, level=70.0),
        msg(at(10), soc=None, invalid=("soc",)),
        msg(at(11), soc=None, invalid=("soc",)),  # alone at its instant: no duplicate
    )
    flagged = flag_observations(rows, mapping, day=DAY)
    reasons = flagged.select("ts", "key", "missing", "reason").collect().rows()
    assert reasons == [
        (at(10), "soc", False, None),
        (at(10), "level", False, "superseded"),
        (at(10), "soc", True, "duplicate"),
        (at(11), "soc", True, None),
    ]
    frame, quality = clean(rows, mapping=mapping)
    assert column(frame, "soc_pct") == [71.2, None]
    assert quality.dropped == {"duplicate": 1}


def test_quality_counts_rows_keys_and_gaps() -> None:
    rows = day_of(
        msg(at(1), soc=90.0, unknown_a=1, unknown_b="x"),
        msg(at(1, 20), soc=89.0, unknown_a=2),
        msg(at(3), soc=88.0),  # 1 h 40 min of silence
        msg(at(5), soc=87.0, odo=None, invalid=("odo",)),  # 2 h
    )
    _, quality = clean(rows)
    assert quality == QualityRecord(
        vin=VIN,
        day=DAY,
        provider="test",
        rows_in=8,
        observations=5,
        unmapped_rows=3,
        unmapped_keys=2,
        invalid_values=1,
        rows_out=4,
        gaps=2,
        longest_gap_s=7200.0,
        first_ts=at(1),
        last_ts=at(5),
    )
    assert quality.as_dict()["dropped_total"] == 0


def test_gap_threshold_is_a_parameter() -> None:
    rows = day_of(*(msg(at(h), soc=90.0 - h) for h in range(0, 6, 2)))
    _, quality = clean(rows, params=CleanParams(gap=timedelta(hours=3)))
    assert (quality.gaps, quality.longest_gap_s) == (0, 7200.0)


def test_a_day_without_any_mapped_value_gives_an_empty_frame_and_a_record() -> None:
    frame, quality = clean(msg(at(10), something_else=1))
    assert frame.height == 0
    assert frame.schema == pl.Schema(CLEAN_SCHEMA)
    assert (quality.rows_in, quality.unmapped_rows, quality.rows_out) == (1, 1, 0)
    assert quality.first_ts is None


def test_mappings_per_provider() -> None:
    rows = day_of(
        msg(at(10), soc=50.0, provider="one"),
        msg(at(10, 1), level=0.49, provider="two"),
    )
    mappings = {
        "one": (SignalMap("soc", "soc_pct"),),
        "two": (SignalMap("level", "soc_pct", scale=100.0),),
    }
    result = clean_frame(rows, mappings, day=DAY)
    assert result.frame.collect()["soc_pct"].to_list() == [50.0, 49.0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_age": {"nonsense": timedelta(1)}}, "unknown columns: nonsense"),
        ({"max_age": {"soc_pct": timedelta(0)}}, "max_age must be positive"),
        ({"plausible": {"soc_pct": (100.0, 0.0)}}, "lower bound above"),
        ({"max_clock_skew": timedelta(0)}, "clock_tolerance <= max_clock_skew"),
        ({"tail_rows_per_key": 0}, "at least 1"),
        ({"gap_lookback_days": 0}, "gap_lookback_days must be at least 1"),
    ],
)
def test_bad_parameters_are_config_errors(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        replace(CleanParams(), **change)


def test_observations_come_in_one_total_order_with_their_names_as_strings() -> None:
    """VINs seen in reverse order, a missing timestamp and vehicle, NaN, and ties on column,
    vehicle and instant (a duplicate, two keys of one column, a known and an unknown value):
    ``flag_observations`` gives them in ``ORDER``, as a sort by all its columns would."""
    first, second = "WBA00000000000002", "WBA00000000000001"  # new to this process: in this order
    mapping = (
        SignalMap("soc", "soc_pct"),
        SignalMap("level", "soc_pct"),
        SignalMap("odo", "odometer_km"),
        SignalMap("state", "charging_state", enum={"charging": "charging"}),
    )
    rows = day_of(
        msg(at(10), vin=first, soc=50.0, level=51.0, odo=float("nan"), state="charging"),
        msg(at(10), vin=first, soc=49.0, level=None, state="bogus"),
        msg(at(10), vin=second, soc=50.0, odo=7.0),
        msg(at(9), vin=second, soc="50.0", level=51.0),
        msg(at(9), vin=second, soc=50.0),
    )
    blank = msg(at(11), soc=48.0).with_columns(ts=None, vin=None)
    observed = flag_observations(pl.concat([rows, blank]), mapping, day=DAY).collect()
    assert observed.schema == pl.Schema(OBSERVATION_SCHEMA)
    assert observed.select(ORDER).equals(observed.select(ORDER).sort(ORDER, nulls_last=True))
    # charging_state, then odometer_km: the VIN seen second sorts first
    assert observed["vin"].head(4).to_list() == [first, first, second, first]
    assert observed.height == 13
    assert observed.filter(pl.col("vin").is_null())["value_f64"].to_list() == [48.0]
    duplicates = observed.filter(pl.col("reason") == "duplicate")
    assert duplicates.select("vin", "key", "ts").rows() == [
        (first, "state", at(10)),
        (second, "soc", at(9)),
        (first, "soc", at(10)),
        (first, "level", at(10)),
    ]
    result = clean_frame(rows, mapping, day=DAY)
    assert result.observations.equals(flag_observations(rows, mapping, day=DAY).collect())
