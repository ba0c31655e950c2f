"""The fast protobuf → protojson conversion gives exactly what the Tesla adapter's reference
conversion gives, and steps aside (``NotCanonical``) for anything it does not read."""

import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from bibev.providers.tesla import TypedValue, encode_payload, payload_to_protojson
from bibev.providers.tesla import vehicle_data_pb2 as pb
from bibev.stream.protojson import NotCanonical, fast_protojson, timestamp_text

VIN = "5YJ3E1EA7KF000001"
T0 = datetime(2025, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)


def converted(raw: bytes) -> tuple[str, str | None, dict]:
    vin, day, text = fast_protojson(raw)
    return vin, day, json.loads(text)


@pytest.mark.parametrize(
    "value",
    [
        71.2,
        0.0,
        -0.0,
        1e300,
        5e-324,
        math.inf,
        -math.inf,
        math.nan,
        0,
        -1,
        2**31 - 1,
        -(2**31),
        2**40,
        -(2**63),
        TypedValue("float_value", 0.1),
        TypedValue("float_value", 3.4e38),
        TypedValue("float_value", math.nan),
        TypedValue("float_value", -math.inf),
        TypedValue("long_value", 5),
        TypedValue("int_value", -7),
        True,
        False,
        None,
        "71.2",
        "",
        'quote " backslash \\ newline \n tab \t é ✓ \U0001f697',
        "ShiftStateD",
        "DetailedChargeStateCharging",
        "BMSStateDrive",
        (48.137154, 11.576124),
        (0.0, 0.0),
        (-90.0, 180.0),
        TypedValue("shift_state_value", 99),  # an enum number the .proto does not name
        TypedValue("detailed_charge_state_value", 0),
    ],
)
def test_each_kind_of_value_matches_the_reference(value):
    raw = encode_payload(VIN, T0, [("Soc", value)])
    vin, day, doc = converted(raw)
    assert doc == payload_to_protojson(raw)
    assert (vin, day) == (VIN, "2025-03-01")


@pytest.mark.parametrize(
    "key", ["Soc", "DetailedChargeState", "Location", "Unknown", "Field_999", 2**20]
)
def test_keys_known_unknown_and_wide_match_the_reference(key):
    raw = encode_payload(VIN, T0, [(key, 1.5)])
    assert converted(raw)[2] == payload_to_protojson(raw)


@pytest.mark.parametrize("key", ["Soc", "ForwardCollisionWarning"])  # key 8: one byte, 130: two
@pytest.mark.parametrize(
    "value",
    [
        98.7654321,
        -0.0,
        math.nan,
        (47.000123, -122.5),
        (math.inf, 1.0),
        "64.125",
        "",
        "é",
        'a "quoted" \\ text',
        "x" * 125,  # the longest string of one-byte lengths
        "x" * 126,
    ],
)
def test_the_text_of_common_datums_is_the_stored_reference_text(key, value):
    raw = encode_payload(VIN, T0, [(key, value), (key, value)])  # the second one is cached
    reference = json.dumps(payload_to_protojson(raw), separators=(",", ":"))
    assert fast_protojson(raw)[2] == reference


@pytest.mark.parametrize(
    ("seconds", "nanos", "text"),
    [
        (1740823200, 0, "2025-03-01T10:00:00Z"),
        (1740823200, 123_000_000, "2025-03-01T10:00:00.123Z"),
        (1740823200, 123_456_000, "2025-03-01T10:00:00.123456Z"),
        (1740823200, 123_456_789, "2025-03-01T10:00:00.123456789Z"),
        (0, 1, "1970-01-01T00:00:00.000000001Z"),
        (253402300799, 999_999_999, "9999-12-31T23:59:59.999999999Z"),
    ],
)
def test_timestamps_print_as_protojson_does(seconds, nanos, text):
    message = pb.Payload(vin=VIN)
    message.created_at.seconds, message.created_at.nanos = seconds, nanos
    raw = message.SerializeToString()
    assert timestamp_text(seconds, nanos) == (text, text[:10])
    _, day, doc = converted(raw)
    assert doc == payload_to_protojson(raw)
    assert doc["createdAt"] == text
    assert day == text[:10]


def test_a_payload_without_data_time_or_vin_matches_the_reference():
    raw = pb.Payload(is_resend=True).SerializeToString()
    vin, day, doc = converted(raw)
    assert doc == payload_to_protojson(raw) == {"data": [], "vin": "", "isResend": True}
    assert (vin, day) == ("", None)


def test_a_datum_without_a_value_matches_the_reference():
    message = pb.Payload(vin=VIN)
    message.created_at.FromDatetime(T0)
    message.data.add().key = pb.Soc
    raw = message.SerializeToString()
    assert (
        converted(raw)[2]
        == payload_to_protojson(raw)
        == {
            "data": [{"key": "Soc"}],
            "createdAt": "2025-03-01T10:00:00.123Z",
            "vin": VIN,
            "isResend": False,
        }
    )


def _random_value(rng: random.Random):
    enum_names = [
        v.name for f in pb.Value.DESCRIPTOR.fields if f.enum_type for v in f.enum_type.values
    ]
    return rng.choice(
        [
            lambda: rng.uniform(-1e6, 1e6),
            lambda: round(rng.uniform(0, 100), 1),
            lambda: rng.randrange(-(2**31), 2**31),
            lambda: rng.randrange(-(2**63), 2**63),
            lambda: TypedValue("float_value", rng.uniform(-1e3, 1e3)),
            lambda: rng.choice(enum_names),
            lambda: rng.random() < 0.5,
            lambda: None,
            lambda: (rng.uniform(-90, 90), rng.uniform(-180, 180)),
            lambda: "".join(rng.choice('ab"\\\n é') for _ in range(rng.randrange(8))),
        ]
    )()


def test_random_payloads_match_the_reference():
    rng = random.Random(20250301)
    fields = [v.name for v in pb.DESCRIPTOR.enum_types_by_name["Field"].values]
    for _ in range(3000):
        data = [(rng.choice(fields), _random_value(rng)) for _ in range(rng.randrange(12))]
        created = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(0, 4_000_000_000), microseconds=rng.randrange(10**6)
        )
        raw = encode_payload(VIN, created, data, is_resend=rng.random() < 0.2)
        _, day, doc = converted(raw)
        reference = payload_to_protojson(raw)
        assert doc == reference
        assert day == reference["createdAt"][:10]


def _with_unknown_value_field() -> bytes:
    message = pb.Payload(vin=VIN)
    message.created_at.FromDatetime(T0)
    datum = message.data.add()
    datum.key = pb.Soc
    datum.value.MergeFromString(b"\xa8\x06\x05")  # field 101, varint 5: not in the .proto
    return message.SerializeToString()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("unknown top-level field", encode_payload(VIN, T0, [("Soc", 1.0)]) + b"\x28\x01"),
        ("created_at twice", encode_payload(VIN, T0, []) + b"\x12\x02\x08\x01"),
        ("unknown value field", _with_unknown_value_field()),
        ("empty value", b"\x0a\x04\x08\x08\x12\x00" + encode_payload(VIN, T0, [])),
        ("truncated", encode_payload(VIN, T0, [("Soc", 1.0)])[:-3]),
        ("negative seconds", b"\x12\x0b\x08" + b"\xff" * 9 + b"\x01"),
        ("bad utf-8 vin", b"\x1a\x02\xff\xfe"),
        # protobuf merges a payload sent after another: the reference refuses the bad first VIN
        ("a second vin", b"\x1a\x02\xff\xfe" + encode_payload(VIN, T0, [("Soc", 1.0)])),
    ],
)
def test_records_out_of_the_common_form_take_the_reference_path(name, raw):
    with pytest.raises(NotCanonical):
        fast_protojson(raw)


def test_damaged_records_are_never_read_differently_from_the_reference():
    rng = random.Random(5)
    originals = [
        encode_payload(
            VIN,
            T0 + timedelta(seconds=i, microseconds=rng.randrange(10**6)),
            [
                ("Soc", 71.2 + i),
                ("Gear", "ShiftStateD"),
                ("Location", (48.1, 11.5)),
                ("DetailedChargeState", "DetailedChargeStateCharging"),
                ("Odometer", "123.4"),
            ],
            is_resend=i % 2 == 0,
        )
        for i in range(20)
    ]
    read = 0
    for _ in range(5000):
        raw = bytearray(rng.choice(originals))
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(raw) + 1)
            if rng.random() < 0.4 and at < len(raw):
                raw[at] = rng.randrange(256)
            elif rng.random() < 0.5:
                del raw[at:]
            else:
                raw.insert(at, rng.randrange(256))
        try:
            _, _, text = fast_protojson(bytes(raw))
        except NotCanonical:
            continue
        read += 1
        # Whatever the fast path reads, the reference reads the same way.
        assert json.loads(text) == payload_to_protojson(bytes(raw))
    assert read > 100
