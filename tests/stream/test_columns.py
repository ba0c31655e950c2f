"""A batch's protojson values read as one Arrow column give what ``json.loads`` gives, and
every value whose reading could differ is left to the per-record path."""

import json
from datetime import UTC, datetime

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from bibev.errors import DataContractError
from bibev.providers.tesla import encode_payload, payload_to_protojson
from bibev.stream.batch import read_batch, record_line
from bibev.stream.columns import MIN_RECORDS, json_fields
from bibev.stream.records import LineBuilder, payload_parts

VIN = "5YJ3E1EA7KF000001"
T0 = datetime(2025, 3, 1, 23, 59, 59, 500000, tzinfo=UTC)
PLAIN = json.dumps(
    payload_to_protojson(encode_payload(VIN, T0, [("Soc", 71.2), ("Gear", "ShiftStateD")])),
    separators=(",", ":"),
).encode()
CREATED = b'"createdAt":"2025-03-01T10:00:00Z"'
V = b'"vin":"' + VIN.encode() + b'"'

# value → what json_fields gives for it among plain values: (VIN, createdAt) or None.
READ_HERE = [
    (PLAIN, (VIN.encode(), "2025-03-01T23:59:59.500Z")),
    (b"{" + CREATED + b" , " + V + b" }", (VIN.encode(), "2025-03-01T10:00:00Z")),
    (
        b'{"createdAt":"2025-03-01T10:00:00\\u005a",' + V + b"}",
        (VIN.encode(), "2025-03-01T10:00:00Z"),
    ),
    (b"{" + CREATED + b',"vin":null}', (b"", "2025-03-01T10:00:00Z")),
    (b"{" + CREATED + b"}", (b"", "2025-03-01T10:00:00Z")),
    (
        b"{" + CREATED + b',"vin":"5YJ3E1EA7KF\\u00e900001"}',
        ("5YJ3E1EA7KF\u00e900001".encode(), "2025-03-01T10:00:00Z"),
    ),
    (b'{"createdAt":"2025-02-30T10:00:00Z",' + V + b"}", (VIN.encode(), "2025-02-30T10:00:00Z")),
    # Long, but with few brackets: certainly not nested deeply.
    (
        b"{" + CREATED + b"," + V + b',"x":"' + b"a" * 2000 + b'"}',
        (VIN.encode(), "2025-03-01T10:00:00Z"),
    ),
]
PER_RECORD = [
    b"{" + CREATED + b"," + V + b',"x":"\xc3\xa9"}',  # not ASCII
    b"{" + CREATED + b",\n" + V + b"}",  # two lines
    b"{" + CREATED + b"," + V + b"}\r",
    b"{" + CREATED + b"," + V + b',"x":Inf}',  # Arrow reads it, json.loads does not
    b"{" + CREATED + b"," + V + b',"x":-NaN}',
    b"{" + CREATED + b"," + V + b',"x":NaN}',
    b'{"createdAt":null,"created_at":"2025-03-01T10:00:00Z",' + V + b"}",
    b'{"created_at":"2025-03-01T10:00:00Z",' + V + b"}",
    b"{" + CREATED + b"," + V + b",",
    b"[1]",
    b"",
    None,
    # Nested deeper than json.loads reads (Arrow reads it): quarantined per record.
    b"{" + CREATED + b"," + V + b',"x":' + b"[" * 1500 + b"]" * 1500 + b"}",
]
# Values that make Arrow refuse the whole batch (which is then read record by record).
REFUSED = [
    b"{" + CREATED + b"," + V + b"} {" + CREATED + b"}",  # two objects: one row too many
    b"{" + CREATED + b"," + V + b"}}",
    b'{"createdAt":5,' + V + b"}",
    b"{" + CREATED + b',"vin":5}',
    b"{" + CREATED + b"," + CREATED + b"," + V + b"}",  # json.loads keeps the last
    b"{" + CREATED + b"," + V + b',"v\\u0069n":"X"}',
    b"{" + CREATED + b"," + V + b',"x":"a\tb"}',
    b"{" + CREATED + b"," + V + b',"x":1e999}',
    b"{" + CREATED + b"," + V + b',"x":"\\udc00"}',
    b'{"a":{"b":1}',
]


def batch_of(value):
    return [PLAIN] * MIN_RECORDS + [value]


@pytest.mark.parametrize(("value", "expected"), READ_HERE)
def test_a_plain_protojson_value_is_read_as_json_loads_reads_it(value, expected):
    assert json_fields(batch_of(value))[-1] == expected
    vin, created = expected
    doc = json.loads(value)
    assert (doc.get("vin") or "").encode() == vin
    assert doc["createdAt"] == created


@pytest.mark.parametrize("value", PER_RECORD)
def test_a_value_that_could_be_read_differently_is_left_to_the_record_path(value):
    fields = json_fields(batch_of(value))
    assert fields[-1] is None
    assert fields[:-1] == [(VIN.encode(), "2025-03-01T23:59:59.500Z")] * MIN_RECORDS


@pytest.mark.parametrize("value", REFUSED)
def test_a_value_arrow_refuses_leaves_the_batch_to_the_record_path(value):
    assert json_fields(batch_of(value)) == [None] * (MIN_RECORDS + 1)


def test_a_small_batch_is_read_per_record():
    assert json_fields([PLAIN] * (MIN_RECORDS - 1)) == [None] * (MIN_RECORDS - 1)


def message(value, offset):
    return Message(
        topic="tesla_V",
        partition=0,
        offset=offset,
        key=None,
        value=value,
        headers=[("vin", VIN.encode())],
        timestamp=(TIMESTAMP_CREATE_TIME, 1740873599600),
    )


@pytest.mark.parametrize("encoding", ["auto", "json"])
@pytest.mark.parametrize("odd", [v for v, _ in READ_HERE] + PER_RECORD + REFUSED)
def test_a_batch_stores_and_quarantines_what_each_record_alone_gives(encoding, odd):
    values = [PLAIN] * MIN_RECORDS + [odd, PLAIN]
    messages = [message(value, offset) for offset, value in enumerate(values)]
    batch = read_batch(LineBuilder(encoding), messages, now_ms=0)
    lines = {
        day: lines
        for vin_lines in batch.groups.values()
        for day, lines in vin_lines.by_day().items()
    }
    expected: dict[str, list[bytes]] = {}
    reasons = []
    for one in messages:
        try:
            _, day, line = record_line(LineBuilder(encoding), one)
        except DataContractError as exc:
            reasons.append(str(exc))
            continue
        expected.setdefault(day, []).append(line)
    assert lines == expected
    assert [json.loads(line)["reason"] for line in batch.rejected] == reasons
    assert sum(map(len, expected.values())) + len(reasons) == len(values)


def test_the_vin_is_the_one_payload_parts_reads():
    vin, _, _ = payload_parts(PLAIN, "json")
    assert json_fields(batch_of(PLAIN))[-1] == (vin, json.loads(PLAIN)["createdAt"])
