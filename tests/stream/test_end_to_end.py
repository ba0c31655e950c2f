"""The simulated fleet produced to Kafka (the library behind ``bibev sim --kafka``) and
consumed by ``bibev stream``: every record lands in temp/ exactly as it was sent."""

import json
import uuid
from datetime import UTC, date, datetime

import pytest

from bibev.providers.tesla import payload_to_protojson
from bibev.sim.kafka import produce_fleet_telemetry
from bibev.storage import Storage
from bibev.stream import build_options, run_stream
from tests.stream.conftest import FAST_GROUP_CONFIG, committed, read_lines

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_every_simulated_record_is_stored_exactly_as_sent(
    kafka_broker, kafka_topic, tmp_path, encoding
):
    delivered = []
    summary = produce_fleet_telemetry(
        kafka_broker,
        topic=kafka_topic,
        encoding=encoding,
        vehicles=4,
        days=2,
        seed=7,
        start=date(2025, 3, 1),
        on_delivery=lambda payload, key, value, p, o: delivered.append((payload, value, p, o)),
    )
    assert summary.messages == len(delivered) > 1000
    group = f"e2e-{uuid.uuid4().hex[:8]}"
    options = build_options(
        bootstrap_servers=kafka_broker,
        topics=[kafka_topic],
        group_id=group,
        buffer_size=500,
        max_messages=summary.messages,
        consumer_config=FAST_GROUP_CONFIG,
    )

    result = run_stream(Storage(str(tmp_path)), options)

    stored = {}
    for path, doc in read_lines(tmp_path):
        position = (doc["source"]["partition"], doc["source"]["offset"])
        assert position not in stored  # no duplicates without a crash
        stored[position] = (path, doc)
    assert len(stored) == len(delivered)
    for payload, value, partition, offset in delivered:
        path, doc = stored[(partition, offset)]
        sent = json.loads(value) if encoding == "json" else payload_to_protojson(value)
        assert doc["payload"] == sent
        assert doc["vin"] == doc["source"]["key"] == payload.vin
        day = payload.created_at.astimezone(UTC).date().isoformat()
        assert path.startswith(f"temp/{payload.vin}/{day}/")
        received = datetime.fromisoformat(doc["received_at"])
        assert received == payload.received_at.replace(
            microsecond=payload.received_at.microsecond // 1000 * 1000
        )
        headers = doc["source"]["headers"]
        assert set(headers) == {
            "vin",
            "receivedat",
            "timestamp",
            "txid",
            "txtype",
            "version",
            "device_client_version",
        }
        assert headers["vin"] == payload.vin
        assert int(headers["receivedat"]) == int(payload.received_at.timestamp() * 1000)
    days = {path.split("/")[2] for path, _ in stored.values()}
    assert {"2025-03-01", "2025-03-02"} <= days
    assert any(p.is_resend for p, *_ in delivered)
    assert result.counts.quarantined == 0
    marks = {}
    for _, _, partition, offset in delivered:
        marks[partition] = max(marks.get(partition, 0), offset + 1)
    assert committed(kafka_broker, group, kafka_topic) == marks
