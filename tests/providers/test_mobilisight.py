"""Mobilisight adapter: car-state export v2, mapping, encoder."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from bibev.errors import DataContractError
from bibev.providers._json import unit_factor
from bibev.providers.base import FlatRow
from bibev.providers.mobilisight import MobilisightAdapter, encode_car_state
from bibev.providers.mobilisight.mapping import CHARGING_STATUS
from bibev.providers.registry import Registry, check_adapter_class
from bibev.schema import CHARGER_KINDS, CHARGING_STATES, CLEAN_SCHEMA, rows_to_frame

FIXTURES = Path(__file__).parent / "fixtures" / "mobilisight"
VIN = "VR3000000000000AB"
T10 = datetime(2025, 3, 1, 10, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def by_key(rows: list[FlatRow]) -> dict[str, FlatRow]:
    return {row.key: row for row in rows}


def canonical(rows: list[FlatRow]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for signal in MobilisightAdapter.mapping:
        row = by_key(rows).get(signal.key)
        if row is None or row.value is None:
            continue
        if signal.enum is not None:
            out[signal.column] = signal.enum[str(row.value).lower()]
            continue
        factor = unit_factor(row.unit, "km") if signal.column.endswith("_km") else None
        out[signal.column] = float(row.value) * (factor or signal.scale) + signal.offset
    return out


def test_car_state_rows() -> None:
    rows = MobilisightAdapter().flatten(load("car_state.json"))
    keyed = by_key(rows)
    assert len(rows) == 17
    assert keyed["electricity.level.percentage"] == FlatRow(
        VIN, T10, "electricity.level.percentage", 64
    )
    odo = keyed["odometer.value"]
    assert (odo.value, odo.unit, odo.ts) == (18250.4, "km", datetime(2025, 3, 1, 9, 55, tzinfo=UTC))
    assert keyed["electricity.capacity.value"].unit == "Wh"
    soh = keyed["electricity.battery.stateOfHealth.percentage"]
    assert (soh.value, soh.ts) == (96.5, datetime(2025, 2, 27, tzinfo=UTC))
    assert keyed["electricity.charging.plugged"].value is True
    # unknown objects are kept by dotted path, with their own datetime
    lon = keyed["position.coordinates.0"]
    assert (lon.value, lon.ts) == (2.3522, datetime(2025, 3, 1, 9, 59, 30, tzinfo=UTC))
    assert (keyed["alerts"].value, keyed["electricity.charging.nextDelayedTime"].value) == (
        None,
        None,
    )
    assert keyed["ecuCounter"].value == "9223372036854775808"
    assert keyed["datetimeSending"].value == "2025-03-01T10:00:07Z"
    # units and datetimes live in their rows' columns, never as rows of their own
    assert not [r.key for r in rows if r.key.endswith((".unit", "datetime"))]
    assert {r.message_id for r in rows} == {None}


def test_miles_and_offsets() -> None:
    rows = MobilisightAdapter().flatten(load("car_state_miles.json"))
    odo = by_key(rows)["odometer.value"]
    assert (odo.value, odo.unit, odo.ts) == (11340, "mi", datetime(2025, 3, 1, 21, 30, tzinfo=UTC))
    assert canonical(rows) == {
        "soc_pct": 41.0,
        "odometer_km": pytest.approx(11340 * 1.609344),
        "charging_state": "disconnected",
    }


def test_mapping_reads_the_full_state() -> None:
    assert canonical(MobilisightAdapter().flatten(load("car_state.json"))) == {
        "soc_pct": 64.0,
        "odometer_km": 18250.4,
        "range_km": 201.0,
        "charging_state": "charging",
        "charger_kind": "ac",
        "oem_soh_pct": 96.5,
    }


def test_mapping_targets_exist() -> None:
    for signal in MobilisightAdapter.mapping:
        assert signal.column in CLEAN_SCHEMA
        if signal.column == "charging_state":
            assert set(signal.enum.values()) <= set(CHARGING_STATES)
        if signal.column == "charger_kind":
            assert set(signal.enum.values()) <= set(CHARGER_KINDS)
    assert CHARGING_STATUS == {
        "disconnected": "disconnected",
        "in-progress": "charging",
        "failure": "error",
        "stopped": "stopped",
        "finished": "complete",
    }
    check_adapter_class(MobilisightAdapter, "mobilisight")


def test_an_export_line_is_read_as_text() -> None:
    line = json.dumps(load("car_state_miles.json"))
    assert MobilisightAdapter().flatten(line) == MobilisightAdapter().flatten(json.loads(line))


def test_minimal_state_is_fine() -> None:
    rows = MobilisightAdapter().flatten({"vin": VIN, "datetime": "2025-03-01T10:00:00Z"})
    assert rows == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "not a JSON object"),
        ("line", "not JSON"),
        ('"a string"', "not a JSON object"),
        ({"datetime": "2025-03-01T10:00:00Z"}, "no VIN"),
        ({"vin": ["x"], "datetime": "2025-03-01T10:00:00Z"}, "no VIN"),
        ({"vin": VIN}, "missing or unreadable timestamp"),
        ({"vin": VIN, "datetime": "01/03/2025"}, "unreadable timestamp"),
        (
            {"vin": VIN, "datetime": "2025-03-01T10:00:00Z", "odometer": {"datetime": "?"}},
            "odometer",
        ),
    ],
)
def test_unreadable_states_raise_data_contract_error(payload: Any, reason: str) -> None:
    with pytest.raises(DataContractError) as info:
        MobilisightAdapter().flatten(payload)
    assert reason in str(info.value)


def test_rows_go_through_the_compressed_schema() -> None:
    rows = MobilisightAdapter().flatten(load("car_state.json"))
    frame = rows_to_frame(rows, provider="mobilisight", received_at=T10)
    assert frame.height == 17
    assert frame["value_f64"].drop_nulls().to_list() == [18250.4, 96.5, 2.3522, 48.8566]
    assert frame["value_i64"].drop_nulls().to_list() == [64, 201, 50000, 25]
    assert frame.filter(pl.col("unit") == "km")["key"].sort().to_list() == [
        "electricity.residualAutonomy.value",
        "odometer.value",
    ]


TS = datetime(2025, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)
VALUES: dict[str, Any] = {
    "electricity.level.percentage": 78,
    "electricity.residualAutonomy.value": 250.5,
    "electricity.capacity.value": 50000,
    "electricity.charging.status": "in-progress",
    "electricity.charging.plugged": True,
    "electricity.charging.rate": 22,
    "odometer.value": 11000.2,
    "odometer.unit": "mi",
    "electricity.battery.stateOfHealth.percentage": 97.0,
    "electricity.battery.stateOfHealth.datetime": datetime(2025, 2, 1, tzinfo=UTC),
}


def test_round_trip_recovers_values_units_and_datetimes() -> None:
    state = json.loads(json.dumps(encode_car_state(VIN, TS, VALUES)))
    rows = MobilisightAdapter().flatten(state)
    keyed = by_key(rows)
    assert state["datetime"] == "2025-03-01T10:00:00.123Z"
    assert state["odometer"] == {"value": 11000.2, "unit": "mi"}
    assert state["electricity"]["capacity"] == {"value": 50000, "unit": "Wh"}
    recovered = {r.key: r.value for r in rows if r.key != "datetimeSending"}
    expected = {k: v for k, v in VALUES.items() if not k.endswith((".unit", "datetime"))}
    assert recovered == expected
    assert keyed["odometer.value"].unit == "mi"
    assert keyed["electricity.residualAutonomy.value"].unit == "km"
    assert keyed["electricity.battery.stateOfHealth.percentage"].ts == datetime(
        2025, 2, 1, tzinfo=UTC
    )
    assert keyed["electricity.level.percentage"].ts == TS


def test_encoder_refuses_a_path_through_a_value() -> None:
    with pytest.raises(ValueError, match="goes through"):
        encode_car_state(VIN, TS, {"odometer": 5, "odometer.value": 6})


def test_options_are_strict_and_hide_secrets() -> None:
    adapter = Registry(["mobilisight"]).adapter(
        "mobilisight", {"email": "fleet@example.org", "password": "s3cret"}
    )
    assert "s3cret" not in repr(adapter.options)
    with pytest.raises(ValidationError):
        MobilisightAdapter({"mail": "fleet@example.org"})


HOSTILE: list[Any] = [None, [], {}, "x", 2**70, True, -1.5, [{"a": None}]]


def variants(node: Any) -> Any:
    """The message with one part at a time replaced by each hostile value."""
    if isinstance(node, dict | list):
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for name, child in items:
            for replacement in [*HOSTILE, *variants(child)]:
                copy = dict(node) if isinstance(node, dict) else list(node)
                copy[name] = replacement
                yield copy


@pytest.mark.parametrize("name", ["car_state.json", "car_state_miles.json"])
def test_hostile_variants_give_rows_or_a_data_contract_error(name: str) -> None:
    outcomes = {"rows": 0, "refused": 0}
    for payload in variants(load(name)):
        try:
            rows = MobilisightAdapter().flatten(
                payload, received_at=datetime(2025, 3, 1, tzinfo=UTC)
            )
        except DataContractError:
            outcomes["refused"] += 1
            continue
        assert rows_to_frame(rows, provider=MobilisightAdapter.name).height == len(rows)
        outcomes["rows"] += 1
    assert outcomes["rows"] > 0
    assert outcomes["refused"] > 0
