from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from bibev.pipeline.mapping import MAPPED_SCHEMA, apply_mapping
from bibev.providers.base import FlatRow, SignalMap
from bibev.schema import rows_to_frame

VIN = "5YJ3E1EA7KF000001"
T0 = datetime(2025, 3, 1, 10, tzinfo=UTC)
MAPPING = (
    SignalMap("Soc", "soc_pct"),
    SignalMap("Odometer", "odometer_km", scale=1.609344),
    SignalMap("Power", "charging_power_kw", scale=0.001),
    SignalMap("Temp", "outside_temp_c", offset=-273.15),
    SignalMap("Limit", "charge_limit_pct", cast="int"),
    SignalMap(
        "State", "charging_state", enum={"Charging": "charging", "Unplugged": "disconnected"}
    ),
    SignalMap("Fast", "charger_kind", enum={"true": "dc", "false": "ac"}),
)


def mapped(*rows: FlatRow) -> pl.DataFrame:
    frame = rows_to_frame(rows, provider="test")
    return apply_mapping(frame, MAPPING).collect()


@pytest.mark.parametrize(
    ("key", "value", "column", "expected"),
    [
        ("Soc", 71.2, "soc_pct", 71.2),
        ("Soc", 71, "soc_pct", 71.0),
        ("Soc", " 71.5 ", "soc_pct", 71.5),
        ("Odometer", 100.0, "odometer_km", 160.9344),
        ("Odometer", "100", "odometer_km", 160.9344),
        ("Power", 7400, "charging_power_kw", 7.4),
        ("Temp", 293.15, "outside_temp_c", 20.0),
        ("Limit", "79.6", "charge_limit_pct", 80.0),
        ("Soc", True, "soc_pct", 1.0),
    ],
)
def test_numeric_values_are_converted(key, value, column, expected):
    result = mapped(FlatRow(VIN, T0, key, value))
    assert result["column"].to_list() == [column]
    assert result["value_f64"][0] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("State", "Charging", "charging"),
        ("State", "charging", "charging"),
        ("State", "UNPLUGGED", "disconnected"),
        ("State", "Exploded", None),
        ("Fast", True, "dc"),
        ("Fast", "false", "ac"),
    ],
)
def test_enum_values_are_mapped_case_insensitively(key, value, expected):
    result = mapped(FlatRow(VIN, T0, key, value))
    assert result["value_str"].to_list() == [expected]


def test_unparseable_string_gives_null_not_error():
    result = mapped(FlatRow(VIN, T0, "Soc", "n/a"))
    assert result["value_f64"].to_list() == [None]


def test_invalid_rows_come_out_null_and_flagged():
    result = mapped(
        FlatRow(VIN, T0, "Soc", None, invalid=True), FlatRow(VIN, T0, "State", "x", invalid=True)
    )
    assert result.sort("column")["invalid"].to_list() == [True, True]
    assert result["value_f64"].null_count() == 2
    assert result["value_str"].null_count() == 2


def test_unmapped_keys_are_left_out_and_schema_is_stable():
    result = mapped(FlatRow(VIN, T0, "Unknown", 1.0), FlatRow(VIN, T0, "Soc", 50.0))
    assert result["key"].to_list() == ["Soc"]
    assert dict(result.schema) == MAPPED_SCHEMA


def test_empty_input_gives_empty_frame():
    assert mapped().height == 0


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        (None, 160.9344),
        ("mi", 160.9344),
        ("miles", 160.9344),
        ("km", 100.0),
        ("kilometers", 100.0),
        ("furlongs", 160.9344),
    ],
)
def test_a_known_unit_on_the_row_wins_over_the_mapping_scale(unit, expected):
    result = mapped(FlatRow(VIN, T0, "Odometer", 100.0, unit=unit))
    assert result["value_f64"][0] == pytest.approx(expected)


def test_unit_of_another_quantity_is_ignored():
    result = mapped(FlatRow(VIN, T0, "Power", 7400.0, unit="kWh"))
    assert result["value_f64"][0] == pytest.approx(7.4)


def test_a_key_feeds_each_of_its_columns_with_each_row_s_own_unit():
    """The unit work is done once per (key, unit) pair: rows of one key with different units,
    written differently, still each get their own."""
    mapping = (SignalMap("Odo", "odometer_km"), SignalMap("Odo", "range_km", scale=2.0))
    seconds = [T0 + timedelta(seconds=s) for s in range(3)]
    frame = rows_to_frame(
        [
            FlatRow(VIN, seconds[0], "Odo", 10.0, unit=" Miles "),
            FlatRow(VIN, seconds[1], "Odo", 10.0, unit="km"),
            FlatRow(VIN, seconds[2], "Odo", 10.0),
        ],
        provider="test",
    )
    result = apply_mapping(frame, mapping).collect().sort("column", "ts")
    assert result["column"].to_list() == ["odometer_km"] * 3 + ["range_km"] * 3
    assert result["value_f64"].to_list() == pytest.approx(
        [16.09344, 10.0, 10.0, 16.09344, 10.0, 20.0]
    )
    assert dict(result.schema) == MAPPED_SCHEMA
