"""The protojson records of one ``consume()`` batch, checked and read as one Arrow column.

Reading a protojson record with ``json.loads`` builds every dict, list and float of its
``data`` just to take two strings out of it and throw the rest away: about half of what the
consumer spends on such a record. Here the batch's protojson values are joined into one
newline-delimited document and parsed once by Arrow's JSON reader (in C++, without building
Python objects), which checks that every value is JSON and gives ``createdAt`` and ``vin``.

A value is only read here when Arrow's verdict is certainly the one ``json.loads`` would give
(``records._json_payload``); every other value, and every value of a batch Arrow refuses, is
left to that per-record path, so this changes how fast a record is read, never what is stored
or quarantined:

- it starts with ``{`` and ends with ``}`` and holds no line break, so that it is one line of
  the document. A line that is not exactly one object makes the reader fail (nothing valid
  runs on past a line's last ``}`` into a line that opens with ``{``) or return more rows than
  lines, and a batch whose row count is off is read per record: row ``k`` is line ``k``;
- it is ASCII and holds no ``Inf`` or ``NaN`` (the reader also takes ``Inf`` and ``-NaN``,
  which ``json.loads`` refuses);
- it is shorter than ``DEEP_BYTES`` or opens fewer than ``DEEP_BYTES // 2`` arrays and
  objects: Arrow reads JSON nested to any depth, ``json.loads`` refuses one nested deeper than
  the interpreter's recursion limit (the record is then quarantined), and the depth of a value
  is at most half its length and at most the number of brackets it opens;
- ``createdAt`` and ``vin`` are declared strings: the reader fails on a value where one is a
  number, an object or given twice (``json.loads`` keeps the last), and a record whose
  ``createdAt`` is absent or ``null`` (``json.loads`` would then look at ``created_at``) is
  read per record.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.json as pa_json

_SCHEMA = pa.schema([("createdAt", pa.string()), ("vin", pa.string())])
_PARSE = pa_json.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
_READ = pa_json.ReadOptions(use_threads=False, block_size=1 << 22)
# Below this many protojson records a batch is read per record: a call of the reader costs
# about what reading 400 records one by one saves (a consumer that has caught up gets small
# batches, and then has time to spare).
MIN_RECORDS = 500
# A value this long or longer is read here only when it opens fewer than half this many arrays
# and objects, so that it is nested far less deeply than ``json.loads`` can read.
DEEP_BYTES = 800

# What a protojson record gives: (VIN bytes as the payload says, createdAt as sent).
JsonFields = tuple[bytes, str]


def _plain(value: bytes) -> bool:
    """ASCII, no carriage return, no ``Inf`` or ``NaN`` anywhere."""
    return value.isascii() and b"\r" not in value and b"Inf" not in value and b"NaN" not in value


def _shallow(value: bytes) -> bool:
    """Certainly nested less than ``DEEP_BYTES // 2`` deep (see the module docstring)."""
    return len(value) < DEEP_BYTES or value.count(b"{") + value.count(b"[") < DEEP_BYTES // 2


def json_fields(values: Sequence[bytes | None]) -> list[JsonFields | None]:
    """For each value: its ``(VIN bytes, createdAt)`` when it is a protojson object read
    here, else ``None`` (the record is read by ``records.payload_parts``)."""
    fields: list[JsonFields | None] = [None] * len(values)
    rows = [
        i
        for i, value in enumerate(values)
        if value
        and value[0] == 0x7B
        and value[-1] == 0x7D
        and (len(value) < DEEP_BYTES or _shallow(value))
    ]
    if len(rows) < MIN_RECORDS:
        return fields
    document = b"\n".join([values[i] for i in rows])  # type: ignore[misc]
    if document.count(b"\n") != len(rows) - 1 or not _plain(document):
        # Checked on the whole document at once (the usual batch passes), else value by value.
        rows = [i for i in rows if b"\n" not in values[i] and _plain(values[i])]  # type: ignore
        if len(rows) < MIN_RECORDS:
            return fields
        document = b"\n".join([values[i] for i in rows])  # type: ignore[misc]
    try:
        table = pa_json.read_json(io.BytesIO(document), read_options=_READ, parse_options=_PARSE)
    except pa.ArrowInvalid:
        return fields  # some value is not JSON, or not as expected: read them one by one
    if table.num_rows != len(rows):
        return fields
    created = table.column("createdAt").to_pylist()
    vins = table.column("vin").to_pylist()
    for i, created_at, vin in zip(rows, created, vins, strict=True):
        if created_at is not None:
            # The VIN's bytes as ``records._json_payload`` has them (b"" when it is no string).
            vin_raw = b"" if vin is None else vin.encode("utf-8", "backslashreplace")
            fields[i] = (vin_raw, created_at)
    return fields
