"""High Mobility adapter: REST and push v2 shapes, failures, mapping, encoders."""

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
from bibev.providers.high_mobility import (
    Failure,
    HighMobilityAdapter,
    encode_push,
    encode_rest,
)
from bibev.providers.high_mobility.mapping import CHARGING_STATUS, UNMAPPED
from bibev.providers.registry import Registry, check_adapter_class
from bibev.schema import CHARGER_KINDS, CHARGING_STATES, CLEAN_SCHEMA, rows_to_frame

FIXTURES = Path(__file__).parent / "fixtures" / "high_mobility"
VIN = "WVW00000000000002"
T10 = datetime(2025, 3, 1, 10, tzinfo=UTC)
RECEIVED = datetime(2025, 3, 1, 12, tzinfo=UTC)
COLUMN_UNITS = {"odometer_km": "km", "range_km": "km", "charging_power_kw": "kW"}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def by_key(rows: list[FlatRow]) -> dict[str, list[FlatRow]]:
    out: dict[str, list[FlatRow]] = {}
    for row in rows:
        out.setdefault(row.key, []).append(row)
    return out


def canonical(rows: list[FlatRow]) -> dict[str, Any]:
    """Apply the mapping table the plain way, converting by the row's unit word when the
    column has a unit that the word measures (miles → km)."""
    out: dict[str, Any] = {}
    for signal in HighMobilityAdapter.mapping:
        for row in by_key(rows).get(signal.key, []):
            if row.invalid or row.value is None:
                continue
            if signal.enum is not None:
                out[signal.column] = signal.enum[str(row.value).lower()]
                continue
            factor = unit_factor(row.unit, COLUMN_UNITS.get(signal.column, "?"))
            out[signal.column] = float(row.value) * (factor or signal.scale) + signal.offset
    return out


def test_rest_rows() -> None:
    rows = HighMobilityAdapter().flatten(load("rest_vehicle_data.json"))
    keyed = by_key(rows)
    assert len(rows) == 24
    assert keyed["charging.battery_level"] == [
        FlatRow(
            VIN, T10, "charging.battery_level", 0.78, None, "5f0c2a71-9d1e-4c55-8a2b-000000000042"
        )
    ]
    (rng,) = keyed["charging.estimated_range"]
    assert (rng.value, rng.unit) == (312.0, "kilometers")
    (odo,) = keyed["diagnostics.odometer"]
    assert (odo.value, odo.unit) == (7456.3, "miles")
    # deprecated and 12 V properties are kept as rows
    assert keyed["charging.charging_rate_kw"][0].value == 48.6
    assert keyed["diagnostics.battery_voltage"][0].value == 12.6
    # an int64 as a JSON string stays a string
    assert keyed["diagnostics.engine_total_operating_time"][0].value == "9007199254740993"
    # structured data by dotted path, sharing the data point's ts
    assert [r.value for r in keyed["chassis.tire_pressures.location"]] == [
        "front_left",
        "front_right",
    ]
    assert [(r.value, r.unit) for r in keyed["chassis.tire_pressures.pressure"]] == [
        (2.4, "bars"),
        (2.5, "bars"),
    ]
    # unknown capability and an unknown field of a data point
    assert keyed["hypothetical_capability.new_property"][0].value is True
    assert keyed["hypothetical_capability.new_property.quality"][0].value == "estimated"


def test_failure_is_an_invalid_row_with_the_reason() -> None:
    rows = HighMobilityAdapter().flatten(load("rest_vehicle_data.json"))
    keyed = by_key(rows)
    stamp = datetime(2025, 3, 1, 10, 0, 1, tzinfo=UTC)
    assert [(r.value, r.invalid, r.ts) for r in keyed["charging.charge_limit"]] == [
        ("rate_limit", True, stamp)
    ]
    (text,) = keyed["charging.charge_limit.failure.description"]
    assert (text.value, text.invalid) == ("Too many requests to the vehicle", True)
    assert sum(r.invalid for r in rows) == 2
    assert "charge_limit_pct" not in canonical(rows)


def test_push_rows() -> None:
    rows = HighMobilityAdapter().flatten(load("push_v2.json"))
    keyed = by_key(rows)
    assert len(rows) == 9
    assert [(r.value, r.ts.minute) for r in keyed["charging.battery_level"]] == [
        (0.5, 0),
        (0.52, 1),
    ]
    assert [(r.value, r.invalid) for r in keyed["charging.battery_temperature"]] == [
        ("oem_error", True)
    ]
    assert keyed["vehicle_location.coordinates.latitude"][0].value == 52.5163
    assert {r.message_id for r in rows} == {"01HQ7Z9XK3M8Y0000000000001"}
    assert not any(r.key.startswith(("version", "application_id")) for r in rows)


def test_mapping_reads_the_fixtures() -> None:
    rest = canonical(HighMobilityAdapter().flatten(load("rest_vehicle_data.json")))
    assert rest == {
        "soc_pct": pytest.approx(78.0),
        "charging_state": "charging",
        "charger_kind": "dc",
        "charging_power_kw": 48.6,
        "pack_current_a": 121.5,
        "pack_voltage_v": 400.2,
        "battery_temp_min_c": 31.5,
        "battery_temp_max_c": 31.5,
        "range_km": 312.0,
        "energy_remaining_kwh": 58.4,
        "oem_soh_pct": pytest.approx(103.0),
        "odometer_km": pytest.approx(7456.3 * 1.609344),
    }
    push = canonical(HighMobilityAdapter().flatten(load("push_v2.json")))
    assert push["soc_pct"] == pytest.approx(52.0)
    assert (push["charger_kind"], push["odometer_km"]) == ("ac", 12001.0)
    assert (push["latitude"], push["longitude"]) == (52.5163, 13.3777)


def test_mapping_targets_exist() -> None:
    for signal in HighMobilityAdapter.mapping:
        assert signal.column in CLEAN_SCHEMA
        assert signal.cast in ("float", "int", "bool", "str")
        if signal.column == "charging_state":
            assert signal.enum
            assert set(signal.enum.values()) <= set(CHARGING_STATES)
        if signal.column == "charger_kind":
            assert set(signal.enum.values()) <= set(CHARGER_KINDS)
    mapped = {s.key for s in HighMobilityAdapter.mapping}
    assert not mapped & set(UNMAPPED)
    assert "diagnostics.battery_voltage" not in mapped
    check_adapter_class(HighMobilityAdapter, "high-mobility")


def test_charging_status_has_the_fourteen_values() -> None:
    assert len(CHARGING_STATUS) == 14
    assert CHARGING_STATUS["fast_charging"] == "charging"
    assert CHARGING_STATUS["cable_unplugged"] == "disconnected"
    assert CHARGING_STATUS["charging_complete"] == "complete"


PUSH_OK: dict[str, Any] = {"version": 2, "message_id": "m1", "vin": VIN}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "not a JSON object"),
        ("{", "not JSON"),
        ("[1]", "not a JSON object"),
        ({"request_id": "r"}, "no VIN"),
        ({**PUSH_OK, "vin": None, "data": {}}, "no VIN"),
        ({**PUSH_OK, "version": 3, "data": {}}, "unsupported push version"),
        ({"errors": [{"title": "Unauthorized"}]}, "error response"),
        ({"vin": VIN, "charging": {"battery_level": {"data": 0.5}}}, "no timestamp"),
        (
            {"vin": VIN, "charging": {"status": {"data": "charging", "timestamp": "soon"}}},
            "unreadable",
        ),
        ({**PUSH_OK, "data": {"charging": {"status": [{"timestamp": [1]}]}}}, "timestamp"),
        ({"vin": VIN, "request_id": "r", "extra_flag": True}, "no timestamp"),
    ],
)
def test_unreadable_messages_raise_data_contract_error(payload: Any, reason: str) -> None:
    with pytest.raises(DataContractError) as info:
        HighMobilityAdapter().flatten(payload)
    assert reason in str(info.value)


def test_push_bytes_are_read_like_objects() -> None:
    raw = (FIXTURES / "push_v2.json").read_bytes()
    assert HighMobilityAdapter().flatten(raw) == HighMobilityAdapter().flatten(json.loads(raw))


def test_received_at_stands_in_for_a_missing_timestamp() -> None:
    payload = {"vin": VIN, "charging": {"battery_level": {"data": 0.5}}, "extra_flag": 1}
    rows = HighMobilityAdapter().flatten(payload, received_at=RECEIVED)
    assert [(r.key, r.value, r.ts) for r in rows] == [
        ("charging.battery_level", 0.5, RECEIVED),
        ("extra_flag", 1, RECEIVED),
    ]


def test_rows_go_through_the_compressed_schema() -> None:
    rows = HighMobilityAdapter().flatten(load("rest_vehicle_data.json"))
    frame = rows_to_frame(rows, provider="high-mobility", received_at=RECEIVED)
    assert frame.height == 24
    assert frame.filter(pl.col("invalid"))["value_str"].to_list() == [
        "rate_limit",
        "Too many requests to the vehicle",
    ]
    odo = frame.filter(pl.col("key") == "diagnostics.odometer").row(0, named=True)
    assert (odo["value_f64"], odo["unit"]) == (7456.3, "miles")


VALUES: dict[str, Any] = {
    "charging.battery_level": 0.78,
    "charging.status": "charging",
    "charging.plugged_in": "plugged_in",
    "charging.estimated_range": 312.0,
    "charging.battery_current": (-12, "amperes"),
    "diagnostics.odometer": (7456, "miles"),
    "charging.state_of_health": 1.01,
    "diagnostics.vin_count": "9007199254740993",
    "doors.locked": True,
}
EXPECTED = {
    "charging.battery_level": (0.78, None),
    "charging.status": ("charging", None),
    "charging.plugged_in": ("plugged_in", None),
    "charging.estimated_range": (312.0, "kilometers"),
    "charging.battery_current": (-12, "amperes"),
    "diagnostics.odometer": (7456, "miles"),
    "charging.state_of_health": (1.01, None),
    "diagnostics.vin_count": ("9007199254740993", None),
    "doors.locked": (True, None),
}
TS = datetime(2025, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize("encode", [encode_rest, encode_push])
def test_round_trip_recovers_values_and_units(encode: Any) -> None:
    message = json.loads(json.dumps(encode(VIN, TS, VALUES)))
    rows = HighMobilityAdapter().flatten(message)
    assert {r.key: (r.value, r.unit) for r in rows} == EXPECTED
    assert {type(r.value) for r in rows} == {float, str, int, bool}
    assert {r.ts for r in rows} == {TS}
    assert {r.message_id for r in rows} == {message.get("message_id") or message["request_id"]}


def test_encoders_write_the_documented_shapes() -> None:
    rest = encode_rest(VIN, TS, {"charging.battery_level": 0.5}, request_id="r-1")
    assert rest == {
        "request_id": "r-1",
        "vin": VIN,
        "charging": {"battery_level": {"data": 0.5, "timestamp": "2025-03-01T10:00:00.250Z"}},
    }
    push = encode_push(VIN, TS, {"charging.battery_level": [0.5, 0.51]}, message_id="m-1")
    assert push["version"] == 2
    assert push["data"]["charging"]["battery_level"] == [
        {"data": 0.5, "timestamp": "2025-03-01T10:00:00.250Z"},
        {"data": 0.51, "timestamp": "2025-03-01T10:00:00.250Z"},
    ]
    assert (
        encode_push(VIN, TS, {"a.b": 1})["message_id"]
        == encode_push(VIN, TS, {"a.b": 1})["message_id"]
    )
    with pytest.raises(ValueError, match=r"capability\.property"):
        encode_rest(VIN, TS, {"battery_level": 0.5})


def test_encoded_failure_round_trips() -> None:
    values = {
        "charging.charge_limit": Failure("privacy_mode_active"),
        "charging.status": Failure("oem_error", "vehicle asleep"),
    }
    rows = HighMobilityAdapter().flatten(encode_push(VIN, TS, values))
    assert [(r.key, r.value, r.invalid) for r in rows] == [
        ("charging.charge_limit", "privacy_mode_active", True),
        ("charging.status", "oem_error", True),
        ("charging.status.failure.description", "vehicle asleep", True),
    ]


def test_options_are_strict_and_hide_secrets() -> None:
    adapter = Registry(["high-mobility"]).adapter(
        "high-mobility", {"client_id": "id", "client_secret": "s3cret"}
    )
    assert adapter.options.auto_api_version == "autoapi-13"
    assert "s3cret" not in repr(adapter.options)
    with pytest.raises(ValidationError):
        HighMobilityAdapter({"client_secrett": "typo"})


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


@pytest.mark.parametrize("name", ["rest_vehicle_data.json", "push_v2.json"])
def test_hostile_variants_give_rows_or_a_data_contract_error(name: str) -> None:
    outcomes = {"rows": 0, "refused": 0}
    for payload in variants(load(name)):
        try:
            rows = HighMobilityAdapter().flatten(
                payload, received_at=datetime(2025, 3, 1, tzinfo=UTC)
            )
        except DataContractError:
            outcomes["refused"] += 1
            continue
        assert rows_to_frame(rows, provider=HighMobilityAdapter.name).height == len(rows)
        outcomes["rows"] += 1
    assert outcomes["rows"] > 0
    assert outcomes["refused"] > 0
