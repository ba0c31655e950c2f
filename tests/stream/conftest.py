"""Helpers of the stream tests: produce Tesla records, read back temp/ and quarantine/."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bibev.providers.tesla import encode_payload, payload_to_protojson

BASE = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
FAST_GROUP = ["session.timeout.ms=6000", "heartbeat.interval.ms=500"]
FAST_GROUP_CONFIG = dict(pair.split("=") for pair in FAST_GROUP)


def vin(i: int) -> str:
    return f"5YJ3E1EA7KF{i:06d}"


@dataclass
class Sent:
    """One produced record and where the broker put it."""

    key: bytes | None
    value: bytes
    partition: int = -1
    offset: int = -1

    @property
    def payload(self) -> dict[str, Any]:
        """The protojson document a stored line must carry for this record."""
        if self.value[:1] == b"{":
            return json.loads(self.value)
        return payload_to_protojson(self.value)


def tesla_value(vin_: str, created_at: datetime, i: int, encoding: str = "protobuf") -> bytes:
    data = [
        ("Soc", round(50 + (i % 400) / 10, 1)),
        ("VehicleSpeed", float(i % 90)),
        ("Gear", "ShiftStateD"),
        ("Location", (48.1 + i * 1e-5, 11.5)),
    ]
    raw = encode_payload(vin_, created_at, data)
    return json.dumps(payload_to_protojson(raw)).encode() if encoding == "json" else raw


def fleet_records(n: int, vehicles: int = 20, *, json_every: int = 0, first: int = 0) -> list[Sent]:
    """``n`` records of ``vehicles`` VINs one second apart, the ``first``-th second after
    ``BASE`` on (every ``json_every``-th protojson)."""
    records = []
    for i in range(first, first + n):
        encoding = "json" if json_every and i % json_every == 0 else "protobuf"
        v = vin(i % vehicles)
        value = tesla_value(v, BASE + timedelta(seconds=i), i, encoding)
        records.append(Sent(v.encode(), value))
    return records


def produce(bootstrap: str, topic: str, records: Iterable[Sent]) -> list[Sent]:
    """Produce ``records`` (keyed, with Fleet Telemetry headers); fills in partition/offset."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10})
    sent = list(records)
    errors = []

    def delivered(record: Sent):
        def callback(error, message):
            if error is not None:
                errors.append(error)
            else:
                record.partition, record.offset = message.partition(), message.offset()

        return callback

    for record in sent:
        headers = [("txtype", b"V"), ("version", b"1")]
        if record.key is not None:
            headers.insert(0, ("vin", record.key))
        while True:
            try:
                producer.produce(
                    topic,
                    key=record.key,
                    value=record.value,
                    headers=headers,
                    on_delivery=delivered(record),
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors
    return sent


def read_lines(root: Path, prefix: str = "temp") -> list[tuple[str, dict[str, Any]]]:
    """(relative path, parsed line) of every line of every file under ``root/prefix``."""
    found = []
    for path in sorted((root / prefix).rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            found.append((str(path.relative_to(root)), json.loads(line)))
    return found


def stored_by_position(root: Path) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """Stored lines grouped by (partition, offset); more than one means a duplicate."""
    return by_position(read_lines(root))


def by_position(lines: Iterable[tuple[str, dict[str, Any]]]) -> dict[tuple[int, int], list[Any]]:
    """Parsed lines (``read_lines``) grouped by (partition, offset)."""
    stored: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for _, doc in lines:
        position = (doc["source"]["partition"], doc["source"]["offset"])
        stored.setdefault(position, []).append(doc)
    return stored


def committed(bootstrap: str, group: str, topic: str, partitions: int = 4) -> dict[int, int]:
    """The group's committed next offset per partition (partitions without a commit left out)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        result = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=20
        )
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in result if tp.offset >= 0}


def high_watermarks(records: Iterable[Sent]) -> dict[int, int]:
    """Per partition, the offset after the last produced record."""
    marks: dict[int, int] = {}
    for record in records:
        marks[record.partition] = max(marks.get(record.partition, 0), record.offset + 1)
    return marks


@pytest.fixture
def spawn(kafka_broker: str, kafka_topic: str, tmp_path: Path) -> Iterator[Any]:
    """Start ``bibev stream`` processes (``processes.StreamProcess``) on the test's topic:
    ``spawn(group, *flags, root=…, env=…)``. Any still running at the end of the test is
    killed."""
    from tests.stream.processes import StreamProcess  # it imports this module

    started: list[StreamProcess] = []

    def start(group: str, *flags: str, **options: Any) -> StreamProcess:
        process = StreamProcess(tmp_path, kafka_broker, kafka_topic, group, *flags, **options)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(10)
