"""A (VIN, day) partition: sessions that start on the day, whole across midnight, stable ids."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from bibev.pipeline.segment import SEGMENT_SCHEMA, segment_day, segment_id
from tests.pipeline.clean_series import Series

DAY = date(2025, 3, 3)
EVENING = datetime(2025, 3, 3, 21, 0, tzinfo=UTC)


def night() -> pl.DataFrame:
    """Home at 21:30, a 7 kW charge from 22:00 to 03:00 the next day, a drive at 07:30."""
    series = Series(t=EVENING, soc=30.0).park(10).drive(20).park(30).charge(300)
    series.park(10).silent(260)
    return series.park(10).drive(20).park(10).frame()


def day_of(frame: pl.DataFrame, day: date) -> pl.DataFrame:
    lo = datetime.combine(day - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    hi = lo + timedelta(days=3)
    window = frame.filter(pl.col("ts").is_between(lo, hi, closed="left"))
    return segment_day(window.lazy(), day).collect()


def test_a_charge_across_midnight_is_whole_and_belongs_to_its_first_day() -> None:
    frame = night()
    first, second = day_of(frame, DAY), day_of(frame, DAY + timedelta(days=1))
    charge = first.filter(pl.col("kind") == "charging")
    assert charge.select("start", "end").row(0) == (
        datetime(2025, 3, 3, 22, 0, tzinfo=UTC),
        datetime(2025, 3, 4, 3, 0, tzinfo=UTC),
    )
    assert charge["energy_added_kwh"][0] == pytest.approx(35.0, abs=0.01)
    assert second.filter(pl.col("kind") == "charging").height == 0
    both = pl.concat([first, second]).sort("start")
    assert both["start"].to_list()[1:] == both["end"].to_list()[:-1]
    assert both["day"].to_list() == [s.date() for s in both["start"].to_list()]


def test_without_the_next_day_the_last_session_is_open() -> None:
    frame = night()
    alone = segment_day(frame.filter(pl.col("ts").dt.date() == DAY).lazy(), DAY).collect()
    last = alone.tail(1)
    assert (last["kind"][0], last["open_end"][0]) == ("charging", True)
    assert last["end"][0] < datetime(2025, 3, 4, tzinfo=UTC)


def test_the_day_before_tells_that_a_charge_started_before_midnight() -> None:
    frame = night()
    second = DAY + timedelta(days=1)
    with_context = day_of(frame, second)
    own_day = frame.filter(pl.col("ts").dt.date() >= second)
    without = segment_day(own_day.lazy(), second).collect()
    assert with_context["kind"].to_list() == ["idle", "driving", "idle"]
    assert with_context["open_start"].to_list() == [False, False, False]
    # Without it, the charge in progress at midnight is all that can be told: flagged open.
    assert without.select("kind", "open_start").row(0) == ("charging", True)
    columns = ["kind", "start", "end", "segment_id"]
    assert without.tail(3).select(columns).equals(with_context.select(columns))


def test_output_is_deterministic_and_ids_are_stable() -> None:
    frame = night()
    once, again = day_of(frame, DAY), day_of(frame.sample(fraction=1.0, shuffle=True, seed=1), DAY)
    assert once.equals(again)
    assert once.schema == pl.Schema(SEGMENT_SCHEMA)
    assert once["segment_id"].n_unique() == once.height
    row = once.row(1, named=True)
    assert row["segment_id"] == segment_id(row["vin"], row["kind"], row["start"])


def test_ids_differ_by_kind_and_start() -> None:
    start = datetime(2025, 3, 3, 22, 0, tzinfo=UTC)
    vin = Series().vin
    ids = {
        segment_id(vin, "charging", start),
        segment_id(vin, "driving", start),
        segment_id(vin, "charging", start + timedelta(microseconds=1)),
    }
    assert len(ids) == 3


def test_an_empty_series_has_no_sessions() -> None:
    empty = pl.DataFrame(schema=Series().frame().schema)
    found = segment_day(empty.lazy(), DAY).collect()
    assert (found.height, found.schema) == (0, pl.Schema(SEGMENT_SCHEMA))
