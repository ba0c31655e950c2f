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
    """The protojson text of one ``Datum``: key (1) then value (2), each at most once. (The
    commonest shapes are read faster by ``_datum_miss``, and repeated datums come from its
    cache.)"""
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
_TWO_DIGITS = tuple(f"{i:02d}" for i in range(60))


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


def second_text(seconds: int) -> tuple[str, str]:
    """Seconds since the epoch → (``YYYY-MM-DDTHH:MM:SS``, ``YYYY-MM-DD``). (Not cached per
    second: a vehicle's records rarely share one, a minute's text is cached instead.)"""
    minutes, secs = divmod(seconds, 60)
    prefix, day = _MINUTE_TEXT.get(minutes) or minute_text(minutes)
    return prefix + _TWO_DIGITS[secs], day


def fraction_text(nanos: int) -> str:
    """The end of a protojson time: ``Z``, ``.123Z``, ``.123456Z`` or ``.123456789Z``."""
    if nanos == 0:
        return "Z"
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}Z"
    if nanos % 1000 == 0:
        return f".{nanos // 1000:06d}Z"
    return f".{nanos:09d}Z"


def timestamp_text(seconds: int, nanos: int) -> tuple[str, str]:
    """``(createdAt text as protojson prints it, UTC day)`` of a protobuf ``Timestamp``."""
    text, day = second_text(seconds)
    return text + fraction_text(nanos), day


# ``created_at`` bytes → text, in two cached halves: 08 <seconds, a 5-byte varint: every time
# from 1978 to 3058> → (``YYYY-MM-DDTHH:MM:SS``, day), and the rest (10 <nanos> or nothing) →
# ``.123Z``. Only halves of exactly that form are cached, so a hit is always canonical.
_CREATED_HEAD: dict[bytes, tuple[bytes, str]] = {}
_CREATED_TAIL: dict[bytes, bytes] = {}


def _created_head(created: bytes) -> tuple[bytes, str] | None:
    """The first half, now cached; ``None`` when ``created`` does not start that way."""
    bits = int.from_bytes(created[1:6], "little")
    # 0x08, then four bytes with the continuation bit and a fifth without it.
    if len(created) < 6 or created[0] != 0x08 or bits & 0x8080808080 != 0x0080808080:
        return None
    seconds = (
        (bits & 0x7F)
        | (bits >> 1 & 0x3F80)
        | (bits >> 2 & 0x1FC000)
        | (bits >> 3 & 0xFE00000)
        | (bits >> 4 & 0x7F0000000)
    )
    text, day = second_text(seconds)
    if len(_CREATED_HEAD) >= _CACHE_LIMIT:
        _CREATED_HEAD.clear()
    head = _CREATED_HEAD[created[:6]] = (text.encode("ascii"), day)
    return head


def _created_tail(rest: bytes) -> bytes | None:
    """The second half (after a first half of the usual form), now cached; ``None`` when it
    is not a well-formed ``nanos`` field."""
    nanos, i = _varint(rest, 1) if rest[:1] == b"\x10" else (0, 0)
    if i != len(rest) or nanos > 999_999_999:
        return None
    if len(_CREATED_TAIL) >= _CACHE_LIMIT:
        _CREATED_TAIL.clear()
    tail = _CREATED_TAIL[rest] = fraction_text(nanos).encode("ascii")
    return tail


def _created_text(created: bytes) -> tuple[tuple[bytes, str], bytes]:
    """``created_at`` bytes → ((text up to the seconds, UTC day), rest of the text)."""
    head = _CREATED_HEAD.get(created[:6]) or _created_head(created)
    tail = _CREATED_TAIL.get(created[6:])
    if head is not None and tail is None:
        tail = _created_tail(created[6:])
    if head is None or tail is None:  # an unusual form: read it all
        seconds, nanos = _timestamp(created)
        text, day = second_text(seconds)
        return (text.encode("ascii"), day), fraction_text(nanos).encode("ascii")
    return head, tail


def _vin_inner(vin: bytes) -> bytes:
    """The VIN as it goes between the quotes of a JSON string."""
    if vin.isalnum():  # ASCII letters and digits: every valid VIN
        return vin
    try:
        return json.dumps(vin.decode("utf-8"))[1:-1].encode("ascii")
    except UnicodeDecodeError:
        raise NotCanonical from None


# Datum bytes → text, in two generations: when the young one is full it becomes the old one,
# so the datums that keep coming back (a gear, a zero) survive, and memory stays bounded.
_datum_cache: dict[bytes, bytes] = {}
_datum_old: dict[bytes, bytes] = {}


# The commonest datums, read without leaving ``_datum_miss``: 08 <key> 12 <value>, the key of
# one or two bytes, the value a double (09 29 <double>), a location (14 3a 12 09 <latitude>
# 11 <longitude>) or a short string (<length> 0a <length> <text>, old firmware's numbers).
# Their first bytes name the key and the shape at once, and give the datum's text as a ``%``
# format of the value (``%r`` of a finite float is its ``repr``, as protojson prints it).
def _key_bytes(key: int) -> bytes:
    """``08 <key>``, then the tag of the value: the datum's bytes up to the value."""
    varint = bytes((key,)) if key < 0x80 else bytes((key & 0x7F | 0x80, key >> 7))
    return b"\x08" + varint + b"\x12"


_SHORT_KEYS = {_key_bytes(k): v.encode("ascii") for k, v in _KEY_TEXT.items() if 0 <= k < 0x4000}
_KEY_FORMS = {k: v.replace(b"%", b"%%") for k, v in _SHORT_KEYS.items()}
_DOUBLE_FORMS = {
    k + b"\x09\x29": v + b',"value":{"doubleValue":%r}}' for k, v in _KEY_FORMS.items()
}
_LOCATION_FORMS = {
    k + b"\x14\x3a\x12\x09": v + b',"value":{"locationValue":{"latitude":%r,"longitude":%r}}}'
    for k, v in _KEY_FORMS.items()
}
_STRING_HEADS = {k: v + b',"value":{"stringValue":"' for k, v in _SHORT_KEYS.items()}
_COORDINATES = struct.Struct("<dBd").unpack_from  # latitude, the longitude's tag, longitude
_INFINITY = math.inf


def _datum_miss(piece: bytes) -> bytes:
    """The text of a datum not in the (young) cache, now cached."""
    if len(_datum_cache) >= _CACHE_LIMIT:
        _datum_old.clear()
        _datum_old.update(_datum_cache)
        _datum_cache.clear()
    text = _datum_old.get(piece)
    if text is not None:
        _datum_cache[piece] = text
        return text
    n = len(piece)
    at = 3 if n > 3 and piece[1] >= 0x80 else 2  # where the value's tag (12) is
    size = n - at
    if size == 11:
        form = _DOUBLE_FORMS.get(piece[: at + 3])
        if form is not None:
            value = _DOUBLE(piece, at + 3)[0]
            if -_INFINITY < value < _INFINITY:
                text = form % value
    elif size == 22:
        form = _LOCATION_FORMS.get(piece[: at + 5])
        if form is not None:
            latitude, tag, longitude = _COORDINATES(piece, at + 5)
            finite = -_INFINITY < latitude < _INFINITY and -_INFINITY < longitude < _INFINITY
            if tag == 0x11 and finite:
                text = form % (latitude, longitude)
    elif 4 <= size < 0x80:
        head = _STRING_HEADS.get(piece[: at + 1])
        if (
            head is not None
            and piece[at + 1] == size - 2
            and piece[at + 2] == 0x0A
            and piece[at + 3] == size - 4
            and _NEEDS_ESCAPE.search(piece, at + 4) is None
        ):
            text = head + piece[at + 4 :] + b'"}}'
    if text is None:
        text = datum_text(piece).encode("ascii")
    _datum_cache[piece] = text
    return text


def fast_protojson(raw: bytes) -> tuple[str, str | None, str]:
    """Protobuf ``Payload`` bytes → (VIN, UTC day, protojson text); ``NotCanonical`` when the
    record needs the reference path. The day is ``None`` when the payload has no ``createdAt``."""
    if not raw:
        raise NotCanonical  # the reference path says why an empty record is refused
    try:
        vin, day, text = protojson_parts(raw)
    except IndexError:  # a length or varint running past the end
        raise NotCanonical from None
    try:
        return vin.decode("utf-8"), day, text.decode("ascii")
    except UnicodeDecodeError:
        raise NotCanonical from None


def protojson_parts(raw: bytes) -> tuple[bytes, str | None, bytes]:
    """``fast_protojson`` without its guards, for the consumer's hot loop: (VIN bytes as sent,
    UTC day, protojson as ASCII bytes). The caller handles an empty ``raw`` and treats
    ``IndexError`` (a truncated record) like ``NotCanonical``."""
    cached = _datum_cache.get
    parts: list[bytes] = []
    append = parts.append
    created: bytes | None = None
    vin = b""
    resend = b"false"
    n = len(raw)
    i = 0
    while i < n:
        tag = raw[i]
        length = raw[i + 1]
        if tag == 0x0A and length < 0x80:  # data: a Datum (the usual, short one)
            start = i + 2
            i = start + length
            piece = raw[start:i]
            append(cached(piece) or _datum_miss(piece))
            continue
        if tag == 0x20:  # is_resend
            if length < 0x80:
                resend = b"true" if length else b"false"
                i += 2
            else:
                flag, i = _varint(raw, i + 1)
                resend = b"true" if flag else b"false"
            continue
        if length < 0x80:
            start = i + 2
        else:
            length, start = _varint(raw, i + 1)
        i = start + length
        if tag == 0x0A:  # data: a Datum
            piece = raw[start:i]
            append(cached(piece) or _datum_miss(piece))
        elif tag == 0x1A and not vin:  # vin (a second one: the reference path checks both)
            vin = raw[start:i]
        elif tag == 0x12 and created is None:  # created_at
            created = raw[start:i]
        else:
            raise NotCanonical
    if i != n:
        raise NotCanonical  # the last field runs past the end
    data = b",".join(parts)
    vin_text = vin if vin.isalnum() else _vin_inner(vin)  # every valid VIN is alphanumeric
    if created is None:
        text = (b'{"data":[', data, b'],"vin":"', vin_text, b'","isResend":', resend, b"}")
        return vin, None, b"".join(text)
    head = _CREATED_HEAD.get(created[:6])
    tail = _CREATED_TAIL.get(created[6:])
    if head is None or tail is None:
        head, tail = _created_text(created)
    return (
        vin,
        head[1],
        b"".join(
            (
                b'{"data":[',
                data,
                b'],"createdAt":"',
                head[0],
                tail,
                b'","vin":"',
                vin_text,
                b'","isResend":',
                resend,
                b"}",
            )
        ),
    )
