"""The consumer against a real Kafka broker (Tansu), in process: what arrives in temp/ and
quarantine/, and which offsets end up committed."""

import base64
import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import stamina

from bibev.errors import StorageError
from bibev.storage import Storage
from bibev.stream import build_options, run_stream
from tests.fixtures.kafka import create_topic, free_port, start_tansu, stop_tansu
from tests.stream.conftest import (
    FAST_GROUP_CONFIG,
    Sent,
    committed,
    fleet_records,
    high_watermarks,
    produce,
    read_lines,
    stored_by_position,
    tesla_value,
    vin,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def options(bootstrap, topic, **values):
    values.setdefault("group_id", f"g-{uuid.uuid4().hex[:8]}")
    values.setdefault("stats_interval", 1.0)
    values["consumer_config"] = {**FAST_GROUP_CONFIG, **values.get("consumer_config", {})}
    return build_options(bootstrap_servers=bootstrap, topics=[topic], **values)


def test_every_record_is_stored_once_as_sent_and_committed(kafka_broker, kafka_topic, tmp_path):
    sent = produce(kafka_broker, kafka_topic, fleet_records(3000, json_every=7))
    opts = options(kafka_broker, kafka_topic, buffer_size=100, max_messages=len(sent))

    result = run_stream(Storage(str(tmp_path)), opts)

    stored = stored_by_position(tmp_path)
    assert sorted(stored) == sorted((r.partition, r.offset) for r in sent)
    for record in sent:
        (doc,) = stored[(record.partition, record.offset)]
        assert doc["payload"] == record.payload
        assert doc["source"]["key"] == doc["vin"] == record.key.decode()
        assert doc["source"]["headers"] == {"vin": doc["vin"], "txtype": "V", "version": "1"}
    for path, doc in read_lines(tmp_path):
        assert path.startswith(f"temp/{doc['vin']}/{doc['payload']['createdAt'][:10]}/")
    assert committed(kafka_broker, opts.group_id, kafka_topic) == high_watermarks(sent)
    counts = result.counts
    assert (counts.messages, counts.quarantined, result.uncommitted) == (3000, 0, [])
    assert counts.files >= counts.flushes >= 3000 // 100


def test_poison_records_are_quarantined_and_the_rest_arrives(
    kafka_broker, kafka_topic, tmp_path, caplog
):
    good = fleet_records(400)
    poison = [
        Sent(vin(1).encode(), b"\xff\xfe garbage"),
        Sent(None, tesla_value("NOT-A-VIN", datetime(2025, 3, 1, tzinfo=UTC), 0)),
        Sent(vin(2).encode(), b'{"data": [], "createdAt": "2025-03-01T00:00:00Z"}'),
        Sent(vin(3).encode(), tesla_value(vin(4), datetime(2025, 3, 1, tzinfo=UTC), 0)),
        Sent(vin(5).encode(), b'{"truncated": '),
    ]
    records = good[:100] + poison[:2] + good[100:300] + poison[2:] + good[300:]
    sent = produce(kafka_broker, kafka_topic, records)
    opts = options(kafka_broker, kafka_topic, max_messages=len(sent))

    with caplog.at_level(logging.WARNING, logger="bibev.stream"):
        result = run_stream(Storage(str(tmp_path)), opts)

    stored = stored_by_position(tmp_path)
    assert sorted(stored) == sorted((r.partition, r.offset) for r in good)
    quarantined = {
        (d["source"]["partition"], d["source"]["offset"]): d
        for path, d in read_lines(tmp_path, "quarantine")
        if path.startswith("quarantine/stream/")
    }
    assert sorted(quarantined) == sorted((r.partition, r.offset) for r in poison)
    reasons = []
    for record in poison:
        doc = quarantined[(record.partition, record.offset)]
        assert base64.b64decode(doc["value_base64"]) == record.value
        assert doc["source"]["topic"] == kafka_topic
        reasons.append(doc["reason"])
    assert [r.split(" (")[0] for r in reasons] == [
        "unreadable protobuf Payload",
        "invalid or missing VIN",
        "invalid or missing VIN",
        "record key does not match the payload VIN",
        "value is not JSON",
    ]
    assert result.counts.quarantined == 5
    assert "quarantined" in caplog.text
    # Quarantined records count as done: the commit covers them.
    assert committed(kafka_broker, opts.group_id, kafka_topic) == high_watermarks(sent)


def test_json_nested_too_deeply_is_quarantined_and_the_batch_stored(
    kafka_broker, kafka_topic, tmp_path
):
    good = fleet_records(300, json_every=2)
    deep = [
        Sent(vin(1).encode(), b'{"a":' + b"[" * 1500 + b"]" * 1500 + b"}"),
        Sent(
            vin(2).encode(),
            b'{"data":[{"key":"Soc","value":'
            + b'{"a":' * 2000
            + b"1"
            + b"}" * 2000
            + b'}],"createdAt":"2025-03-01T10:00:00Z","vin":"'
            + vin(2).encode()
            + b'"}',
        ),
    ]
    sent = produce(kafka_broker, kafka_topic, good[:100] + deep[:1] + good[100:] + deep[1:])
    opts = options(kafka_broker, kafka_topic, max_messages=len(sent))

    result = run_stream(Storage(str(tmp_path)), opts)

    assert sorted(stored_by_position(tmp_path)) == sorted((r.partition, r.offset) for r in good)
    quarantined = {
        (d["source"]["partition"], d["source"]["offset"]): d
        for _, d in read_lines(tmp_path, "quarantine")
    }
    assert sorted(quarantined) == sorted((r.partition, r.offset) for r in deep)
    for record in deep:
        doc = quarantined[(record.partition, record.offset)]
        assert doc["reason"].startswith("value is JSON nested too deeply to read")
        assert base64.b64decode(doc["value_base64"]) == record.value
    assert (result.counts.messages, result.counts.quarantined) == (302, 2)
    assert committed(kafka_broker, opts.group_id, kafka_topic) == high_watermarks(sent)


def test_a_buffer_spanning_midnight_is_split_into_two_day_folders(
    kafka_broker, kafka_topic, tmp_path
):
    midnight = datetime(2025, 3, 2, tzinfo=UTC)
    times = [midnight + timedelta(seconds=s) for s in (-2, -1, 0, 1, 2)]
    sent = produce(
        kafka_broker,
        kafka_topic,
        [Sent(vin(7).encode(), tesla_value(vin(7), t, i)) for i, t in enumerate(times)],
    )
    opts = options(kafka_broker, kafka_topic, max_messages=5)

    result = run_stream(Storage(str(tmp_path)), opts)

    by_file: dict[str, list[str]] = {}
    for path, doc in read_lines(tmp_path):
        by_file.setdefault(path.rsplit("/", 1)[0], []).append(doc["payload"]["createdAt"])
    assert by_file == {
        f"temp/{vin(7)}/2025-03-01": ["2025-03-01T23:59:58Z", "2025-03-01T23:59:59Z"],
        f"temp/{vin(7)}/2025-03-02": [
            "2025-03-02T00:00:00Z",
            "2025-03-02T00:00:01Z",
            "2025-03-02T00:00:02Z",
        ],
    }
    assert (result.counts.flushes, result.counts.files) == (1, 2)
    assert len({r.partition for r in sent}) == 1


def test_old_buffers_are_flushed_while_running_and_stop_drains(kafka_broker, kafka_topic, tmp_path):
    sent = produce(kafka_broker, kafka_topic, fleet_records(50, vehicles=5))
    opts = options(kafka_broker, kafka_topic, buffer_size=10_000, flush_interval=0.5)
    stop = threading.Event()
    outcome = {}
    worker = threading.Thread(
        target=lambda: outcome.update(result=run_stream(Storage(str(tmp_path)), opts, stop=stop))
    )
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while len(stored_by_position(tmp_path)) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.2)
        # Everything is on disk while the consumer still runs: the interval flushed it.
        assert worker.is_alive()
        assert len(stored_by_position(tmp_path)) == len(sent)
    finally:
        stop.set()
        worker.join(30)
    assert not worker.is_alive()
    assert outcome["result"].counts.messages == 50
    assert committed(kafka_broker, opts.group_id, kafka_topic) == high_watermarks(sent)


def test_a_broker_outage_is_waited_out_not_fatal(tmp_path, caplog):
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    opts = build_options(
        bootstrap_servers=bootstrap,
        topics=["tesla_V"],
        group_id="outage",
        max_messages=30,
        max_seconds=90,
        flush_interval=0.5,
        consumer_config={**FAST_GROUP_CONFIG, "topic.metadata.refresh.interval.ms": "1000"},
    )
    outcome = {}
    with caplog.at_level(logging.WARNING, logger="bibev.stream"):
        worker = threading.Thread(
            target=lambda: outcome.update(result=run_stream(Storage(str(tmp_path)), opts))
        )
        worker.start()
        time.sleep(3)  # the consumer starts while nothing listens
        assert worker.is_alive()
        broker = start_tansu(port)
        try:
            create_topic(bootstrap, "tesla_V")
            sent = produce(bootstrap, "tesla_V", fleet_records(30, vehicles=3))
            worker.join(80)
        finally:
            stop_tansu(broker)
    assert not worker.is_alive()
    assert "Kafka:" in caplog.text  # the outage was logged
    assert sorted(stored_by_position(tmp_path)) == sorted((r.partition, r.offset) for r in sent)
    assert outcome["result"].counts.messages == 30


def test_stats_lines_report_rates_buffers_and_lag(kafka_broker, kafka_topic, tmp_path, caplog):
    produce(kafka_broker, kafka_topic, fleet_records(200))
    opts = options(kafka_broker, kafka_topic, stats_interval=0.3, max_seconds=6)
    with caplog.at_level(logging.INFO, logger="bibev.stream"):
        run_stream(Storage(str(tmp_path)), opts)
    lines = [r.getMessage() for r in caplog.records if "msg/s" in r.getMessage()]
    assert lines
    last = lines[-1]
    for part in ("MB/s", "buffered", "VINs", f"lag {kafka_topic}[0]=0", "flushes", "quarantined"):
        assert part in last
    assert "total 200 messages" in last
    assert json.dumps(last)  # one plain line


def test_a_storage_failure_stops_without_committing_and_nothing_is_lost(
    kafka_broker, kafka_topic, tmp_path
):
    sent = produce(kafka_broker, kafka_topic, fleet_records(40, vehicles=2))
    root = tmp_path / "data"
    opts = options(kafka_broker, kafka_topic, buffer_size=5, max_messages=40)

    def break_root(received: int) -> None:
        # Once consuming has begun, a file stands where temp/ must go.
        root.mkdir(exist_ok=True)
        (root / "temp").write_text("a file where the temp/ folder should be")

    stamina.set_testing(True, attempts=2)  # stamina's own switch: no waiting between retries
    try:
        with pytest.raises(StorageError, match=r"^stopped; .* cannot write 'temp/5YJ3E1EA7KF0000"):
            run_stream(Storage(str(root)), opts, on_progress=break_root)
    finally:
        stamina.set_testing(False)
    assert committed(kafka_broker, opts.group_id, kafka_topic) == {}

    (root / "temp").unlink()
    run_stream(Storage(str(root)), opts)  # the same group, the root repaired

    stored = stored_by_position(root)
    assert sorted(stored) == sorted((r.partition, r.offset) for r in sent)
    assert committed(kafka_broker, opts.group_id, kafka_topic) == high_watermarks(sent)


def test_a_root_that_takes_no_write_fails_before_anything_is_consumed(
    kafka_broker, kafka_topic, tmp_path
):
    sent = produce(kafka_broker, kafka_topic, fleet_records(10, vehicles=2))
    broken = tmp_path / "not-a-directory"
    broken.write_text("a file where the storage root should be")
    opts = options(kafka_broker, kafka_topic, max_messages=10)
    stamina.set_testing(True, attempts=2)
    try:
        with pytest.raises(StorageError, match=r"^not started, nothing consumed: cannot write"):
            run_stream(Storage(str(broken)), opts)
    finally:
        stamina.set_testing(False)
    assert broken.read_text() == "a file where the storage root should be"
    assert committed(kafka_broker, opts.group_id, kafka_topic) == {}

    result = run_stream(Storage(str(tmp_path / "data")), opts)  # the same group: from offset 0

    assert result.counts.messages == len(sent)


def test_a_broker_that_refuses_connections_is_logged_as_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """librdkafka logs a refused connection at ERROR (``FAIL``); the client retries it, so it
    reaches the log as a WARNING."""
    import socket

    from confluent_kafka import Consumer

    from bibev.stream.consumer import kafka_logger

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"bootstrap.servers": f"127.0.0.1:{port}", "group.id": "g", "logger": kafka_logger}
    consumer = Consumer(config)
    try:
        with caplog.at_level(logging.DEBUG, logger="bibev.stream.kafka"):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not _failures(caplog):
                consumer.poll(0.2)
    finally:
        consumer.close()
    failures = _failures(caplog)
    assert failures, "librdkafka logged no failed connection"
    assert {record.levelname for record in failures} == {"WARNING"}
    assert "Connection refused" in failures[0].getMessage()


def _failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("FAIL ")]
