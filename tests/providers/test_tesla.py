"""Tesla adapter: Fleet Telemetry (protobuf and protojson) and Fleet API vehicle_data."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import bibev
from bibev.errors import DataContractError
from bibev.providers.base import FlatRow, SignalMap
from bibev.providers.tesla import (
    TeslaAdapter,
    TypedValue,
    decode_record,
    detect_encoding,
    encode_payload,
    payload_to_protojson,
    protojson_to_payload,
)
from bibev.providers.tesla import vehicle_data_pb2 as pb
from bibev.providers.tesla.mapping import MAPPING, MILE_KM
from bibev.providers.tesla.telemetry import shortest_float32
from bibev.schema import CHARGER_KINDS, CHARGING_STATES, CLEAN_SCHEMA, GEARS, rows_to_frame

FIXTURES = Path(__file__).parent / "fixtures" / "tesla"
VIN = "5YJ3E7EB2NF100042"
CREATED = datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def flatten(payload: Any) -> list[FlatRow]:
    return TeslaAdapter().flatten(payload)


def by_key(rows: list[FlatRow]) -> dict[str, FlatRow]:
    return {row.key: row for row in rows}


def json_leaf_count(node: Any) -> int:
    if isinstance(node, dict):
        return sum(json_leaf_count(child) for child in node.values())
    if isinstance(node, list):
        return sum(json_leaf_count(child) for child in node)
    return 1


# --- protobuf and protojson give the same rows -------------------------------------------

ENCODED_MESSAGES = {
    "every value type": [
        ("Soc", 71.2),
        ("BatteryLevel", 71),
        ("LifetimeEnergyUsed", TypedValue("long_value", 2**40)),
        ("ModuleTempMax", TypedValue("float_value", 23.1)),
        ("Odometer", TypedValue("string_value", "12345.6")),
        ("FastChargerPresent", False),
        ("Location", (52.370216, 4.895168)),
        ("ChargeState", TypedValue("charging_value", pb.ChargeStateCharging)),
        ("Gear", "ShiftStateD"),
        ("PackVoltage", None),
        ("BMSState", "BMSStateDrive"),
        ("CarType", "CarTypeModelY"),
        ("DetailedChargeState", "DetailedChargeStateStopped"),
        ("FastChargerType", "FastChargerCombo"),
        ("ChargingCableType", "CableTypeSAE"),
    ],
    "unknown field number and enum number": [
        ("Field_999", 5),
        (4242, "free text"),
        ("DetailedChargeState", TypedValue("detailed_charge_state_value", 42)),
    ],
    "zero values and an empty message": [("Soc", 0.0), ("ChargeLimitSoc", 0), ("Locked", "")],
    "no data": [],
}


@pytest.mark.parametrize("data", ENCODED_MESSAGES.values(), ids=ENCODED_MESSAGES.keys())
@pytest.mark.parametrize("is_resend", [False, True])
def test_protobuf_and_protojson_give_identical_rows(data, is_resend):
    raw = encode_payload(VIN, CREATED, data, is_resend=is_resend)
    from_protobuf = flatten(raw)
    from_json = flatten(payload_to_protojson(raw))
    from_json_text = flatten(json.dumps(payload_to_protojson(raw)).encode())
    assert from_protobuf == from_json == from_json_text
    locations = sum(1 for _, value in data if type(value) is tuple)
    assert len(from_protobuf) == len(data) + locations + is_resend


def test_handwritten_protojson_matches_its_protobuf_encoding():
    doc = fixture("telemetry_dc_charging")
    assert flatten(protojson_to_payload(doc)) == flatten(doc)


def test_python_values_go_to_the_documented_value_fields():
    raw = encode_payload(
        VIN,
        CREATED,
        [
            ("Soc", 1.5),
            ("BatteryLevel", 7),
            ("Odometer", 2**33),
            ("VehicleName", "car"),
            ("Locked", True),
            ("Location", (1.0, 2.0)),
            ("Gear", None),
            ("DetailedChargeState", "DetailedChargeStateCharging"),
            ("Gear", "ShiftStateR"),
        ],
    )
    message = pb.Payload.FromString(raw)
    kinds = [datum.value.WhichOneof("value") for datum in message.data]
    assert kinds == [
        "double_value",
        "int_value",
        "long_value",
        "string_value",
        "boolean_value",
        "location_value",
        "invalid",
        "detailed_charge_state_value",
        "shift_state_value",
    ]
    assert message.vin == VIN
    assert message.created_at.ToDatetime(tzinfo=UTC) == CREATED


def test_protojson_carries_int64_as_string_and_enum_names():
    raw = encode_payload(VIN, CREATED, [("Odometer", 2**33), ("Gear", "ShiftStateP")])
    doc = payload_to_protojson(raw)
    assert doc["data"][0]["value"] == {"longValue": str(2**33)}
    assert doc["data"][1]["value"] == {"shiftStateValue": "ShiftStateP"}
    assert doc["createdAt"] == "2025-03-01T10:00:00.123456Z"
    assert doc["isResend"] is False


def _datum_with_undeclared_value_field() -> bytes:
    # Datum{key=Soc(8), value=Value{field 11 (not declared here): varint 2}}
    value = bytes([0x58, 0x02])
    datum = bytes([0x08, 0x08, 0x12, len(value)]) + value
    return bytes([0x0A, len(datum)]) + datum


def test_undeclared_protobuf_fields_are_skipped_or_kept():
    base = encode_payload(VIN, CREATED, [("Soc", 50.0)])
    # an undeclared Payload field (number 9, varint) after the known ones
    assert flatten(base + bytes([0x48, 0x01])) == flatten(base)
    raw = _datum_with_undeclared_value_field() + base
    rows = flatten(raw)
    assert [(row.key, row.value) for row in rows] == [("Soc", 2), ("Soc", 50.0)]
    assert flatten(payload_to_protojson(raw)) == rows


def test_float_value_is_read_as_protojson_prints_it():
    assert shortest_float32(71.19999694824219) == 71.2
    assert shortest_float32(float("inf")) == float("inf")
    raw = encode_payload(VIN, CREATED, [("ModuleTempMax", TypedValue("float_value", 34.1))])
    assert flatten(raw)[0].value == 34.1


# --- the ugly cases ------------------------------------------------------------------------


def test_dc_charging_fixture_rows():
    doc = fixture("telemetry_dc_charging")
    rows = by_key(flatten(doc))
    assert len(flatten(doc)) == len(doc["data"]) + 1  # Location gives two rows
    assert rows["Soc"] == FlatRow(
        VIN, CREATED, "Soc", 41.37, "%", f"{VIN}:2025-03-01T10:00:00.123456Z"
    )
    assert rows["DetailedChargeState"].value == "DetailedChargeStateCharging"
    assert rows["Gear"].value == "ShiftStateP"
    assert rows["ScheduledChargingStartTime"].value == 1740823200
    assert rows["ACChargingPower"].value == 0.0
    assert isinstance(rows["ACChargingPower"].value, float)
    assert rows["Location.latitude"].value == 52.370216
    assert rows["Location.longitude"].unit == "°"
    assert rows["Odometer"].unit == "mi"
    assert (rows["VehicleSpeed"].value, rows["VehicleSpeed"].invalid) == (None, True)
    assert "_isResend" not in rows


@pytest.mark.parametrize(
    ("key", "value", "invalid"),
    [
        ("Soc", "71.2", False),  # string values stay strings
        ("Odometer", "12345.6", False),
        ("Gear", "D", False),
        ("PackVoltage", None, True),  # invalid: true
        ("PackCurrent", None, False),  # a datum without a value
        ("LifetimeEnergyUsed", 9007199254740993, False),  # int64 as a JSON string, exact
        ("SomeFutureSignal", 1.5, False),  # unknown key name kept
        ("Field_999", 7, False),  # unknown key number
        ("WiperHeatEnabled", "LaneAssistLevelWarning", False),  # undeclared value field
        ("DoorState.DriverFront", True, False),
        ("DoorState.TrunkRear", False, False),
        ("Location.latitude", 48.1351, False),
        ("Location.longitude", 0.0, False),  # proto3 default of a missing coordinate
        ("_isResend", True, False),
    ],
)
def test_old_firmware_fixture(key, value, invalid):
    row = by_key(flatten(fixture("telemetry_old_firmware")))[key]
    assert (row.value, row.invalid) == (value, invalid)
    assert type(row.value) is type(value)


def test_created_at_with_nanoseconds_and_offset_becomes_utc_microseconds():
    rows = flatten(fixture("telemetry_old_firmware"))
    assert {row.ts for row in rows} == {CREATED}
    raw = encode_payload(VIN, "2025-03-01T11:00:00.123456+01:00", [("Soc", 1.0)])
    assert flatten(raw)[0].ts == CREATED


@pytest.mark.parametrize(
    ("value_doc", "expected"),
    [
        ({"intValue": "12"}, 12),
        ({"longValue": 12}, 12),
        ({"longValue": "not a number"}, "not a number"),
        ({"doubleValue": 3}, 3.0),
        ({"doubleValue": "2.5"}, 2.5),
        ({"doubleValue": "NaN"}, "nan"),
        ({"double_value": 1.25}, 1.25),  # proto field names are valid protojson too
        ({"detailedChargeStateValue": 4}, "DetailedChargeStateCharging"),
        ({"detailedChargeStateValue": 42}, 42),
        ({"detailedChargeStateValue": "DetailedChargeStateFuture"}, "DetailedChargeStateFuture"),
        ({}, None),
        ({"invalid": False}, None),
    ],
)
def test_protojson_value_variants(value_doc, expected):
    doc = {
        "vin": VIN,
        "createdAt": "2025-03-01T10:00:00Z",
        "data": [{"key": "Soc", "value": value_doc}],
    }
    (row,) = flatten(doc)
    if expected == "nan":
        assert row.value != row.value
    else:
        assert row.value == expected
        assert type(row.value) is type(expected)
    assert row.invalid is False


def test_missing_keys_are_fine():
    assert flatten({"vin": VIN, "createdAt": "2025-03-01T10:00:00Z"}) == []
    assert (
        flatten({"vin": VIN, "createdAt": "2025-03-01T10:00:00Z", "data": [{}]})[0].key == "Unknown"
    )


# --- Fleet API vehicle_data ---------------------------------------------------------------


def test_fleet_api_every_leaf_becomes_a_row():
    doc = fixture("fleet_api_vehicle_data")
    rows = flatten(doc)
    assert len(rows) == json_leaf_count(doc["response"])
    assert flatten(doc["response"]) == rows
    assert {row.vin for row in rows} == {VIN}


@pytest.mark.parametrize(
    ("key", "value", "unit", "ts_ms"),
    [
        ("vehicle_state.odometer", 23456.789012, "mi", 1740823200999),
        ("charge_state.battery_range", 171.52, "mi", 1740823200123),
        ("charge_state.charging_state", "Charging", None, 1740823200123),
        ("charge_state.scheduled_charging_start_time", None, None, 1740823200123),
        ("drive_state.speed", None, "mph", 1740823200789),
        ("drive_state.shift_state", None, None, 1740823200789),
        ("vehicle_state.speed_limit_mode.current_limit_mph", 85.0, None, 1740823200999),
        ("tokens.1", "token-b", None, 1740823200999),
        ("state", "online", None, 1740823200999),
        ("charge_state.timestamp", 1740823200123, "ms", 1740823200123),
    ],
)
def test_fleet_api_rows(key, value, unit, ts_ms):
    row = by_key(flatten(fixture("fleet_api_vehicle_data")))[key]
    assert (row.value, row.unit, row.invalid) == (value, unit, False)
    assert row.ts == datetime.fromtimestamp(ts_ms / 1000, UTC)
    assert row.message_id == f"{VIN}:2025-03-01T10:00:00.999000Z"


def test_fleet_api_nested_lists_and_response_timestamp():
    doc = {
        "vin": VIN,
        "timestamp": 1740823200000,
        "drive_state": {"route": [{"lat": 1.0, "lon": 2.0}, [3, None]]},
        "vehicle_state": {},
    }
    rows = flatten({"response": doc})
    assert [(r.key, r.value) for r in rows] == [
        ("vin", VIN),
        ("timestamp", 1740823200000),
        ("drive_state.route.0.lat", 1.0),
        ("drive_state.route.0.lon", 2.0),
        ("drive_state.route.1.0", 3),
        ("drive_state.route.1.1", None),
    ]
    assert {r.ts for r in rows} == {datetime(2025, 3, 1, 10, 0, tzinfo=UTC)}


# --- unreadable messages --------------------------------------------------------------------

TRUNCATED = encode_payload(VIN, CREATED, [("Soc", 50.0)])[:-5]

MALFORMED = {
    "not JSON text": ("{not json", "not JSON"),
    "not JSON bytes": (b"\xff\xfe\xfd garbage", "unreadable protobuf"),
    "list instead of dict": ([{"vin": VIN}], "not an object"),
    "a number": (42, "not an object"),
    "empty bytes": (b"", "empty protobuf"),
    "truncated protobuf": (TRUNCATED, "unreadable protobuf"),
    "protobuf without vin": (
        pb.Payload(created_at={"seconds": 1}).SerializeToString(),
        "no vin",
    ),
    "protobuf without createdAt": (pb.Payload(vin=VIN).SerializeToString(), "no createdAt"),
    "protojson without vin": ({"createdAt": "2025-03-01T10:00:00Z", "data": []}, "no vin"),
    "protojson without createdAt": ({"vin": VIN, "data": []}, "no createdAt"),
    "bad createdAt": ({"vin": VIN, "createdAt": "yesterday", "data": []}, "unparseable timestamp"),
    "numeric createdAt": ({"vin": VIN, "createdAt": 17, "data": []}, "unparseable createdAt"),
    "data not a list": (
        {"vin": VIN, "createdAt": "2025-03-01T10:00:00Z", "data": {}},
        "not a list",
    ),
    "datum not an object": (
        {"vin": VIN, "createdAt": "2025-03-01T10:00:00Z", "data": ["Soc"]},
        "datum is not an object",
    ),
    "unknown shape": ({"hello": "world"}, "not a Tesla message"),
    "fleet api without vin": ({"response": {"charge_state": {"timestamp": 1}}}, "no vin"),
    "fleet api asleep": (
        {"response": None, "error": "vehicle unavailable"},
        "no response object",
    ),
    "fleet api without timestamp": ({"response": {"vin": VIN, "state": "online"}}, "no timestamp"),
    "fleet api bad section timestamp": (
        {"response": {"vin": VIN, "charge_state": {"timestamp": "soon"}}},
        "unparseable epoch timestamp",
    ),
}


@pytest.mark.parametrize(("payload", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_unreadable_messages_raise_data_contract_error(payload, reason):
    with pytest.raises(DataContractError) as caught:
        flatten(payload)
    assert reason in caught.value.reason


# --- encodings ----------------------------------------------------------------------------


def _protobuf_starting_with_brace() -> bytes:
    # a first datum of 123 bytes serialises as b"\n{" (field 1, length 0x7b)
    raw = encode_payload(VIN, CREATED, [("VehicleName", "x" * 117)])
    assert raw[:2] == b"\n{"
    return raw


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (encode_payload(VIN, CREATED, [("Soc", 1.0)]), "protobuf"),
        (b' \n{"vin": "X", "data": []}', "json"),
        (b"[1, 2]", "protobuf"),
        (b"{broken", "protobuf"),
        (_protobuf_starting_with_brace(), "protobuf"),
    ],
)
def test_detect_encoding(raw, encoding):
    assert detect_encoding(raw) == encoding


def test_decode_record_gives_protojson_for_both_encodings():
    raw = encode_payload(VIN, CREATED, [("Soc", 1.0)])
    doc = decode_record(raw)
    assert doc["vin"] == VIN
    assert decode_record(json.dumps(doc).encode()) == doc
    assert flatten(_protobuf_starting_with_brace())[0].value == "x" * 117


def test_encode_payload_rejects_what_it_cannot_encode():
    with pytest.raises(DataContractError, match="unknown Fleet Telemetry field name"):
        encode_payload(VIN, CREATED, [("NoSuchField", 1.0)])
    with pytest.raises(DataContractError, match="cannot encode value"):
        encode_payload(VIN, CREATED, [("Soc", [1, 2])])


# --- the compressed frame -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["telemetry_dc_charging", "telemetry_old_firmware", "fleet_api_vehicle_data"]
)
def test_rows_go_through_rows_to_frame(name):
    rows = flatten(fixture(name))
    frame = rows_to_frame(rows, provider="tesla", received_at=CREATED)
    assert frame.height == len(rows)
    typed = frame.select(
        pl.sum_horizontal(
            pl.col(c).is_not_null() for c in ("value_f64", "value_i64", "value_str", "value_bool")
        )
    ).to_series()
    assert typed.max() <= 1
    nulls = sum(1 for row in rows if row.value is None)
    assert (typed == 0).sum() == nulls


def test_frame_keeps_the_type_that_was_sent():
    frame = rows_to_frame(flatten(fixture("telemetry_old_firmware")), provider="tesla")
    soc = frame.filter(pl.col("key") == "Soc").row(0, named=True)
    assert (soc["value_str"], soc["value_f64"]) == ("71.2", None)
    energy = frame.filter(pl.col("key") == "LifetimeEnergyUsed").row(0, named=True)
    assert energy["value_i64"] == 9007199254740993
    assert frame.filter(pl.col("invalid"))["key"].to_list() == ["PackVoltage"]


# --- generated module and mapping -------------------------------------------------------------


def test_generated_module_is_in_sync_with_the_proto(tmp_path):
    root = Path(bibev.__file__).resolve().parent.parent
    proto = "bibev/providers/tesla/vehicle_data.proto"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            proto,
        ],
        cwd=root,
        check=True,
    )
    for suffix in ("_pb2.py", "_pb2.pyi"):
        generated = tmp_path / proto.replace(".proto", suffix)
        committed = root / proto.replace(".proto", suffix)
        assert committed.read_text() == generated.read_text(), f"regenerate {committed.name}"


ENUM_TARGETS = {"charging_state": CHARGING_STATES, "gear": GEARS, "charger_kind": CHARGER_KINDS}
FIELD_NAMES = set(pb.Field.keys())
FLEET_KEYS = {row.key for row in flatten(fixture("fleet_api_vehicle_data"))}


@pytest.mark.parametrize("signal", MAPPING, ids=lambda s: s.key)
def test_mapping_rows_are_sane(signal: SignalMap):
    assert signal.column in CLEAN_SCHEMA
    assert signal.column not in ("vin", "ts")
    assert signal.cast in ("float", "int", "bool", "str")
    if signal.column in ENUM_TARGETS:
        assert signal.enum
        assert set(signal.enum.values()) <= set(ENUM_TARGETS[signal.column])
    else:
        assert signal.enum is None
    if "." in signal.key and not signal.key.startswith("Location."):
        assert signal.key in FLEET_KEYS  # the fixture exercises every Fleet API key
    else:
        assert signal.key.split(".")[0] in FIELD_NAMES


def test_mapping_enum_vocabularies_cover_the_proto_enums():
    charging = next(s for s in MAPPING if s.key == "DetailedChargeState").enum
    assert set(pb.DetailedChargeStateValue.keys()) <= set(charging)
    assert charging["DetailedChargeStateNoPower"] == "plugged"
    gear = next(s for s in MAPPING if s.key == "Gear").enum
    assert {
        gear[name] for name in ("ShiftStateP", "ShiftStateR", "ShiftStateN", "ShiftStateD")
    } == set(GEARS)
    assert "ShiftStateSNA" not in gear


def _convert(signal: SignalMap, value: Any) -> Any:
    """The row-wise rule the SignalMap docstring describes."""
    if signal.enum is not None:
        table = {k.lower(): v for k, v in signal.enum.items()}
        return table.get(str(value).lower())
    return float(value) * signal.scale + signal.offset


@pytest.mark.parametrize(
    ("name", "key", "expected"),
    [
        ("telemetry_dc_charging", "Odometer", 23456.78 * MILE_KM),
        ("telemetry_dc_charging", "RatedRange", 118.4 * MILE_KM),
        ("telemetry_dc_charging", "DetailedChargeState", "charging"),
        ("telemetry_dc_charging", "Gear", "P"),
        ("telemetry_dc_charging", "FastChargerType", "dc"),
        ("telemetry_dc_charging", "FastChargerPresent", "dc"),
        ("telemetry_old_firmware", "Soc", 71.2),
        ("telemetry_old_firmware", "VehicleSpeed", 37 * MILE_KM),
        ("telemetry_old_firmware", "Gear", "D"),
        ("telemetry_old_firmware", "ChargeState", "disconnected"),
        ("fleet_api_vehicle_data", "vehicle_state.odometer", 23456.789012 * MILE_KM),
        ("fleet_api_vehicle_data", "charge_state.charging_state", "charging"),
        ("fleet_api_vehicle_data", "charge_state.fast_charger_type", "ac"),
        ("fleet_api_vehicle_data", "charge_state.fast_charger_present", "none"),
        ("fleet_api_vehicle_data", "charge_state.battery_level", 64.0),
    ],
)
def test_mapping_converts_fixture_values(name, key, expected):
    row = by_key(flatten(fixture(name)))[key]
    signal = next(s for s in MAPPING if s.key == key)
    converted = _convert(signal, row.value)
    assert converted == (pytest.approx(expected) if isinstance(expected, float) else expected)


def test_adapter_contract():
    adapter = TeslaAdapter({"client_id": "abc", "refresh_token": "rt-s3cr3t-value"})
    assert adapter.name == "tesla"
    assert adapter.formats == ("fleet-telemetry-protobuf", "fleet-telemetry-json", "fleet-api-json")
    assert adapter.options.telemetry_topic == "tesla_V"
    assert "rt-s3cr3t-value" not in repr(adapter.options)
    assert adapter.can_fetch is False
    with pytest.raises(ValueError, match="client_idd"):
        TeslaAdapter({"client_idd": "typo"})


def test_mapping_through_the_pipeline_mapper():
    from bibev.pipeline.mapping import apply_mapping

    frame = rows_to_frame(flatten(fixture("telemetry_dc_charging")), provider="tesla")
    mapped = apply_mapping(frame, MAPPING).collect()
    values = {
        (row["key"], row["column"]): row["value_f64"]
        if row["value_str"] is None
        else row["value_str"]
        for row in mapped.iter_rows(named=True)
    }
    assert values[("Odometer", "odometer_km")] == pytest.approx(23456.78 * MILE_KM)
    assert values[("DetailedChargeState", "charging_state")] == "charging"
    assert values[("FastChargerPresent", "charger_kind")] == "dc"
    assert values[("VehicleSpeed", "speed_kmh")] is None
    assert ("BatteryLevel", "soc_pct") not in values
