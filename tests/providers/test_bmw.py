"""BMW CarData adapter: REST and streaming shapes, mapping, encoders."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from bibev.errors import DataContractError
from bibev.providers.base import FlatRow
from bibev.providers.bmw import BmwAdapter, encode_rest, encode_stream
from bibev.providers.bmw.mapping import CHARGING_STATUS
from bibev.providers.bmw.wire import rest_string
from bibev.providers.registry import Registry, check_adapter_class
from bibev.schema import CHARGING_STATES, CLEAN_SCHEMA, rows_to_frame

FIXTURES = Path(__file__).parent / "fixtures" / "bmw"
VIN = "WBY00000000000001"
RECEIVED = datetime(2025, 3, 1, 10, 0, 30, tzinfo=UTC)
HEADER = "vehicle.drivetrain.batteryManagement.header"
POWER = "vehicle.drivetrain.electricEngine.charging.power"
STATUS = "vehicle.drivetrain.electricEngine.charging.status"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def by_key(rows: list[FlatRow]) -> dict[str, FlatRow]:
    return {row.key: row for row in rows}


def canonical(rows: list[FlatRow]) -> dict[str, Any]:
    """Apply the mapping table the plain way: cast, enum, scale."""
    out: dict[str, Any] = {}
    for signal in BmwAdapter.mapping:
        row = by_key(rows).get(signal.key)
        if row is None or row.value is None:
            continue
        if signal.enum is not None:
            out[signal.column] = signal.enum[str(row.value).upper()]
        else:
            out[signal.column] = float(row.value) * signal.scale + signal.offset
    return out


def test_rest_keeps_every_entry_as_sent() -> None:
    rows = BmwAdapter().flatten(load("rest_telematic_data.json"), received_at=RECEIVED)
    keyed = by_key(rows)
    assert len(rows) == 11
    assert keyed[HEADER] == FlatRow(VIN, datetime(2025, 3, 1, 10, tzinfo=UTC), HEADER, "78", "%")
    assert keyed[POWER].value == "7400.5"
    flag = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"
    assert keyed[flag].value == "true"
    # an offset timestamp is read as UTC
    port = keyed["vehicle.body.chargingPort.status"]
    assert port.ts == datetime(2025, 3, 1, 8, 30, 0, 250000, tzinfo=UTC)
    # an int64 sent as a string stays a string
    assert keyed["vehicle.experimental.counterMicroseconds"].value == "9223372036854775807"
    # a key with no data: a null row at received_at, not an invalid flag
    empty = keyed["vehicle.cabin.hvac.preconditioning.status.comfortState"]
    assert (empty.value, empty.ts, empty.invalid) == (None, RECEIVED, False)
    assert {row.message_id for row in rows} == {None}


def test_rest_entry_without_timestamp_needs_received_at() -> None:
    with pytest.raises(DataContractError, match="no timestamp") as info:
        BmwAdapter().flatten(load("rest_telematic_data.json"))
    assert info.value.value == "vehicle.cabin.hvac.preconditioning.status.comfortState"


def test_stream_keeps_types_nested_values_and_unknown_fields() -> None:
    rows = BmwAdapter().flatten(load("stream_message.json"), received_at=RECEIVED)
    keyed = by_key(rows)
    message_ts = datetime(2025, 3, 1, 10, 5, 0, 500000, tzinfo=UTC)
    assert len(rows) == 11
    assert (keyed[HEADER].value, keyed[POWER].value) == (79, 7350.0)
    assert type(keyed[HEADER].value) is int
    assert (
        keyed["vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"].value
        is True
    )
    assert keyed[HEADER].ts == datetime(2025, 3, 1, 10, 4, 59, tzinfo=UTC)
    # an entry without its own timestamp takes the message's
    lat = keyed["vehicle.cabin.infotainment.navigation.currentLocation.latitude"]
    assert (lat.value, lat.unit, lat.ts) == (48.1772, "degrees", message_ts)
    windows = "vehicle.drivetrain.electricEngine.charging.chargingTimeWindows"
    assert [keyed[f"{windows}.{i}.{f}"].value for i in (0, 1) for f in ("start", "end")] == [
        "22:00",
        "06:00",
        "12:00",
        "13:30",
    ]
    assert keyed[f"{windows}.quality"].value == "GOOD"
    assert (keyed["sequence"].value, keyed["sequence"].ts) == (1841, message_ts)
    assert {row.message_id for row in rows} == {"a3c1f0de-0000-4000-8000-000000000001"}


def test_rows_go_through_the_compressed_schema() -> None:
    rest = BmwAdapter().flatten(load("rest_telematic_data.json"), received_at=RECEIVED)
    stream = BmwAdapter().flatten(load("stream_message.json"))
    frame = rows_to_frame(rest + stream, provider="bmw", received_at=RECEIVED)
    assert frame.height == 22
    header = frame.filter(pl.col("key") == HEADER).sort("ts")
    assert header["value_str"].to_list() == ["78", None]
    assert header["value_i64"].to_list() == [None, 79]
    assert frame.filter(pl.col("value_bool"))["key"].to_list() == [
        "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"
    ]


def test_mapping_reads_the_rest_fixture() -> None:
    rows = BmwAdapter().flatten(load("rest_telematic_data.json"), received_at=RECEIVED)
    assert canonical(rows) == {
        "soc_pct": 78.0,
        "odometer_km": 41200.0,
        "range_km": 312.0,
        "charging_power_kw": pytest.approx(7.4005),
        "charging_state": "charging",
    }


def test_mapping_targets_exist() -> None:
    for signal in BmwAdapter.mapping:
        assert signal.column in CLEAN_SCHEMA
        assert signal.cast in ("float", "int", "bool", "str")
        if signal.enum is not None:
            assert set(signal.enum.values()) <= set(CHARGING_STATES)
    assert len({s.key for s in BmwAdapter.mapping}) == len(BmwAdapter.mapping)
    check_adapter_class(BmwAdapter, "bmw")


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("NOCHARGING", "unknown"),
        ("INITIALIZATION", "charging"),
        ("CHARGINGACTIVE", "charging"),
        ("CHARGINGPAUSED", "stopped"),
        ("CHARGINGENDED", "complete"),
        ("CHARGINGERROR", "error"),
    ],
)
def test_documented_charging_vocabulary(status: str, state: str) -> None:
    assert CHARGING_STATUS[status] == state


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "not a JSON object"),
        ("telematicData", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (42, "not a JSON object"),
        (None, "not a JSON object"),
        ({"vin": VIN}, "neither 'telematicData'"),
        ({"telematicData": {}}, "no VIN"),
        ({"vin": "", "telematicData": {}}, "no VIN"),
        ({"vin": 12345, "data": {}}, "no VIN"),
        ({"vin": VIN, "telematicData": ["a"]}, "cardata-rest entries is not a JSON object"),
        ({"vin": VIN, "data": "x", "timestamp": "2025-03-01T10:00:00Z"}, "entries is not"),
        ({"vin": VIN, "data": {}, "timestamp": "yesterday"}, "unreadable timestamp"),
        ({"vin": VIN, "telematicData": {HEADER: {"value": "1", "timestamp": True}}}, "boolean"),
        ({"vin": VIN, "telematicData": {HEADER: {"value": "1", "timestamp": "10h"}}}, "unreadable"),
        ({"vin": VIN, "data": {HEADER: {"value": 1}}}, "no timestamp"),
        (load("error_quota.json"), "error response (CU-429)"),
    ],
)
def test_unreadable_messages_raise_data_contract_error(payload: Any, reason: str) -> None:
    with pytest.raises(DataContractError) as info:
        BmwAdapter().flatten(payload)
    assert reason in str(info.value)


def test_json_text_and_bytes_are_read_like_objects() -> None:
    text = (FIXTURES / "stream_message.json").read_text()
    expected = BmwAdapter().flatten(json.loads(text))
    assert BmwAdapter().flatten(text) == expected
    assert BmwAdapter().flatten(text.encode()) == expected


def test_bare_value_entry_is_kept() -> None:
    payload = {"vin": VIN, "telematicData": {HEADER: "77"}}
    assert BmwAdapter().flatten(payload, received_at=RECEIVED) == [
        FlatRow(VIN, RECEIVED, HEADER, "77")
    ]


def test_integer_beyond_int64_is_kept_as_text() -> None:
    message = encode_stream(VIN, RECEIVED, {"vehicle.counter": 2**64})
    assert BmwAdapter().flatten(message)[0].value == str(2**64)


VALUES: dict[str, Any] = {
    HEADER: 78,
    POWER: 7400.5,
    STATUS: "CHARGINGACTIVE",
    "vehicle.vehicle.travelledDistance": 41200,
    "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged": True,
    "vehicle.unknown.tireTemperature": (21.5, "°C"),
}
TS = datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)


def plain(raw: Any) -> Any:
    return raw[0] if isinstance(raw, tuple) else raw


def test_stream_round_trip_recovers_typed_values() -> None:
    message = encode_stream(VIN, TS, VALUES, gcid="g-1")
    rows = BmwAdapter().flatten(json.loads(json.dumps(message)))
    assert message["topic"] == f"g-1/{VIN}"
    assert {r.key: r.value for r in rows} == {k: plain(v) for k, v in VALUES.items()}
    assert {type(r.value) for r in rows} == {int, float, str, bool}
    assert {r.ts for r in rows} == {TS}
    assert by_key(rows)[POWER].unit == "W"
    assert by_key(rows)["vehicle.unknown.tireTemperature"].unit == "°C"
    assert {r.message_id for r in rows} == {message["entityId"]}


def test_rest_round_trip_recovers_values_as_rest_strings() -> None:
    message = encode_rest(VIN, TS, VALUES)
    rows = BmwAdapter().flatten(json.loads(json.dumps(message)))
    assert {r.key: r.value for r in rows} == {k: rest_string(plain(v)) for k, v in VALUES.items()}
    assert by_key(rows)[HEADER].value == "78"
    assert (
        by_key(rows)["vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"].value
        == "true"
    )
    assert {r.ts for r in rows} == {TS}


def test_encoders_accept_an_entry_with_its_own_timestamp() -> None:
    own = datetime(2025, 3, 1, 9, tzinfo=UTC)
    message = encode_stream(VIN, TS, {HEADER: {"value": 70, "timestamp": own}})
    (row,) = BmwAdapter().flatten(message)
    assert (row.value, row.unit, row.ts) == (70, "%", own)
    assert message["data"][HEADER]["timestamp"] == "2025-03-01T09:00:00Z"


def test_bare_rest_body_is_the_http_response_and_needs_the_wrapper() -> None:
    body = encode_rest(VIN, TS, {HEADER: 78}, include_vin=False)
    assert body == {
        "telematicData": {
            HEADER: {"value": "78", "unit": "%", "timestamp": "2025-03-01T10:00:00.123456Z"}
        }
    }
    with pytest.raises(DataContractError, match="no VIN"):
        BmwAdapter().flatten(body)
    assert BmwAdapter().flatten({"vin": VIN, **body})[0].value == "78"


def test_options_are_strict_and_hide_secrets() -> None:
    adapter = Registry(["bmw"]).adapter("bmw", {"client_id": "abc", "refresh_token": "s3cret"})
    assert isinstance(adapter, BmwAdapter)
    assert adapter.options.daily_quota == 50
    assert "s3cret" not in repr(adapter.options)
    with pytest.raises(ValidationError):
        BmwAdapter({"client_id": "abc", "clientid": "typo"})
    with pytest.raises(ValidationError):
        BmwAdapter({"daily_quota": 0})


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


@pytest.mark.parametrize("name", ["rest_telematic_data.json", "stream_message.json"])
def test_hostile_variants_give_rows_or_a_data_contract_error(name: str) -> None:
    outcomes = {"rows": 0, "refused": 0}
    for payload in variants(load(name)):
        try:
            rows = BmwAdapter().flatten(payload, received_at=datetime(2025, 3, 1, tzinfo=UTC))
        except DataContractError:
            outcomes["refused"] += 1
            continue
        assert rows_to_frame(rows, provider=BmwAdapter.name).height == len(rows)
        outcomes["rows"] += 1
    assert outcomes["rows"] > 0
    assert outcomes["refused"] > 0
