"""One Kafka record → one ``temp/`` line, or the reason it must be quarantined.

A stored line keeps the provider message as protojson plus the envelope::

    {"provider": "tesla", "format": "fleet-telemetry-json", "vin": …, "received_at": …,
     "source": {"topic", "partition", "offset", "key", "headers": {…}}, "payload": {…}}

``received_at`` is the record's Kafka timestamp (when the telemetry server produced it, right
after the car sent it), so a record delivered twice gives the same line twice and compaction
can drop the copy. Protojson values are stored as sent (only line breaks between tokens are
turned into spaces); protobuf values are converted by ``bibev.stream.protojson``.

The VIN comes from the payload and must be valid; a record key or ``vin`` header that names
another VIN means the record is not what it claims to be, and it is quarantined too.
Everything here is pure: no I/O, no clock (the caller passes ``now_ms`` for records without a
timestamp).
"""

from __future__ import annotations

import base64
import json
from json.encoder import encode_basestring_ascii as _json_str  # type: ignore[attr-defined]
from typing import Any, Literal

from bibev.errors import DataContractError
from bibev.providers.tesla.codec import payload_to_protojson
from bibev.providers.tesla.timestamps import parse_rfc3339
from bibev.storage import is_valid_vin
from bibev.stream.protojson import NotCanonical, fast_protojson, minute_text, protojson_parts

Encoding = Literal["auto", "protobuf", "json"]
ENCODINGS: tuple[str, ...] = ("auto", "protobuf", "json")
SOURCE = "tesla fleet telemetry record"
Headers = list[tuple[str, bytes | None]] | None


def received_at_text(timestamp_ms: int) -> str:
    """Epoch milliseconds → ``2025-03-01T10:00:01.200000+00:00``."""
    minutes, rest = divmod(timestamp_ms, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{minute_text(minutes)[0]}{seconds:02d}.{millis:03d}000+00:00"


_TEMPLATES: dict[tuple[str, ...], str] = {}


def _template(names: tuple[str, ...]) -> str:
    """``{"vin":%s,"receivedat":%s,…}`` for these header names (records share their names)."""
    if len(_TEMPLATES) >= 256:
        _TEMPLATES.clear()
    inner = ",".join(_json_str(name).replace("%", "%%") + ":%s" for name in names)
    template = _TEMPLATES[names] = "{" + inner + "}"
    return template


def _value_text(value: bytes | None) -> str:
    if value is None:
        return "null"
    if value.isalnum():  # ASCII letters and digits only: nothing to escape (VINs, epoch ms)
        return '"' + value.decode("ascii") + '"'
    return _json_str(value.decode("utf-8", "replace"))


def headers_text(headers: Headers) -> str:
    """Kafka headers as a JSON object (values as UTF-8 text; a repeated name keeps the last)."""
    return _headers_json(dict(headers) if headers else {})


def _headers_json(unique: dict[str, bytes | None]) -> str:
    if not unique:
        return "{}"
    names = tuple(unique)
    template = _TEMPLATES.get(names) or _template(names)
    return template % tuple(
        [
            '"' + v.decode("ascii") + '"' if v is not None and v.isalnum() else _value_text(v)
            for v in unique.values()
        ]
    )


def _json_payload(value: bytes) -> tuple[str, str, str]:
    """Protojson bytes → (VIN, day, text to store)."""
    try:
        text = value.decode("utf-8")
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataContractError(f"value is not JSON ({exc})", source=SOURCE) from exc
    if not isinstance(doc, dict):
        raise DataContractError("value is not a JSON object", source=SOURCE)
    created = doc.get("createdAt", doc.get("created_at"))
    if not isinstance(created, str):
        raise DataContractError("payload has no createdAt", source=SOURCE)
    day = parse_rfc3339(created, source=SOURCE).date().isoformat()
    if "\n" in text or "\r" in text:
        # Valid JSON has line breaks only between tokens, where a space means the same.
        text = text.replace("\r", " ").replace("\n", " ")
    vin = doc.get("vin")
    return (vin if isinstance(vin, str) else ""), day, text


def _protobuf_payload(value: bytes) -> tuple[str, str, str]:
    """Protobuf bytes → (VIN, day, protojson text)."""
    try:
        vin, day, text = fast_protojson(value)
    except NotCanonical:
        return _reference_protobuf(value)
    if day is None:
        raise DataContractError("payload has no createdAt", source=SOURCE)
    return vin, day, text


def _reference_protobuf(value: bytes) -> tuple[str, str, str]:
    """The Tesla adapter's conversion, for records the fast path does not read."""
    try:
        doc = payload_to_protojson(value)
    except DataContractError:
        raise
    except Exception as exc:  # a value protobuf parses but cannot print (a time out of range)
        raise DataContractError(f"unreadable protobuf Payload ({exc})", source=SOURCE) from exc
    created = doc.get("createdAt")
    if not isinstance(created, str):
        raise DataContractError("payload has no createdAt", source=SOURCE)
    day = parse_rfc3339(created, source=SOURCE).date().isoformat()
    return str(doc.get("vin", "")), day, json.dumps(doc, separators=(",", ":"))


def decode_payload(value: bytes | None, encoding: Encoding = "auto") -> tuple[str, str, str]:
    """A record value → (VIN as the payload says, UTC day, protojson text).

    ``auto`` reads a value that starts with ``{`` as protojson and falls back to protobuf
    (a protobuf ``Payload`` may start with that byte); anything else is protobuf.
    """
    if not value:
        raise DataContractError("empty record value", source=SOURCE)
    if encoding == "json":
        return _json_payload(value)
    if encoding == "protobuf" or value[:64].lstrip()[:1] != b"{":
        return _protobuf_payload(value)
    try:
        return _json_payload(value)
    except DataContractError as json_error:
        try:
            return _protobuf_payload(value)
        except DataContractError:
            raise json_error from None


class LineBuilder:
    """Builds ``temp/`` lines for one provider format; keeps small caches between records."""

    def __init__(self, encoding: Encoding = "auto") -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
        self.encoding: Encoding = encoding
        self._topics: dict[str, str] = {}
        self._valid_vins: set[str] = set()

    def _check_vin(self, vin: str, key: bytes | None, named: bytes | None) -> None:
        if vin not in self._valid_vins:
            if not is_valid_vin(vin):
                raise DataContractError("invalid or missing VIN", value=vin or None, source=SOURCE)
            if len(self._valid_vins) > 100_000:
                self._valid_vins.clear()
            self._valid_vins.add(vin)
        if key is not None and key != vin.encode():
            raise DataContractError(
                "record key does not match the payload VIN",
                value=key.decode("utf-8", "replace")[:40],
                source=SOURCE,
            )
        if named is not None and named != vin.encode():
            raise DataContractError(
                "vin header does not match the payload VIN",
                value=named.decode("utf-8", "replace")[:40],
                source=SOURCE,
            )

    def _decode(self, value: bytes | None) -> tuple[str, str, str]:
        if (
            not value
            or self.encoding == "json"
            or value[0] == 0x7B
            or (self.encoding == "auto" and value[:64].lstrip()[:1] == b"{")
        ):
            return decode_payload(value, self.encoding)
        # The usual protobuf record: the fast path, inlined (this runs for every record).
        try:
            vin, day, text = protojson_parts(value)
        except (NotCanonical, IndexError):
            return _reference_protobuf(value)
        if day is None:
            raise DataContractError("payload has no createdAt", source=SOURCE)
        return vin, day, text

    def line(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        headers: Headers,
        timestamp_ms: int,
        value: bytes | None,
    ) -> tuple[str, str, str]:
        """``(vin, day, line)`` of one record; ``DataContractError`` when it must be
        quarantined. (A plain tuple: this runs for every record.)"""
        vin, day, payload = self._decode(value)
        unique = dict(headers) if headers else {}
        self._check_vin(vin, key, unique.get("vin"))
        topic_text = self._topics.get(topic)
        if topic_text is None:
            topic_text = self._topics[topic] = _json_str(topic)
        key_text = "null" if key is None else '"' + vin + '"'
        line = (
            f'{{"provider":"tesla","format":"fleet-telemetry-json","vin":"{vin}",'
            f'"received_at":"{received_at_text(timestamp_ms)}","source":{{"topic":{topic_text},'
            f'"partition":{partition},"offset":{offset},"key":{key_text},'
            f'"headers":{_headers_json(unique)}}},"payload":{payload}}}'
        )
        return vin, day, line


def quarantine_line(
    *,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    headers: Headers,
    timestamp_ms: int,
    value: bytes | None,
    quarantined_at: str,
) -> str:
    """A quarantined record: the raw bytes (base64), where it came from and why."""
    doc: dict[str, Any] = {
        "stage": "stream",
        "reason": reason,
        "quarantined_at": quarantined_at,
        "source": {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": None if key is None else key.decode("utf-8", "replace"),
            "key_base64": None if key is None else base64.b64encode(key).decode("ascii"),
            "headers": json.loads(headers_text(headers)),
            "timestamp_ms": timestamp_ms,
        },
        "value_base64": None if value is None else base64.b64encode(value).decode("ascii"),
    }
    return json.dumps(doc, separators=(",", ":"))
