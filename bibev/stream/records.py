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
timestamp). Lines are UTF-8 bytes joined from fixed pieces and the record's own: the consumer
builds one per record, so the work per record is kept to a few C-level operations
(``bibev.stream.batch``).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Literal

from bibev.errors import DataContractError
from bibev.providers.tesla.codec import payload_to_protojson
from bibev.providers.tesla.timestamps import parse_rfc3339
from bibev.storage import is_valid_vin
from bibev.stream.protojson import NotCanonical, protojson_parts, second_text

Encoding = Literal["auto", "protobuf", "json"]
ENCODINGS: tuple[str, ...] = ("auto", "protobuf", "json")
SOURCE = "tesla fleet telemetry record"
Headers = list[tuple[str, bytes | None]] | None
Parts = tuple[bytes, str, bytes]  # (VIN as the payload says, UTC day, protojson)

_CACHE_LIMIT = 65536

# -- received_at ------------------------------------------------------------------------------

_SECOND_BYTES: dict[int, bytes] = {}
# Milliseconds → the end of ``received_at``: ``.200000+00:00``.
MILLIS = tuple(b".%03d000+00:00" % ms for ms in range(1000))


def second_bytes(seconds: int) -> bytes:
    """Epoch seconds → ``b"2025-03-01T10:00:01"`` (cached: records share their seconds)."""
    text = _SECOND_BYTES.get(seconds)
    if text is None:
        if len(_SECOND_BYTES) >= _CACHE_LIMIT:
            _SECOND_BYTES.clear()
        text = _SECOND_BYTES[seconds] = second_text(seconds)[0].encode("ascii")
    return text


def received_at_text(timestamp_ms: int) -> str:
    """Epoch milliseconds → ``2025-03-01T10:00:01.200000+00:00``."""
    seconds, millis = divmod(timestamp_ms, 1000)
    return (second_bytes(seconds) + MILLIS[millis]).decode("ascii")


# -- headers ---------------------------------------------------------------------------------

# Every byte that may stand in a JSON string as it is (printable ASCII but " and \) → "a",
# any other → "!": header values that translate to letters only need no escaping.
_PLAIN = bytes(0x61 if 0x20 <= i < 0x7F and i not in (0x22, 0x5C) else 0x21 for i in range(256))
# Header names → (``{"vin":"%s",…}``, index of ``vin`` or -1), or ``None`` when a name
# repeats (the last value wins: the careful path). Records of one topic share their names, so
# the last names seen are checked first.
_HEADER_FORMS: dict[tuple[str, ...], tuple[bytes, int] | None] = {}
_last_form: tuple[tuple[str, ...], tuple[bytes, int] | None] = ((), None)


def _header_form(names: tuple[str, ...]) -> tuple[bytes, int] | None:
    global _last_form
    form = _HEADER_FORMS.get(names, False)
    if form is False:
        if len(_HEADER_FORMS) >= 256:
            _HEADER_FORMS.clear()
        form = None
        if len(set(names)) == len(names):
            inner = ",".join(json.dumps(name).replace("%", "%%") + ':"%s"' for name in names)
            vin_at = names.index("vin") if "vin" in names else -1
            form = (("{" + inner + "}").encode("ascii"), vin_at)
        _HEADER_FORMS[names] = form
    _last_form = (names, form)
    return form


def headers_json(headers: Headers) -> tuple[bytes, bytes | None]:
    """Kafka headers → (a JSON object of their values as UTF-8 text, the ``vin`` header)."""
    if not headers:
        return b"{}", None
    names, values = zip(*headers, strict=False)  # (name, value) pairs: both in one call
    last = _last_form
    form = last[1] if names == last[0] else _header_form(names)
    if form is not None:
        try:
            plain = b"".join(values).translate(_PLAIN).isalnum()
        except TypeError:  # a header without a value
            plain = False
        if plain:
            return form[0] % values, values[form[1]] if form[1] >= 0 else None
    unique = dict(headers)
    doc = {k: None if v is None else v.decode("utf-8", "replace") for k, v in unique.items()}
    return json.dumps(doc, separators=(",", ":")).encode("ascii"), unique.get("vin")


def headers_text(headers: Headers) -> str:
    """Kafka headers as a JSON object (values as UTF-8 text; a repeated name keeps the last)."""
    return headers_json(headers)[0].decode("ascii")


# -- payloads ---------------------------------------------------------------------------------

# A createdAt of the usual form (``2025-03-01T10:00:01.2Z``): its UTC day is its date, parsed
# once per day (cached), while the clock after it only has to be a valid UTC time of day.
_UTC_CLOCK = re.compile(r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?[zZ]")
_PLAIN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_JSON_DAYS: dict[str, str] = {}


def json_day(created: str) -> str:
    """A protojson ``createdAt`` → its UTC day (``DataContractError`` when it is no time)."""
    day = _JSON_DAYS.get(created[:10])
    if day is not None and _UTC_CLOCK.fullmatch(created, 10):
        return day
    day = parse_rfc3339(created, source=SOURCE).date().isoformat()
    if _UTC_CLOCK.fullmatch(created, 10) and _PLAIN_DATE.fullmatch(created, 0, 10):
        if len(_JSON_DAYS) >= _CACHE_LIMIT:
            _JSON_DAYS.clear()
        _JSON_DAYS[created[:10]] = day
    return day


def _json_payload(value: bytes) -> Parts:
    """Protojson bytes → (VIN, day, the bytes as sent on one line)."""
    try:
        doc = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataContractError(f"value is not JSON ({exc})", source=SOURCE) from exc
    except RecursionError:  # JSON nested deeper than Python can read (nor compact after it)
        raise DataContractError("value is JSON nested too deeply to read", source=SOURCE) from None
    if not isinstance(doc, dict):
        raise DataContractError("value is not a JSON object", source=SOURCE)
    created = doc.get("createdAt", doc.get("created_at"))
    if not isinstance(created, str):
        raise DataContractError("payload has no createdAt", source=SOURCE)
    day = json_day(created)
    if b"\n" in value or b"\r" in value:
        # Valid JSON has line breaks only between tokens, where a space means the same.
        value = value.replace(b"\r", b" ").replace(b"\n", b" ")
    vin = doc.get("vin")
    return (vin.encode("utf-8", "backslashreplace") if isinstance(vin, str) else b""), day, value


def _protobuf_payload(value: bytes) -> Parts:
    try:
        vin, day, text = protojson_parts(value)
    except (NotCanonical, IndexError):
        return _reference_protobuf(value)
    if day is None:
        raise DataContractError("payload has no createdAt", source=SOURCE)
    return vin, day, text


def _reference_protobuf(value: bytes) -> Parts:
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
    text = json.dumps(doc, separators=(",", ":")).encode("ascii")
    return str(doc.get("vin", "")).encode("utf-8", "backslashreplace"), day, text


def payload_parts(value: bytes | None, encoding: Encoding = "auto") -> Parts:
    """A record value → (VIN bytes as the payload says, UTC day, protojson bytes).

    ``auto`` reads a value that starts like JSON (``{``, ``[`` or ``"``, after white space) as
    protojson and falls back to protobuf (a protobuf ``Payload`` may start with such a byte),
    saying what is wrong with it as JSON when neither reads it; anything else is protobuf.
    """
    if not value:
        raise DataContractError("empty record value", source=SOURCE)
    if encoding == "json":
        return _json_payload(value)
    if encoding == "protobuf" or value[:64].lstrip()[:1] not in (b"{", b"[", b'"'):
        return _protobuf_payload(value)
    try:
        return _json_payload(value)
    except DataContractError as json_error:
        try:
            return _protobuf_payload(value)
        except DataContractError:
            raise json_error from None


def decode_payload(value: bytes | None, encoding: Encoding = "auto") -> tuple[str, str, str]:
    """A record value → (VIN as the payload says, UTC day, protojson text)."""
    vin, day, text = payload_parts(value, encoding)
    return vin.decode("utf-8", "replace"), day, text.decode("utf-8")


# -- lines ------------------------------------------------------------------------------------

# A line is joined from these pieces and the record's own (see ``LineBuilder.line``).
LINE_START = b'{"provider":"tesla","format":"fleet-telemetry-json","vin":"'
RECEIVED_AT = b'","received_at":"'
KEY = b',"key":"'
KEYED_HEADERS = b'","headers":'
UNKEYED_HEADERS = b',"key":null,"headers":'
PAYLOAD = b'},"payload":'
LINE_END = b"}"


def source_start(topic: str, partition: int) -> bytes:
    """``","source":{"topic":"tesla_V","partition":3,"offset":`` (after ``received_at``)."""
    source = json.dumps(topic) + ',"partition":' + str(partition)
    return b'","source":{"topic":' + source.encode("ascii") + b',"offset":'


def mismatch(what: str, named: bytes) -> DataContractError:
    return DataContractError(
        f"{what} does not match the payload VIN",
        value=named.decode("utf-8", "replace")[:40],
        source=SOURCE,
    )


class LineBuilder:
    """Builds ``temp/`` lines for one provider format; keeps small caches between records."""

    def __init__(self, encoding: Encoding = "auto", *, one_topic: bool = False) -> None:
        """``one_topic``: every record comes from one topic (the consumer then compares only
        partitions to know where a record comes from)."""
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
        self.encoding: Encoding = encoding
        self.one_topic = one_topic
        # Valid VINs seen, as bytes → (as text, the ``"key"`` of a line keyed by it).
        self.vins: dict[bytes, tuple[str, bytes]] = {}
        self._sources: dict[tuple[str, int], bytes] = {}

    def source(self, topic: str, partition: int) -> bytes:
        found = self._sources.get((topic, partition))
        if found is None:
            if len(self._sources) >= 4096:
                self._sources.clear()
            found = self._sources[(topic, partition)] = source_start(topic, partition)
        return found

    def valid_vin(self, vin: bytes) -> tuple[str, bytes]:
        """(The VIN as text, the ``"key"`` of a line keyed by it); ``DataContractError`` when
        it is not a valid VIN."""
        found = self.vins.get(vin)
        if found is None:
            text = vin.decode("utf-8", "replace")
            if not is_valid_vin(text):
                raise DataContractError("invalid or missing VIN", value=text or None, source=SOURCE)
            if len(self.vins) >= 100_000:
                self.vins.clear()
            found = self.vins[vin] = (text, KEY + vin + KEYED_HEADERS)
        return found


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
