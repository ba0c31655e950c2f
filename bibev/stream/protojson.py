"""Fleet Telemetry protobuf → protojson text, fast.

``payload_to_protojson`` (the Tesla adapter) walks the message with ``json_format``, about
100 µs for a record of eight values: too slow for a consumer that must keep up with a fleet.
This module reads the protobuf wire format directly for the shapes vehicles send and keeps
the JSON text of every datum it has seen in a small cache: a datum repeats often (gear, charge
state, any value sent again unchanged), and its text depends only on its bytes.

The result is the same document ``payload_to_protojson`` gives (the tests compare both on every
kind of value): whenever the record is not in the expected canonical form (an unknown or
repeated field, a value this module does not format, an out-of-range time) it raises
``NotCanonical`` and the caller uses the reference path instead, so odd records are slower,
never different.
"""

from __future__ import annotations

import json
import math
import re
import struct
from datetime import date, timedelta

from google.protobuf.internal.type_checkers import ToShortestFloat

from bibev.providers.tesla import vehicle_data_pb2 as pb

_DOUBLE = struct.Struct("<d").unpack_from
_FLOAT = struct.Struct("<f").unpack_from
_EPOCH = date(1970, 1, 1)
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the end of protojson's range
_CACHE_LIMIT = 65536

_KEY_TEXT = {
    v.number: '{"key":"' + v.name + '"' for v in pb.DESCRIPTOR.enum_types_by_name["Field"].values
}


class NotCanonical(Exception):
    """The record is not in the form this module reads: use the reference conversion."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    """The unsigned varint at ``buf[i]`` and the index after it (``IndexError`` past the end,
    which ``fast_protojson`` turns into ``NotCanonical``)."""
    byte = buf[i]
    if byte < 0x80:
        return byte, i + 1
    result = byte & 0x7F
    shift = 7
    i += 1
    while True:
        byte = buf[i]
        result |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise NotCanonical


def _int32(raw: int) -> int:
    return ((raw & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


def _int64(raw: int) -> int:
    return ((raw & 0xFFFFFFFFFFFFFFFF) ^ 0x8000000000000000) - 0x8000000000000000


def _double_text(value: float) -> str:
    if math.isfinite(value):
        return repr(value)
    if math.isnan(value):
        return '"NaN"'
    return '"Infinity"' if value > 0 else '"-Infinity"'


def _float_text(value: float) -> str:
    return repr(ToShortestFloat(value)) if math.isfinite(value) else _double_text(value)


def _bool_text(raw: int) -> str:
    return "true" if raw else "false"


def _enum_formatter(enum_type: object):
    names = {v.number: '"' + v.name + '"' for v in enum_type.values}  # type: ignore[attr-defined]

    def text(raw: int) -> str:
        number = _int32(raw)
        return names.get(number) or str(number)

    return text


# Bytes a JSON string cannot hold as they are: controls, quote, backslash, anything not ASCII.
_NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')


def _string_text(raw: bytes) -> str:
    if _NEEDS_ESCAPE.search(raw) is None:
        return '"' + raw.decode("ascii") + '"'  # "71.2", as old firmware sends numbers
    try:
        return json.dumps(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise NotCanonical from None


# Value field number → (wire type, prefix up to the JSON value, formatter of the raw field).
_VALUE_FIELDS: dict[int, tuple[int, str, object]] = {}
for _field in pb.Value.DESCRIPTOR.fields:
    _prefix = ',"value":{"' + _field.json_name + '":'
    if _field.name == "location_value":
        continue  # a nested message: handled in _value_text
    if _field.enum_type is not None:
        _VALUE_FIELDS[_field.number] = (0, _prefix, _enum_formatter(_field.enum_type))
    elif _field.name == "string_value":
        _VALUE_FIELDS[_field.number] = (2, _prefix, _string_text)
    elif _field.name == "int_value":
        _VALUE_FIELDS[_field.number] = (0, _prefix, lambda raw: str(_int32(raw)))
    elif _field.name == "long_value":
        _VALUE_FIELDS[_field.number] = (0, _prefix, lambda raw: f'"{_int64(raw)}"')
    elif _field.name in ("boolean_value", "invalid"):
        _VALUE_FIELDS[_field.number] = (0, _prefix, _bool_text)
    elif _field.name == "double_value":
        _VALUE_FIELDS[_field.number] = (1, _prefix, lambda raw: _double_text(_DOUBLE(raw)[0]))
    elif _field.name == "float_value":
        _VALUE_FIELDS[_field.number] = (5, _prefix, lambda raw: _float_text(_FLOAT(raw)[0]))
_LOCATION = pb.Value.DESCRIPTOR.fields_by_name["location_value"].number


def _location_text(buf: bytes) -> str:
    """``LocationValue`` bytes: latitude (1) then longitude (2), each at most once."""
    coords = {1: 0.0, 2: 0.0}
    i, last = 0, 0
    while i < len(buf):
        tag = buf[i]
        number = tag >> 3
        if tag & 7 != 1 or number not in coords or number <= last or i + 9 > len(buf):
            raise NotCanonical
        coords[number] = _DOUBLE(buf, i + 1)[0]
        last, i = number, i + 9
    return (
        ',"value":{"locationValue":{"latitude":'
        + _double_text(coords[1])
        + ',"longitude":'
        + _double_text(coords[2])
        + "}}"
    )


def _value_text(buf: bytes) -> str:
    """The ``,"value":{…}`` text of one ``Value`` holding exactly one known field."""
    if not buf:
        raise NotCanonical  # an empty Value: rare, let the reference path print it
    tag, i = _varint(buf, 0)
    number, wire = tag >> 3, tag & 7
    if number == _LOCATION and wire == 2:
        length, i = _varint(buf, i)
        if i + length != len(buf):
            raise NotCanonical
        return _location_text(buf[i:])
    spec = _VALUE_FIELDS.get(number)
    if spec is None or spec[0] != wire:
        raise NotCanonical
    _, prefix, formatter = spec
    if wire == 0:
        raw, i = _varint(buf, i)
        if i != len(buf):
            raise NotCanonical
        return prefix + formatter(raw) + "}"  # type: ignore[operator]
    if wire == 2:
        length, i = _varint(buf, i)
        if i + length != len(buf):
            raise NotCanonical
        return prefix + formatter(buf[i:]) + "}"  # type: ignore[operator]
    width = 8 if wire == 1 else 4
    if i + width != len(buf):
        raise NotCanonical
    return prefix + formatter(buf[i:]) + "}"  # type: ignore[operator]


def datum_text(buf: bytes) -> str:
    """The protojson text of one ``Datum``: key (1) then value (2), each at most once."""
    n = len(buf)
    # The most common datum, a double, takes a shortcut: 08 <key> 12 09 29 <8 bytes>.
    if 13 <= n <= 14 and buf[0] == 0x08 and buf[n - 11 : n - 8] == b"\x12\x09\x29":
        if n == 13 and buf[1] < 0x80:
            key = buf[1]
        elif n == 14 and buf[1] >= 0x80 and buf[2] < 0x80:
            key = (buf[1] & 0x7F) | (buf[2] << 7)
        else:
            key = -1
        head = _KEY_TEXT.get(key)
        if head is not None:
            return head + ',"value":{"doubleValue":' + _double_text(_DOUBLE(buf, n - 8)[0]) + "}}"
    i = 0
    key = 0
    value = ""
    if i < len(buf) and buf[i] == 0x08:
        key, i = _varint(buf, i + 1)
        key = _int32(key)
    if i < len(buf):
        if buf[i] != 0x12:
            raise NotCanonical
        length, i = _varint(buf, i + 1)
        if i + length != len(buf):
            raise NotCanonical
        value = _value_text(buf[i:])
    head = _KEY_TEXT.get(key) or '{"key":' + str(key)
    return head + value + "}"


def _timestamp(buf: bytes) -> tuple[int, int]:
    seconds, nanos, i = 0, 0, 0
    if i < len(buf) and buf[i] == 0x08:
        seconds, i = _varint(buf, i + 1)
    if i < len(buf) and buf[i] == 0x10:
        nanos, i = _varint(buf, i + 1)
    if i != len(buf) or not 0 <= seconds <= _MAX_SECONDS or not 0 <= nanos <= 999_999_999:
        raise NotCanonical
    return seconds, nanos


_DAY_TEXT: dict[int, str] = {}
_MINUTE_TEXT: dict[int, tuple[str, str]] = {}


def day_text(days: int) -> str:
    """Days since 1970-01-01 → ``YYYY-MM-DD`` (cached: a stream spans few days)."""
    text = _DAY_TEXT.get(days)
    if text is None:
        text = _DAY_TEXT[days] = (_EPOCH + timedelta(days=days)).isoformat()
    return text


def minute_text(minutes: int) -> tuple[str, str]:
    """Minutes since the epoch → (``YYYY-MM-DDTHH:MM:``, ``YYYY-MM-DD``), cached."""
    found = _MINUTE_TEXT.get(minutes)
    if found is None:
        if len(_MINUTE_TEXT) >= _CACHE_LIMIT:
            _MINUTE_TEXT.clear()
        days, rest = divmod(minutes, 1440)
        day = day_text(days)
        found = _MINUTE_TEXT[minutes] = (f"{day}T{rest // 60:02d}:{rest % 60:02d}:", day)
    return found


_SECOND_TEXT: dict[int, tuple[str, str]] = {}


def _second_text(seconds: int) -> tuple[str, str]:
    if len(_SECOND_TEXT) >= _CACHE_LIMIT:
        _SECOND_TEXT.clear()
    minutes, secs = divmod(seconds, 60)
    prefix, day = minute_text(minutes)
    found = _SECOND_TEXT[seconds] = (f"{prefix}{secs:02d}", day)
    return found


def timestamp_text(seconds: int, nanos: int) -> tuple[str, str]:
    """``(createdAt text as protojson prints it, UTC day)`` of a protobuf ``Timestamp``
    (cached per second: a fleet's records share their seconds)."""
    text, day = _SECOND_TEXT.get(seconds) or _second_text(seconds)
    if nanos == 0:
        return text + "Z", day
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z", day
    if nanos % 1000 == 0:
        return f"{text}.{nanos // 1000:06d}Z", day
    return f"{text}.{nanos:09d}Z", day


_datum_cache: dict[bytes, str] = {}


def fast_protojson(raw: bytes) -> tuple[str, str | None, str]:
    """Protobuf ``Payload`` bytes → (VIN, UTC day, protojson text); ``NotCanonical`` when the
    record needs the reference path. The day is ``None`` when the payload has no ``createdAt``."""
    if not raw:
        raise NotCanonical  # the reference path says why an empty record is refused
    try:
        return protojson_parts(raw)
    except IndexError:  # a length or varint running past the end
        raise NotCanonical from None


def protojson_parts(raw: bytes) -> tuple[str, str | None, str]:
    """``fast_protojson`` without its guards, for the consumer's hot loop: the caller handles
    an empty ``raw`` and treats ``IndexError`` (a truncated record) like ``NotCanonical``."""
    cache = _datum_cache
    cached = cache.get
    parts: list[str] = []
    append = parts.append
    created: bytes | None = None
    vin = ""
    resend = "false"
    n = len(raw)
    i = 0
    while i < n:
        tag = raw[i]
        if tag == 0x20:  # is_resend
            flag, i = _varint(raw, i + 1)
            resend = "true" if flag else "false"
            continue
        length = raw[i + 1]
        if length < 0x80:
            i += 2
        else:
            length, i = _varint(raw, i + 1)
        end = i + length
        if end > n:
            raise NotCanonical
        if tag == 0x0A:  # data: a Datum
            piece = raw[i:end]
            text = cached(piece)
            if text is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                text = cache[piece] = datum_text(piece)
            append(text)
        elif tag == 0x1A:  # vin (the last one wins, as in protobuf)
            try:
                vin = raw[i:end].decode("utf-8")
            except UnicodeDecodeError:
                raise NotCanonical from None
        elif tag == 0x12 and created is None:  # created_at
            created = raw[i:end]
        else:
            raise NotCanonical
        i = end
    head = '{"data":[' + ",".join(parts) + "]"
    vin_text = '"' + vin + '"' if vin.isalnum() and vin.isascii() else json.dumps(vin)
    tail = ',"vin":' + vin_text + ',"isResend":' + resend + "}"
    if created is None:
        return vin, None, head + tail
    created_text, day = timestamp_text(*_timestamp(created))
    return vin, day, head + ',"createdAt":"' + created_text + '"' + tail
