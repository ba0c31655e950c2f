"""One ``consume()`` batch → its lines grouped by VIN and day, its bad records, its offsets.

This is the consumer's hot loop: it runs for every record, so the work per record is a few
calls into C (the ``Message`` accessors, the protobuf reader's slices and cache lookups, one
``%`` per line) and the rare cases (a record to quarantine, a VIN's records from two days or
two partitions in one batch, a first VIN or second) leave the loop for a helper. The
protojson values of a batch are checked before the loop, all at once (``columns``).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bibev.errors import DataContractError
from bibev.stream.buffers import TopicPartition
from bibev.stream.columns import json_fields
from bibev.stream.protojson import NotCanonical, protojson_parts
from bibev.stream.records import (
    _SECOND_BYTES,
    LINE_END,
    LINE_START,
    MILLIS,
    PAYLOAD,
    RECEIVED_AT,
    SOURCE,
    UNKEYED_HEADERS,
    LineBuilder,
    headers_json,
    json_day,
    mismatch,
    payload_parts,
    quarantine_line,
    second_bytes,
)


class VinLines:
    """The lines one batch gives one VIN: nearly always of one day and one partition; any
    other day or partition goes to ``other_days`` / ``other_tps``."""

    __slots__ = ("day", "first", "lines", "other_days", "other_tps", "tp")

    def __init__(self, day: str, line: bytes, tp: TopicPartition, offset: int) -> None:
        self.day = day
        self.lines = [line]
        self.tp = tp
        self.first = offset
        self.other_days: dict[str, list[bytes]] | None = None
        self.other_tps: dict[TopicPartition, int] | None = None

    def add(self, day: str, line: bytes, tp: TopicPartition, offset: int) -> None:
        """Any line (the hot loop appends the usual ones to ``lines`` itself)."""
        if tp != self.tp:
            if self.other_tps is None:
                self.other_tps = {}
            self.other_tps.setdefault(tp, offset)
        if day == self.day:
            self.lines.append(line)
            return
        if self.other_days is None:
            self.other_days = {}
        self.other_days.setdefault(day, []).append(line)

    def by_day(self) -> dict[str, list[bytes]]:
        return {self.day: self.lines, **(self.other_days or {})}

    def first_offsets(self) -> dict[TopicPartition, int]:
        """The first offset of each partition these lines come from."""
        return {self.tp: self.first, **(self.other_tps or {})}


@dataclass
class Batch:
    """What one batch gave: lines per VIN, quarantine lines, and per partition the first and
    last offset read (bad records included: they are done once quarantined)."""

    groups: dict[str, VinLines] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    first: dict[TopicPartition, int] = field(default_factory=dict)
    last: dict[TopicPartition, int] = field(default_factory=dict)
    errors: list[Any] = field(default_factory=list)
    count: int = 0
    size: int = 0
    # Raise a bad record's ``DataContractError`` instead of quarantining it (``record_line``).
    strict: bool = False


def read_batch(builder: LineBuilder, messages: Sequence[Any], now_ms: int) -> Batch:
    """Decode, check and format every record of ``messages`` (``confluent_kafka.Message``);
    ``now_ms`` stands in for a missing record timestamp."""
    batch = Batch()
    _read(batch, builder, messages, now_ms, latest_day(datetime.now(UTC)))
    return batch


def record_line(builder: LineBuilder, message: Any) -> tuple[str, str, bytes]:
    """``(vin, UTC day, line)`` of one record, built as the consumer builds a batch's;
    ``DataContractError`` when the record must be quarantined."""
    batch = Batch(strict=True)
    _read(batch, builder, [message], now_ms=0, latest=latest_day(datetime.now(UTC)))
    ((vin, lines),) = batch.groups.items()
    return vin, lines.day, lines.lines[0]


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector paused, for one ``consume()`` and its batch.

    A batch holds thousands of messages, each with its headers (a list and a tuple per
    header), and the loop allocates a few objects per record; with the collector on, it runs
    every 700 allocations and walks all of them, again and again, although the loop makes no
    reference cycles. Paused, it runs once afterwards, when the batch is already freed.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def latest_day(now: datetime) -> str:
    """The last UTC day a record's ``createdAt`` may be on, read at ``now``: tomorrow. A later
    one is no real record (a clock gone wrong): its day would never be compacted."""
    return (now.astimezone(UTC) + timedelta(days=1)).date().isoformat()


def _read(
    batch: Batch, builder: LineBuilder, messages: Sequence[Any], now_ms: int, latest: str
) -> None:
    # One function on purpose: a call per record costs more than most of the steps below.
    groups, get_group, vins, seconds = batch.groups, batch.groups.get, builder.vins, _SECOND_BYTES
    encoding, one_topic = builder.encoding, builder.one_topic
    sniff, fast = encoding == "auto", encoding != "json"
    topic, partition, tp, offset, source, size = "", -1, ("", -1), -1, b"", 0
    day: str | None
    values = [message.value() for message in messages]
    # The VIN and createdAt of the protojson values, read for the whole batch at once.
    known_json = json_fields(values) if encoding != "protobuf" else [None] * len(values)
    for message, value, known in zip(messages, values, known_json, strict=True):
        if message.error() is not None:
            batch.errors.append((message.error(), message.topic()))
            continue
        if message.partition() != partition or (not one_topic and message.topic() != topic):
            topic, partition, tp, source = _next_partition(batch, builder, message, tp, offset)
        offset = message.offset()
        size += len(value) if value else 0
        try:
            if known is not None:  # a protojson object (columns.json_fields): stored as sent
                vin_raw, day, payload = known[0], json_day(known[1]), value
            elif fast and value and value[0] != 0x7B and not (sniff and _looks_like_json(value)):
                try:
                    vin_raw, day, payload = protojson_parts(value)
                except (NotCanonical, IndexError):
                    vin_raw, day, payload = payload_parts(value, encoding)
                if day is None:
                    raise DataContractError("payload has no createdAt", source=SOURCE)
            else:
                vin_raw, day, payload = payload_parts(value, encoding)
            if day > latest:
                raise DataContractError(
                    f"createdAt is on {day}, after tomorrow (UTC): no real record", source=SOURCE
                )
            vin, keyed = vins.get(vin_raw) or builder.valid_vin(vin_raw)
            key = message.key()
            if key != vin_raw and key is not None:
                raise mismatch("record key", key)
            header_json, named = headers_json(message.headers())
            if named != vin_raw and named is not None:
                raise mismatch("vin header", named)
            kind, ms = message.timestamp()
            if kind == 0 or ms < 0:  # TIMESTAMP_NOT_AVAILABLE
                ms = now_ms
            second = ms // 1000
            line = b"".join(
                (
                    LINE_START,
                    vin_raw,
                    RECEIVED_AT,
                    seconds.get(second) or second_bytes(second),
                    MILLIS[ms - second * 1000],
                    source,
                    b"%d" % offset,
                    UNKEYED_HEADERS if key is None else keyed,
                    header_json,
                    PAYLOAD,
                    payload,
                    LINE_END,
                )
            )
        except DataContractError as exc:
            if batch.strict:
                raise
            batch.rejected.append(_quarantined(message, exc, now_ms))
            continue
        group = get_group(vin)
        if group is None:
            groups[vin] = VinLines(day, line, tp, offset)
        elif group.day == day and group.tp is tp:
            group.lines.append(line)
        else:
            group.add(day, line, tp, offset)
    if partition >= 0:
        batch.last[tp] = offset
    batch.count = len(messages) - len(batch.errors)
    batch.size = size


def _next_partition(
    batch: Batch, builder: LineBuilder, message: Any, tp: TopicPartition, offset: int
) -> tuple[str, int, TopicPartition, bytes]:
    """The records from here on come from another partition: close the last one's run."""
    if tp[1] >= 0:
        batch.last[tp] = offset
    topic, partition = message.topic(), message.partition()
    batch.first.setdefault((topic, partition), message.offset())
    return topic, partition, (topic, partition), builder.source(topic, partition)


def _looks_like_json(value: bytes) -> bool:
    """A value that starts with ``{`` after white space: read as protojson first (``auto``)."""
    if value[0] > 0x20:
        return False
    brace = value.find(b"{", 0, 64)
    return brace > 0 and value[:brace].isspace()


def _quarantined(message: Any, exc: DataContractError, now_ms: int) -> str:
    kind, ms = message.timestamp()
    return quarantine_line(
        reason=str(exc),
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        headers=message.headers(),
        timestamp_ms=ms if kind and ms >= 0 else now_ms,
        value=message.value(),
        quarantined_at=datetime.now(UTC).isoformat(),
    )
