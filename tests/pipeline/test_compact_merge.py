"""The pure steps of compaction: merging and deduplicating, routing rows to days, picking days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from bibev.errors import ConfigError
from bibev.pipeline.compact import DaySelection, compact_frames, conform, select_days, split_by_day
from bibev.pipeline.compact.envelope import rerouted_line
from bibev.schema import COMPRESSED_SCHEMA
from tests.pipeline.test_compact import VIN

T0 = datetime(2025, 3, 1, 10, tzinfo=UTC)


def frame(rows: list[dict]) -> pl.DataFrame:
    base = {"vin": VIN, "provider": "tesla", "unit": None, "message_id": None, "invalid": False}
    full = [{**base, "received_at": r["ts"], **r} for r in rows]
    return pl.DataFrame(full, schema=COMPRESSED_SCHEMA)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_duplicates_keep_the_earliest_receipt_and_unknown_receipts_lose() -> None:
    new = frame(
        [
            {"ts": at(0), "key": "Soc", "value_f64": 70.0, "received_at": at(9)},
            {"ts": at(0), "key": "Soc", "value_f64": 70.0, "received_at": at(3)},
            {"ts": at(0), "key": "Soc", "value_f64": 70.0, "received_at": None},
            {"ts": at(0), "key": "Soc", "value_str": "70.0", "received_at": at(1)},
        ]
    )
    merged = compact_frames(None, new)
    assert merged.select("value_f64", "value_str", "received_at").rows() == [
        (70.0, None, at(3)),
        (None, "70.0", at(1)),
    ]


@pytest.mark.parametrize(
    ("first", "second", "distinct"),
    [
        ({"value_f64": 1.0}, {"value_f64": 1.0}, False),
        ({"value_f64": float("nan")}, {"value_f64": float("nan")}, False),
        ({"value_f64": 1.0}, {"value_i64": 1}, True),
        ({"value_f64": 1.0, "unit": "mi"}, {"value_f64": 1.0, "unit": "km"}, True),
        ({"invalid": True}, {"invalid": False}, True),
        ({"key": "Soc"}, {"key": "BatteryLevel"}, True),
        ({"message_id": "a"}, {"message_id": "b"}, False),
        ({"provider": "tesla"}, {"provider": "other"}, False),
    ],
)
def test_what_counts_as_the_same_observation(first: dict, second: dict, distinct: bool) -> None:
    rows = [{"ts": at(0), "key": "Soc", **first}, {"ts": at(0), "key": "Soc", **second}]
    assert compact_frames(None, frame(rows)).height == (2 if distinct else 1)


def test_merged_order_does_not_depend_on_input_order() -> None:
    rows = [
        {"ts": at(s % 7), "key": k, "value_f64": float(s % 3), "received_at": at(s)}
        for s in range(40)
        for k in ("Soc", "Odometer")
    ]
    forward = compact_frames(frame(rows[:30]), frame(rows[30:]))
    backward = compact_frames(frame(rows[::-1][:25]), frame(rows[::-1][25:]))
    assert forward.equals(backward)
    assert forward.select("ts", "key").rows() == sorted(forward.select("ts", "key").rows())
    assert forward.height == 2 * 21  # every (ts, value) pair of 7 x 3, for both keys


def test_conform_fills_columns_an_older_file_lacks() -> None:
    old = pl.DataFrame({"vin": [VIN], "ts": [T0], "key": ["Soc"], "value_f64": [1.0]})
    conformed = conform(old)
    assert conformed.schema == pl.Schema(COMPRESSED_SCHEMA)
    assert conformed.row(0, named=True)["invalid"] is False
    assert conformed.row(0, named=True)["provider"] is None


def test_split_by_day_keeps_this_day_and_plans_the_rest() -> None:
    rows = frame(
        [
            {"ts": datetime(2025, 3, 1, 23, 59, tzinfo=UTC), "key": "Soc"},
            {"ts": datetime(2025, 3, 2, 0, 1, tzinfo=UTC), "key": "Soc"},
            {"ts": datetime(2025, 3, 2, 0, 1, tzinfo=UTC), "key": "Odometer"},
            {"ts": datetime(2025, 2, 28, 12, tzinfo=UTC), "key": "Soc"},
            {"ts": datetime(2025, 3, 3, 12, tzinfo=UTC), "key": "Soc"},
        ]
    ).with_columns(
        pl.Series("line", [0, 1, 1, 2, 3], dtype=pl.UInt32),
        pl.Series("rows_of_day", [None, None, None, None, date(2025, 3, 1)], dtype=pl.Date),
    )
    split = split_by_day(rows, date(2025, 3, 1))
    assert split.rows.height == 1
    assert split.rows.schema == pl.Schema(COMPRESSED_SCHEMA)
    assert split.reroute == {date(2025, 2, 28): [2], date(2025, 3, 2): [1]}
    assert split.dropped == 1


def test_a_rerouted_line_keeps_its_envelope_and_says_where_it_came_from() -> None:
    raw = b'{"provider":"tesla","payload":{"data":[]},"received_at":"2025-03-01T10:00:00Z"}'
    line = rerouted_line(raw, day=date(2025, 3, 2), source="temp/V/2025-03-01/a.jsonl")
    assert line == (
        b'{"provider":"tesla","payload":{"data":[]},"received_at":"2025-03-01T10:00:00Z",'
        b'"rows_of_day":"2025-03-02","rerouted_from":"temp/V/2025-03-01/a.jsonl"}'
    )


TODAY = date(2025, 3, 10)
AVAILABLE = [date(2025, 3, d) for d in (1, 5, 9, 10, 11)]


@pytest.mark.parametrize(
    ("selection", "include_today", "expected"),
    [
        (DaySelection(), False, [1, 5, 9]),
        (DaySelection(), True, [1, 5, 9, 10]),
        (DaySelection(date(2025, 3, 5), date(2025, 3, 5)), False, [5]),
        (DaySelection(date(2025, 3, 2)), False, [5, 9]),
        (DaySelection(None, date(2025, 3, 8)), False, [1, 5]),
        (DaySelection(date(2025, 3, 9), date(2025, 3, 31)), True, [9, 10]),
        (DaySelection(date(2025, 3, 6), date(2025, 3, 8)), False, []),
    ],
)
def test_select_days(selection: DaySelection, include_today: bool, expected: list[int]) -> None:
    days = select_days(AVAILABLE, selection, today=TODAY, include_today=include_today)
    assert [d.day for d in days] == expected


@pytest.mark.parametrize(
    ("start", "end", "include_today", "message"),
    [
        (date(2025, 3, 10), date(2025, 3, 10), False, "add --include-today"),
        (date(2025, 3, 11), None, True, "not a complete UTC day"),
    ],
)
def test_asking_only_for_incomplete_days_is_an_error(
    start: date, end: date | None, include_today: bool, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        select_days(AVAILABLE, DaySelection(start, end), today=TODAY, include_today=include_today)


def test_a_range_must_not_run_backwards() -> None:
    with pytest.raises(ConfigError, match="after --to"):
        DaySelection(date(2025, 3, 5), date(2025, 3, 1))
