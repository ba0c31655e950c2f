"""What waiting cannot mend ends the run: credentials the broker refuses (exit 3, in a batch
run and a long-running one alike) and, in a batch run, a topic the brokers do not have
(exit 2). A long-running consumer waits for a missing topic to be created."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from bibev.cli.app import run
from bibev.storage import Storage
from bibev.stream import build_options, run_stream
from tests.fixtures.kafka import create_topic
from tests.stream.conftest import (
    FAST_GROUP,
    FAST_GROUP_CONFIG,
    fleet_records,
    produce,
    stored_by_position,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

SECRET = "Hunter2-" + uuid.uuid4().hex


def stream_argv(tmp_path, bootstrap, topic, *flags):
    argv = ["--root", str(tmp_path / "data"), "--database-url", f"sqlite:///{tmp_path / 'r.db'}"]
    argv += ["stream", "--bootstrap-servers", bootstrap, "--topic", topic]
    argv += ["--group-id", f"refused-{uuid.uuid4().hex[:8]}"]
    for pair in FAST_GROUP:
        argv += ["--consumer-config", pair]
    return [*argv, *flags]


@pytest.mark.parametrize("limit", [["--max-seconds", "8"], []], ids=["batch", "long-running"])
def test_refused_credentials_end_the_run_with_exit_3(
    tmp_path, capsys, kafka_broker, kafka_topic, limit
):
    sasl = ["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=PLAIN", "sasl.username=bibev"]
    sasl.append(f"sasl.password={SECRET}")
    flags = [arg for pair in sasl for arg in ("--consumer-config", pair)]
    started = time.monotonic()

    code = run(stream_argv(tmp_path, kafka_broker, kafka_topic, *flags, *limit))

    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert time.monotonic() - started < 30
    assert "error: Kafka refused the credentials or permissions (_AUTHENTICATION)" in captured.err
    assert SECRET not in captured.err + captured.out
    assert captured.out == ""  # no counts: the run failed


def test_a_batch_run_on_a_topic_that_does_not_exist_exits_2(tmp_path, capsys, kafka_broker):
    missing = f"missing_{uuid.uuid4().hex[:8]}"
    code = run(stream_argv(tmp_path, kafka_broker, missing, "--max-seconds", "8"))
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert f"error: topic '{missing}' does not exist on {kafka_broker}" in captured.err
    assert captured.out == ""


def test_a_long_running_consumer_waits_for_a_missing_topic(tmp_path, kafka_broker, caplog):
    missing = f"later_{uuid.uuid4().hex[:8]}"
    opts = build_options(
        bootstrap_servers=kafka_broker,
        topics=[missing],
        group_id=f"later-{uuid.uuid4().hex[:8]}",
        flush_interval=0.5,
        consumer_config={**FAST_GROUP_CONFIG, "topic.metadata.refresh.interval.ms": "1000"},
    )
    stop = threading.Event()
    outcome: dict[str, object] = {}

    def consume() -> None:
        try:
            outcome["result"] = run_stream(Storage(str(tmp_path)), opts, stop=stop)
        except Exception as exc:  # reported below
            outcome["error"] = exc

    with caplog.at_level(logging.WARNING, logger="bibev.stream"):
        worker = threading.Thread(target=consume)
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while "until it is created" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "until it is created" in caplog.text
            assert worker.is_alive()
            create_topic(kafka_broker, missing)
            sent = produce(kafka_broker, missing, fleet_records(20, vehicles=2))
            deadline = time.monotonic() + 60
            while len(stored_by_position(tmp_path)) < 20 and time.monotonic() < deadline:
                time.sleep(0.3)
        finally:
            stop.set()
            worker.join(40)
    assert "error" not in outcome, outcome
    assert sorted(stored_by_position(tmp_path)) == sorted((r.partition, r.offset) for r in sent)
