"""``bibev sim --kafka``: the simulated fleet's Fleet Telemetry produced to a Kafka topic.

Records look like what Tesla's ``fleet-telemetry`` server produces: keyed by VIN, with the
headers ``vin, receivedat, timestamp, txid, txtype, version, device_client_version``, the value
a protobuf ``Payload`` (default) or, as with ``transmit_decoded_records``, its protojson. The
record timestamp is the simulated moment the server received the message. Header values that
the public description does not pin down are simulated: ``timestamp`` is the payload's
``createdAt`` in epoch milliseconds, ``txid`` a deterministic UUID, ``version`` ``1`` and
``device_client_version`` a firmware-like string.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from bibev.errors import ConfigError, ProviderError
from bibev.log_repeats import RepeatFilter
from bibev.providers.tesla import encode_payload, payload_to_protojson
from bibev.sim.feed import TeslaPayload, tesla_payloads
from bibev.sim.run import SimConfig, default_start

logger = logging.getLogger(__name__)
#: The Kafka client's own lines; a failure it repeats is written once every 30 s.
client_logger = logging.getLogger("bibev.sim.kafka.client")
client_logger.addFilter(RepeatFilter(30.0))

Encoding = Literal["protobuf", "json"]
ENCODINGS: tuple[str, ...] = ("protobuf", "json")
DEFAULT_TOPIC = "tesla_V"
DEVICE_CLIENT_VERSION = "2024.44.25"
# Called once per delivered record: (payload, key, value, partition, offset).
OnDelivery = Callable[[TeslaPayload, bytes, bytes, int, int], None]


@dataclass
class ProduceSummary:
    """What was produced."""

    topic: str
    encoding: str
    messages: int = 0
    bytes: int = 0
    vins: set[str] = field(default_factory=set)
    partitions: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "encoding": self.encoding,
            "messages": self.messages,
            "bytes": self.bytes,
            "vins": len(self.vins),
            "partitions": dict(sorted(self.partitions.items())),
        }


def _millis(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1000)


def fleet_telemetry_record(
    payload: TeslaPayload, encoding: Encoding, txid: str
) -> tuple[bytes, bytes, list[tuple[str, str | bytes | None]], int]:
    """One payload as a Kafka record: (key, value, headers, timestamp in epoch ms)."""
    value = encode_payload(payload.vin, payload.created_at, payload.data, payload.is_resend)
    if encoding == "json":
        value = json.dumps(payload_to_protojson(value), separators=(",", ":")).encode()
    received_ms = _millis(payload.received_at)
    headers: list[tuple[str, str | bytes | None]] = [
        ("vin", payload.vin.encode()),
        ("receivedat", str(received_ms).encode()),
        ("timestamp", str(_millis(payload.created_at)).encode()),
        ("txid", txid.encode()),
        ("txtype", b"V"),
        ("version", b"1"),
        ("device_client_version", DEVICE_CLIENT_VERSION.encode()),
    ]
    return payload.vin.encode(), value, headers, received_ms


def produce_payloads(
    bootstrap: str,
    payloads: Iterable[TeslaPayload],
    *,
    topic: str = DEFAULT_TOPIC,
    encoding: Encoding = "protobuf",
    seed: int = 0,
    producer_config: Mapping[str, Any] | None = None,
    on_delivery: OnDelivery | None = None,
) -> ProduceSummary:
    """Produce ``payloads`` to ``topic`` and wait until the broker has them all."""
    if encoding not in ENCODINGS:
        raise ConfigError(f"--encoding must be one of {', '.join(ENCODINGS)}")
    try:
        from confluent_kafka import KafkaException, Producer
    except ImportError:
        raise ConfigError("bibev sim --kafka needs confluent-kafka: install bibev[kafka]") from None
    config = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 200_000,
        "message.timeout.ms": 60_000,
        "acks": "all",
        "logger": client_logger,
        **(producer_config or {}),
    }
    try:
        producer = Producer(config)
    except KafkaException as exc:
        raise ConfigError(f"invalid Kafka producer configuration: {exc}") from exc
    summary = ProduceSummary(topic, encoding)
    failures: list[str] = []
    txids = uuid.UUID(int=seed)

    def delivered(payload: TeslaPayload):
        def callback(error: Any, message: Any) -> None:
            if error is not None:
                failures.append(error.str())
                return
            summary.partitions[message.partition()] = (
                summary.partitions.get(message.partition(), 0) + 1
            )
            if on_delivery is not None:
                on_delivery(
                    payload, message.key(), message.value(), message.partition(), message.offset()
                )

        return callback

    for n, payload in enumerate(payloads):
        txid = str(uuid.uuid5(txids, f"{payload.vin}:{n}"))
        key, value, headers, timestamp = fleet_telemetry_record(payload, encoding, txid)
        while True:
            try:
                producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=headers,
                    timestamp=timestamp,
                    on_delivery=delivered(payload),
                )
                break
            except BufferError:
                producer.poll(0.1)  # the local queue is full: let deliveries drain
        producer.poll(0)
        summary.messages += 1
        summary.bytes += len(value)
        summary.vins.add(payload.vin)
    while (left := producer.flush(10.0)) > 0:
        logger.info("waiting for the broker to acknowledge %d records", left)
    if failures:
        raise ProviderError(
            f"{len(failures)} of {summary.messages} records were not delivered to {topic}: "
            f"{failures[0]}"
        )
    logger.info(
        "produced %d records of %d vehicles to %s", summary.messages, len(summary.vins), topic
    )
    return summary


def produce_fleet_telemetry(
    bootstrap: str,
    *,
    topic: str = DEFAULT_TOPIC,
    encoding: Encoding = "protobuf",
    vehicles: int = 10,
    days: int = 1,
    seed: int = 0,
    start: date | None = None,
    mess: bool = True,
    producer_config: Mapping[str, Any] | None = None,
    on_delivery: OnDelivery | None = None,
) -> ProduceSummary:
    """Simulate ``vehicles`` Teslas for ``days`` UTC days (the same fleet and messages as
    ``bibev sim`` with these options writes to files) and produce their Fleet Telemetry to
    ``topic`` on ``bootstrap``. Without ``start`` the last day is yesterday (UTC)."""
    first = start or default_start(days, datetime.now(UTC).date())
    config = SimConfig(
        start=first, vehicles=vehicles, days=days, seed=seed, provider="tesla", mess=mess
    )
    logger.info(
        "producing %d vehicles × %d days from %s (seed %d) to %s on %s as %s",
        vehicles,
        days,
        first,
        seed,
        topic,
        bootstrap,
        encoding,
    )
    return produce_payloads(
        bootstrap,
        tesla_payloads(config),
        topic=topic,
        encoding=encoding,
        seed=seed,
        producer_config=producer_config,
        on_delivery=on_delivery,
    )
