"""Flattening temp files: the vectorised Tesla path gives exactly the adapter's rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
import pytest

from bibev.errors import DataContractError
from bibev.pipeline.compact import Adapters, flatten_files
from bibev.pipeline.compact.envelope import parse_instant
from bibev.pipeline.compact.flatten import split_lines
from bibev.pipeline.compact.generic import flatten_lines
from bibev.pipeline.compact.tesla_json import flatten_tesla_json
from bibev.providers.registry import get_registry
from tests.pipeline.test_compact import VIN, VIN2

TS = "2025-03-01T10:00:00.123Z"


def envelope(payload: object, **extra: object) -> str:
    doc = {"provider": "tesla", "vin": VIN, "received_at": "2025-03-01T10:00:01Z"}
    return json.dumps({**doc, "source": {"topic": "tesla_V"}, "payload": payload, **extra})


def empty(envelope_extra: dict | None = None, **payload: object) -> str:
    """A message without data; ``payload`` overrides its fields (``None`` removes one)."""
    doc = {"data": [], "createdAt": TS, "vin": VIN, **payload}
    return envelope({k: v for k, v in doc.items() if v is not None}, **(envelope_extra or {}))


def datum(key: object, value: object) -> str:
    return envelope({"data": [{"key": key, "value": value}], "createdAt": TS, "vin": VIN})


# (case, line, fast): ``fast`` says whether the vectorised path must read the line itself.
CASES: list[tuple[str, str, bool]] = [
    ("double", datum("Soc", {"doubleValue": 71.2}), True),
    ("double as int", datum("Soc", {"doubleValue": 71}), True),
    ("double as text", datum("Soc", {"doubleValue": "71.25"}), True),
    ("double NaN", datum("Soc", {"doubleValue": "NaN"}), True),
    ("double -Infinity", datum("Soc", {"doubleValue": "-Infinity"}), True),
    ("double not a number", datum("Soc", {"doubleValue": "n/a"}), False),
    ("double as bool", datum("Soc", {"doubleValue": True}), False),
    ("float", datum("PackVoltage", {"floatValue": 398.7}), True),
    ("float overflow", datum("PackVoltage", {"floatValue": 1e39}), True),
    ("float underflow", datum("PackVoltage", {"floatValue": 1e-50}), True),
    ("int", datum("ChargerPhases", {"intValue": 3}), True),
    ("int as float", datum("ChargerPhases", {"intValue": 3.0}), True),
    ("int fraction", datum("ChargerPhases", {"intValue": 3.5}), False),
    ("long as text", datum("Field_999", {"longValue": "12345678901"}), True),
    ("long beyond int64", datum("Field_999", {"longValue": "92233720368547758070"}), False),
    ("string", datum("Odometer", {"stringValue": "12345.6"}), True),
    ("string unicode", datum("Version", {"stringValue": "2025.2 ✓"}), True),
    ("string as number", datum("Odometer", {"stringValue": 12345.6}), False),
    ("string empty", datum("Version", {"stringValue": ""}), True),
    ("string escaped", datum("Version", {"stringValue": 'say "hi"'}), False),
    ("string newline", datum("Version", {"stringValue": "a\nb\\c"}), False),
    ("key escaped", datum("So\\c", {"doubleValue": 1.5}), False),
    ("bool", datum("FastChargerPresent", {"booleanValue": False}), True),
    ("bool as text", datum("FastChargerPresent", {"booleanValue": "true"}), False),
    ("enum", datum("Gear", {"shiftStateValue": "ShiftStateD"}), True),
    ("enum as number", datum("Gear", {"shiftStateValue": 4}), False),
    ("location", datum("Location", {"locationValue": {"latitude": 48.1, "longitude": 11.5}}), True),
    ("location half", datum("Location", {"locationValue": {"latitude": 48.1}}), False),
    ("lon first", datum("Location", {"locationValue": {"longitude": 1, "latitude": 0}}), False),
    ("invalid", datum("Soc", {"invalid": True}), True),
    ("invalid false", datum("Soc", {"invalid": False}), True),
    ("invalid as text", datum("Soc", {"invalid": "true"}), True),
    ("null value", datum("Soc", {"doubleValue": None}), False),
    ("empty value", datum("Soc", {}), False),
    ("no value", envelope({"data": [{"key": "Soc"}], "createdAt": TS, "vin": VIN}), False),
    ("two values", datum("Soc", {"doubleValue": 1.0, "stringValue": "1"}), False),
    ("unknown value field", datum("Soc", {"unknownField77": 5}), False),
    ("proto value name", datum("Soc", {"double_value": 5.5}), False),
    ("numeric key", datum(8, {"doubleValue": 5.5}), False),
    ("empty key", datum("", {"doubleValue": 5.5}), False),
    ("value not an object", datum("Soc", 5), False),
    ("datum not an object", empty(data=[5]), False),
    ("datum null", empty(data=[None]), False),
    ("value before key", empty(data=[{"value": {"doubleValue": 1}, "key": "Soc"}]), False),
    ("proto resend", empty(is_resend=True), False),
    ("data not a list", empty(data={"Soc": 1}), False),
    ("empty data", empty(), True),
    ("resend", empty(isResend=True), True),
    ("resend text", empty(isResend="true"), True),
    ("nanoseconds", empty(createdAt="2025-03-01T10:00:00.123456789Z"), True),
    ("offset", empty(createdAt="2025-03-01T12:00:00.5+02:00"), True),
    ("no offset", empty(createdAt="2025-03-01T12:00:00"), False),
    ("created dict", empty(createdAt={"seconds": 1740823200}), False),
    ("no createdAt", empty(createdAt=None), False),
    ("other vin", empty(vin=VIN2), False),
    ("padded vin", empty(vin=f" {VIN} "), True),
    ("no received_at", empty({"received_at": None}), True),
    ("received_at offset", empty({"received_at": "2025-03-01T11:00:00+01:00"}), True),
    ("received_at garbage", empty({"received_at": "yesterday"}), False),
    ("rows_of_day", empty({"rows_of_day": "2025-03-01"}), True),
    ("payload text", envelope("Soc=71"), False),
    ("fleet api", envelope({"response": {"vin": VIN, "state": "online"}}), False),
    ("other provider", json.dumps({"provider": "bmw", "payload": {"vin": VIN}}), False),
    ("not json", "{\"provider\": \"tesla\", ", False),
]  # fmt: skip


@pytest.fixture(scope="module")
def adapters() -> Adapters:
    return Adapters(get_registry())


def ordered(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(["line", "key", "value_f64", "value_i64", "value_str"], nulls_last=True)


def test_every_case_gives_the_adapters_rows_and_the_fast_path_reads_the_plain_ones(
    adapters: Adapters,
) -> None:
    lines = [line.encode() for _, line, _ in CASES]
    data = b"\n".join(lines)
    vins = [VIN] * len(lines)
    fast, left = flatten_tesla_json(lines, vins, list(range(len(lines))), data)
    expected_fast = [i for i, (_, _, is_fast) in enumerate(CASES) if is_fast]
    assert sorted(set(range(len(lines))) - set(left)) == expected_fast
    slow, quarantined = flatten_lines(lines, vins, range(len(lines)), adapters=adapters)
    batch = flatten_files([data], [VIN], adapters=adapters)
    assert ordered(batch.rows).equals(ordered(slow))
    assert batch.quarantined == quarantined
    read_fast = ordered(slow.filter(pl.col("line").is_in(expected_fast)))
    assert ordered(fast).equals(read_fast)
    assert fast.height > 20


@pytest.mark.parametrize(
    ("case", "value_column", "value"),
    [
        ("float", "value_f64", 398.7),
        ("float overflow", "value_f64", 1e39),
        ("long as text", "value_i64", 12345678901),
        ("int as float", "value_i64", 3),
        ("double -Infinity", "value_f64", float("-inf")),
    ],
)
def test_values_keep_their_protojson_reading(
    case: str, value_column: str, value: object, adapters: Adapters
) -> None:
    line = next(line for name, line, _ in CASES if name == case)
    batch = flatten_files([line.encode()], [VIN], adapters=adapters)
    assert batch.rows.get_column(value_column).to_list() == [value]


def test_a_location_is_two_rows_and_a_resend_one_more(adapters: Adapters) -> None:
    located = json.loads(next(line for name, line, _ in CASES if name == "location"))
    located["payload"]["isResend"] = True
    batch = flatten_files([json.dumps(located).encode()], [VIN], adapters=adapters)
    rows = ordered(batch.rows).select("key", "value_f64", "value_bool", "unit").rows()
    assert rows == [
        ("Location.latitude", 48.1, None, "°"),
        ("Location.longitude", 11.5, None, "°"),
        ("_isResend", None, True, None),
    ]


def test_lines_of_several_files_are_traced_back_to_their_file(adapters: Adapters) -> None:
    good = datum("Soc", {"doubleValue": 1.0}).encode()
    files = [good + b"\n\n" + good + b"\n", b"junk\n" + good, b"", good]
    batch = flatten_files(files, [VIN] * len(files), adapters=adapters)
    assert batch.starts == [0, 2, 4, 4]
    assert batch.numbers == [1, 3, 1, 2, 1]
    assert [(q.line, batch.file_of(q.line)) for q in batch.quarantined] == [(2, 1)]
    assert batch.rows.get_column("line").sort().to_list() == [0, 1, 3, 4]


@pytest.mark.parametrize(
    ("data", "text", "numbers"),
    [
        (b"a\nb\n", b"a\nb", [1, 2]),
        (b"a\nb", b"a\nb", [1, 2]),
        (b"\na\n \n\nb\n\n", b"a\nb", [2, 5]),
        (b"", b"", []),
    ],
)
def test_split_lines_drops_blank_lines(data: bytes, text: bytes, numbers: list[int]) -> None:
    joined, lines, found = split_lines(data)
    assert (joined, found) == (text, numbers)
    assert lines == text.split(b"\n") if text else lines == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T10:00:00Z", datetime(2025, 3, 1, 10, tzinfo=UTC)),
        ("2025-03-01T10:00:00.123456789Z", datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2025-03-01T12:00:00+02:00", datetime(2025, 3, 1, 10, tzinfo=UTC)),
        ("2025-03-01T10:00:00", datetime(2025, 3, 1, 10, tzinfo=UTC)),
    ],
)
def test_parse_instant(text: str, expected: datetime) -> None:
    assert parse_instant(text, what="received_at") == expected


@pytest.mark.parametrize("bad", ["", "yesterday", 1740823200, None])
def test_parse_instant_refuses_what_is_not_a_timestamp(bad: object) -> None:
    with pytest.raises(DataContractError, match="received_at"):
        parse_instant(bad, what="received_at")
