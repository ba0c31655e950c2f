"""Fleet Telemetry wire encodings: protobuf ``Payload`` bytes and protojson.

The stream consumer detects the encoding of each record (``detect_encoding``) and can turn any
record into the protojson dict that is stored in ``temp/`` (``decode_record``); the simulator
builds records from plain Python values (``encode_payload``). Value fields this module's
``.proto`` does not declare survive the protobuf → protojson conversion as ``unknownField<N>``
keys, so nothing a vehicle sent is lost on the way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from bibev.errors import DataContractError
from bibev.providers.tesla import vehicle_data_pb2 as pb
from bibev.providers.tesla.timestamps import parse_rfc3339

SOURCE = "tesla fleet telemetry"
FIELD_ENUM = pb.DESCRIPTOR.enum_types_by_name["Field"]
VALUE_FIELDS = pb.Value.DESCRIPTOR.fields_by_name
UNKNOWN_FIELD_PREFIX = "unknownField"
# Every enum value name a Value can carry → the oneof field it goes into.
ENUM_VALUE_FIELDS: dict[str, str] = {
    value.name: field.name
    for field in pb.Value.DESCRIPTOR.fields
    if field.enum_type is not None
    for value in field.enum_type.values
}
_INT32 = range(-(2**31), 2**31)

Encoding = Literal["protobuf", "json"]


class TypedValue(NamedTuple):
    """A value with an explicit ``Value`` oneof field, e.g. ``TypedValue("long_value", 5)`` or
    ``TypedValue("string_value", "71.2")`` (what older firmware sends)."""

    field: str
    value: Any


def field_name(number: int) -> str:
    """``8`` → ``Soc``; a number this ``.proto`` does not know → ``Field_<number>``."""
    value = FIELD_ENUM.values_by_number.get(number)
    return value.name if value is not None else f"Field_{number}"


def field_number(name: str | int) -> int:
    """``Soc`` → ``8``, ``Field_199`` → ``199``, an int stays an int."""
    if isinstance(name, int) and not isinstance(name, bool):
        return name
    value = FIELD_ENUM.values_by_name.get(name)
    if value is not None:
        return value.number
    if isinstance(name, str) and name.startswith("Field_") and name[6:].isdigit():
        return int(name[6:])
    raise DataContractError("unknown Fleet Telemetry field name", value=name, source=SOURCE)


def detect_encoding(raw: bytes) -> Encoding:
    """``json`` when the record is a JSON object, else ``protobuf``.

    A protobuf ``Payload`` can start with the bytes ``\\n{`` (a first datum of 123 bytes), so a
    leading brace alone is not proof: the record must also parse as a JSON object.
    """
    head = bytes(raw[:64]).lstrip()
    if not head.startswith(b"{"):
        return "protobuf"
    try:
        return "json" if isinstance(json.loads(bytes(raw)), dict) else "protobuf"
    except (ValueError, UnicodeDecodeError):
        return "protobuf"


def parse_payload(raw: bytes) -> pb.Payload:
    """Protobuf bytes → ``Payload``; ``DataContractError`` when they are not one."""
    if not raw:
        raise DataContractError("empty protobuf payload", value="0 bytes", source=SOURCE)
    message = pb.Payload()
    try:
        message.ParseFromString(bytes(raw))
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise DataContractError(
            f"unreadable protobuf Payload ({exc})", value=f"{len(raw)} bytes", source=SOURCE
        ) from exc
    return message


def unknown_value_fields(value: pb.Value) -> list[tuple[int, int | str]]:
    """The ``Value`` fields this ``.proto`` does not declare: (number, raw value). Varints and
    fixed-width numbers come back as ints, length-delimited data as hex text."""
    fields: list[tuple[int, int | str]] = []
    for unknown in UnknownFieldSet(value):
        data = unknown.data
        raw = data.hex() if isinstance(data, bytes) else data
        fields.append((unknown.field_number, raw if isinstance(raw, int | str) else repr(raw)))
    return fields


def payload_to_protojson(raw: bytes) -> dict[str, Any]:
    """Protobuf bytes → the protojson dict Tesla's server writes with decoded records (camelCase,
    enum names, defaults emitted, int64 as strings)."""
    message = parse_payload(raw)
    doc = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    for datum, datum_doc in zip(message.data, doc.get("data", []), strict=True):
        if datum.HasField("value") and datum.value.WhichOneof("value") is None:
            value_doc = datum_doc.setdefault("value", {})
            for number, unknown in unknown_value_fields(datum.value):
                value_doc[f"{UNKNOWN_FIELD_PREFIX}{number}"] = unknown
    return doc


def protojson_to_payload(doc: dict[str, Any]) -> bytes:
    """A protojson dict → protobuf bytes. Keys and enum names this ``.proto`` does not know are
    dropped (protojson cannot carry them into protobuf); ``Field_<n>`` keys become ``n``."""
    if not isinstance(doc, dict):
        raise DataContractError("protojson payload is not an object", value=type(doc).__name__)
    fixed = dict(doc)
    data = fixed.get("data")
    if isinstance(data, list):
        fixed["data"] = [_numeric_key(datum) for datum in data]
    message = pb.Payload()
    try:
        json_format.ParseDict(fixed, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DataContractError(f"unreadable protojson payload ({exc})", source=SOURCE) from exc
    return message.SerializeToString()


def _numeric_key(datum: Any) -> Any:
    if isinstance(datum, dict) and isinstance(datum.get("key"), str):
        key = datum["key"]
        if key.startswith("Field_") and key[6:].isdigit():
            return {**datum, "key": int(key[6:])}
    return datum


def decode_record(raw: bytes) -> dict[str, Any]:
    """One Kafka record value (either encoding) → its protojson dict."""
    if detect_encoding(raw) == "json":
        return json.loads(bytes(raw))
    return payload_to_protojson(raw)


def encode_payload(
    vin: str,
    created_at: datetime | str,
    data: Iterable[tuple[str | int, Any]],
    is_resend: bool = False,
) -> bytes:
    """Build a protobuf ``Payload`` from Python values.

    Values: ``float`` → double_value, ``int`` → int_value (long_value past int32), ``str`` →
    string_value unless it names an enum value (``"DetailedChargeStateCharging"``,
    ``"ShiftStateD"``) which goes into that enum's field, ``bool`` → boolean_value,
    ``(lat, lon)`` → location_value, ``None`` → ``invalid: true``, ``TypedValue`` → exactly
    that field. Keys are ``Field`` names, ``Field_<n>`` or numbers. A naive ``created_at`` is UTC.
    """
    message = pb.Payload(vin=vin, is_resend=is_resend)
    if isinstance(created_at, str):
        created_at = parse_rfc3339(created_at, source=SOURCE)
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    message.created_at.FromDatetime(created_at.astimezone(UTC))
    for key, value in data:
        datum = message.data.add()
        datum.key = field_number(key)  # type: ignore[assignment]
        _set_value(datum.value, value)
    return message.SerializeToString()


def _set_value(target: pb.Value, value: Any) -> None:
    if isinstance(value, TypedValue):
        field, value = value
        if field == "location_value":
            target.location_value.latitude, target.location_value.longitude = value
        elif field not in VALUE_FIELDS:
            raise DataContractError("unknown Value field", value=field, source=SOURCE)
        else:
            setattr(target, field, value)
    elif value is None:
        target.invalid = True
    elif isinstance(value, bool):
        target.boolean_value = value
    elif isinstance(value, int):
        if value in _INT32:
            target.int_value = value
        else:
            target.long_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        setattr(target, ENUM_VALUE_FIELDS.get(value, "string_value"), value)
    elif isinstance(value, tuple) and len(value) == 2:
        target.location_value.latitude = float(value[0])
        target.location_value.longitude = float(value[1])
    else:
        raise DataContractError("cannot encode value", value=type(value).__name__, source=SOURCE)
