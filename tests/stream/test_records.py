"""A Kafka record becomes one temp/ line with its envelope, or a reason to quarantine it."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from bibev.errors import DataContractError
from bibev.providers.tesla import encode_payload, payload_to_protojson
from bibev.providers.tesla import vehicle_data_pb2 as pb
from bibev.providers.tesla.timestamps import parse_rfc3339
from bibev.stream.batch import record_line
from bibev.stream.records import (
    LineBuilder,
    decode_payload,
    headers_text,
    json_day,
    quarantine_line,
    received_at_text,
)

VIN = "5YJ3E1EA7KF000001"
OTHER = "5YJ3E1EA7KF000002"
T0 = datetime(2025, 3, 1, 23, 59, 59, 500000, tzinfo=UTC)
DATA = [("Soc", 71.2), ("Gear", "ShiftStateD"), ("Location", (48.1, 11.5))]
PROTOBUF = encode_payload(VIN, T0, DATA)
PROTOJSON = json.dumps(payload_to_protojson(PROTOBUF)).encode()
OUT_OF_RANGE = pb.Payload(vin=VIN, created_at={"seconds": -(10**12)}).SerializeToString()
HEADERS = [("vin", VIN.encode()), ("receivedat", b"1740873599600"), ("txtype", b"V")]


VIN_KEY = VIN.encode()


def record(
    value,
    *,
    topic="tesla_V",
    partition=3,
    offset=81723,
    key=VIN_KEY,
    headers=HEADERS,
    ts=1740873599600,
):
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=headers,
        timestamp=(TIMESTAMP_CREATE_TIME, ts),
    )


def build(value, *, key=VIN_KEY, headers=HEADERS, encoding="auto", ts=1740873599600):
    message = record(value, key=key, headers=headers, ts=ts)
    vin, day, line = record_line(LineBuilder(encoding), message)
    return vin, day, json.loads(line)


@pytest.mark.parametrize("value", [PROTOBUF, PROTOJSON])
def test_a_line_carries_the_envelope_and_the_payload_as_protojson(value):
    vin, day, doc = build(value)
    assert (vin, day) == (VIN, "2025-03-01")
    assert doc == {
        "provider": "tesla",
        "format": "fleet-telemetry-json",
        "vin": VIN,
        "received_at": "2025-03-01T23:59:59.600000+00:00",
        "source": {
            "topic": "tesla_V",
            "partition": 3,
            "offset": 81723,
            "key": VIN,
            "headers": {"vin": VIN, "receivedat": "1740873599600", "txtype": "V"},
        },
        "payload": payload_to_protojson(PROTOBUF),
    }


def test_protojson_is_stored_as_sent_on_one_line():
    pretty = json.dumps(payload_to_protojson(PROTOBUF), indent=2).encode()
    message = record(pretty, topic="t", partition=0, offset=0, key=None, headers=None, ts=0)
    _, _, line = record_line(LineBuilder(), message)
    assert b"\n" not in line
    assert json.loads(line)["payload"] == json.loads(pretty)
    assert json.loads(line)["source"]["key"] is None


def test_a_protobuf_starting_like_json_is_still_read_as_protobuf():
    # A first datum of 123 bytes makes the record start with "\n{".
    raw = encode_payload(VIN, T0, [("Soc", "x" * 117)])
    assert raw[:2] == b"\n{"
    assert decode_payload(raw)[2] == json.dumps(payload_to_protojson(raw), separators=(",", ":"))


def test_the_day_is_the_utc_day_of_the_payload_time():
    doc = payload_to_protojson(PROTOBUF)
    doc["createdAt"] = "2025-03-02T00:30:00+02:00"  # 22:30 UTC the day before
    assert decode_payload(json.dumps(doc).encode())[1] == "2025-03-01"


CREATED = [
    "2025-03-01T10:00:01Z",
    "2025-03-01T23:59:59.123456789Z",
    "2025-03-01T00:00:00.5z",
    "2025-03-01T24:00:00Z",  # no such hour
    "2025-03-01T10:60:00Z",
    "2025-03-01T10:00:60Z",  # a leap second: as the full parser says
    "2025-03-01T10:00:01.1234567890Z",  # ten digits
    "2025-03-01T10:00:01+02:00",
    "2025-03-01T01:00:01-02:00",
    "2025-03-01 10:00:01Z",
    "2025-03-01T10:00:01",
    "2025-03-01T10:00:01.Z",
    "2025-02-29T10:00:01Z",  # no such day
    "2024-02-29T10:00:01Z",
    "2025-03-01T10:00:01Z ",
    "2025-03-01",
    "yesterday",
]


@pytest.mark.parametrize("warm", [None, "2025-03-01T09:00:00Z", "2024-02-29T09:00:00Z"])
def test_the_day_of_a_created_at_is_that_of_the_full_parser(warm):
    """Whatever day the cache already holds, ``json_day`` says what the full parser says."""
    if warm:
        json_day(warm)
    for created in CREATED:
        try:
            expected = parse_rfc3339(created, source="test").date().isoformat()
        except DataContractError:
            with pytest.raises(DataContractError):
                json_day(created)
            continue
        assert json_day(created) == expected, created
        assert json_day(created) == expected, created  # again, from the cache


@pytest.mark.parametrize(
    ("value", "key", "headers", "encoding", "reason"),
    [
        (None, VIN.encode(), HEADERS, "auto", "empty record value"),
        (b"", VIN.encode(), HEADERS, "auto", "empty record value"),
        (b"\xff\xff\xff\xff", VIN.encode(), HEADERS, "auto", "unreadable protobuf"),
        (b'{"vin": "5YJ3E1EA7KF000001"', VIN.encode(), HEADERS, "auto", "not JSON"),
        (b"[1, 2]", VIN.encode(), HEADERS, "json", "not a JSON object"),
        (b"[1, 2]", VIN.encode(), HEADERS, "auto", "not a JSON object"),
        (b'"text"', VIN.encode(), HEADERS, "auto", "not a JSON object"),
        (b'{"vin": "%s", "data": []}' % VIN.encode(), None, None, "auto", "no createdAt"),
        (encode_payload("", T0, DATA), None, None, "auto", "invalid or missing VIN"),
        (encode_payload("5YJ3E1EA7KF00000I", T0, DATA), None, None, "auto", "invalid"),
        (encode_payload("../../etc/passwd", T0, DATA), None, None, "auto", "invalid"),
        (PROTOBUF, OTHER.encode(), HEADERS, "auto", "record key does not match"),
        (PROTOBUF, VIN.encode(), [("vin", OTHER.encode())], "auto", "vin header does not"),
        (PROTOBUF, VIN.encode(), HEADERS, "json", "not JSON"),
        (PROTOJSON, VIN.encode(), HEADERS, "protobuf", "unreadable protobuf"),
        (OUT_OF_RANGE, None, None, "auto", "unreadable protobuf"),
    ],
)
def test_bad_records_are_refused_with_a_reason(value, key, headers, encoding, reason):
    with pytest.raises(DataContractError, match=reason):
        build(value, key=key, headers=headers, encoding=encoding)


# JSON nested deeper than ``json.loads`` reads: the 3 KB value of the audit, and a payload
# whose data holds such a value.
DEEP_ARRAY = b'{"a":' + b"[" * 1500 + b"]" * 1500 + b"}"
DEEP_PAYLOAD = (
    b'{"data":[{"key":"Soc","value":'
    + b'{"a":' * 2000
    + b"1"
    + b"}" * 2000
    + b'}],"createdAt":"2025-03-01T10:00:00Z","vin":"'
    + VIN_KEY
    + b'"}'
)


@pytest.mark.parametrize("value", [DEEP_ARRAY, DEEP_PAYLOAD])
@pytest.mark.parametrize("encoding", ["auto", "json"])
def test_json_nested_too_deeply_is_refused_with_a_reason_not_a_crash(value, encoding):
    with pytest.raises(DataContractError, match=r"^value is JSON nested too deeply to read"):
        build(value, encoding=encoding)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, {}),
        ([], {}),
        ([("a", b"1"), ("b", None)], {"a": "1", "b": None}),
        ([("a", b"1"), ("a", b"2")], {"a": "2"}),
        (
            [("quote", b'say "hi"\\'), ("utf8", "é✓".encode())],
            {"quote": 'say "hi"\\', "utf8": "é✓"},
        ),
        ([("bad", b"\xff")], {"bad": "\ufffd"}),
    ],
)
def test_headers_become_a_json_object(headers, expected):
    assert json.loads(headers_text(headers)) == expected


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000000+00:00"),
        (1740873599600, "2025-03-01T23:59:59.600000+00:00"),
        (1740873600000, "2025-03-02T00:00:00.000000+00:00"),
    ],
)
def test_received_at_is_the_record_timestamp_in_utc(ms, text):
    assert received_at_text(ms) == text
    assert datetime.fromisoformat(text).timestamp() * 1000 == ms


def test_a_quarantine_line_keeps_the_raw_bytes_and_where_they_came_from():
    raw = b"\x00\xffnot a payload"
    line = quarantine_line(
        reason="unreadable",
        topic="tesla_V",
        partition=2,
        offset=17,
        key=b"\xfe",
        headers=HEADERS,
        timestamp_ms=5,
        value=raw,
        quarantined_at="2025-03-01T00:00:00+00:00",
    )
    doc = json.loads(line)
    assert base64.b64decode(doc["value_base64"]) == raw
    assert base64.b64decode(doc["source"]["key_base64"]) == b"\xfe"
    assert doc["source"] | {"key": None, "key_base64": None} == {
        "topic": "tesla_V",
        "partition": 2,
        "offset": 17,
        "key": None,
        "key_base64": None,
        "headers": {"vin": VIN, "receivedat": "1740873599600", "txtype": "V"},
        "timestamp_ms": 5,
    }
    assert (doc["stage"], doc["reason"]) == ("stream", "unreadable")


FAR_AHEAD = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        encode_payload(VIN, FAR_AHEAD, DATA),
        json.dumps(payload_to_protojson(encode_payload(VIN, FAR_AHEAD, DATA))).encode(),
    ],
)
def test_a_created_at_after_tomorrow_is_refused(value):
    """Its day would never be compacted: the record would wait in temp/ for ever."""
    with pytest.raises(DataContractError, match="createdAt is on 9999-12-31, after tomorrow"):
        build(value)


def test_a_created_at_of_tomorrow_is_stored():
    """A clock a few hours ahead is not refused (cleaning judges it)."""
    tomorrow = datetime.now(UTC).replace(hour=23, minute=0) + timedelta(days=1)
    _, day, line = build(encode_payload(VIN, tomorrow, DATA))
    assert day == tomorrow.date().isoformat()
    assert line["payload"]["createdAt"].startswith(day)
