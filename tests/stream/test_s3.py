"""`bibev stream` into an S3 root (the moto server) as a real process against the real broker:
every record is stored once and committed, and an S3 outage mid-stream is waited out."""

from __future__ import annotations

import json
import signal
import uuid
from typing import Any

import pytest

from tests.stream.conftest import (
    by_position,
    committed,
    fleet_records,
    high_watermarks,
    produce,
)
from tests.stream.processes import wait_until_stored

pytestmark = [pytest.mark.kafka, pytest.mark.s3, pytest.mark.slow, pytest.mark.timeout(300)]

SECRET = "s3-secret-never-logged"


def s3_lines(fs: Any, bucket: str) -> list[tuple[str, dict[str, Any]]]:
    """(key under the root, parsed line) of every line of every file of ``root/temp``."""
    found = []
    for path in sorted(fs.find(f"{bucket}/root/temp")):
        for line in fs.cat(path).decode().splitlines():
            found.append((path.removeprefix(f"{bucket}/root/"), json.loads(line)))
    return found


def test_every_record_lands_once_in_the_s3_root_and_is_committed(
    kafka_broker, kafka_topic, s3_endpoint, s3_bucket, s3_filesystem, spawn
):
    sent = produce(kafka_broker, kafka_topic, fleet_records(600, vehicles=6, json_every=4))
    group = f"s3-{uuid.uuid4().hex[:8]}"
    env = {"BIBEV_S3_ENDPOINT_URL": s3_endpoint}
    flags = ("--buffer-size", "50", "--max-messages", "600")
    process = spawn(group, *flags, root=f"s3://{s3_bucket}/root", env=env)

    code, out = process.wait(timeout=120)  # it stops by itself after --max-messages

    assert code == 0, "\n".join(process.lines[-20:])
    lines = s3_lines(s3_filesystem, s3_bucket)
    stored = by_position(lines)
    assert sorted(stored) == sorted((r.partition, r.offset) for r in sent)
    assert all(len(docs) == 1 for docs in stored.values())
    for record in sent:
        assert stored[(record.partition, record.offset)][0]["payload"] == record.payload
    for key, doc in lines:
        assert key.startswith(f"temp/{doc['vin']}/2025-03-01/")
        assert key.endswith(".jsonl")
    assert json.loads(out)["uncommitted"] == []
    assert committed(kafka_broker, group, kafka_topic) == high_watermarks(sent)


def test_an_s3_outage_mid_stream_is_waited_out_and_loses_nothing(
    kafka_broker, kafka_topic, s3_bucket, s3_filesystem, flaky_s3, spawn
):
    group = f"s3-outage-{uuid.uuid4().hex[:8]}"
    env = {
        "BIBEV_S3_ENDPOINT_URL": flaky_s3.url,
        "BIBEV_S3_ACCESS_KEY_ID": "testing",
        "BIBEV_S3_SECRET_ACCESS_KEY": SECRET,
    }
    flags = ("--buffer-size", "20", "--flush-interval", "0.5")
    process = spawn(group, *flags, root=f"s3://{s3_bucket}/root", env=env)
    process.wait_for(r"assigned .*\[")

    def stored() -> dict[tuple[int, int], list[Any]]:
        return by_position(s3_lines(s3_filesystem, s3_bucket))

    before = produce(kafka_broker, kafka_topic, fleet_records(200, vehicles=8))
    wait_until_stored(stored, {(r.partition, r.offset) for r in before})
    flaky_s3.stop()
    during = produce(kafka_broker, kafka_topic, fleet_records(200, vehicles=8, first=200))
    process.wait_for(r"attempt 1 of at most 8: cannot write 'temp/", timeout=90)
    assert process.process.poll() is None  # still running, not failed
    assert committed(kafka_broker, group, kafka_topic) == high_watermarks(before)
    flaky_s3.start()

    sent = before + during
    wait_until_stored(stored, {(r.partition, r.offset) for r in sent}, timeout=120)
    code, out = process.stop(signal.SIGTERM)

    assert code == 0, "\n".join(process.lines[-20:])
    positions = stored()
    for record in sent:
        docs = positions[(record.partition, record.offset)]
        assert all(doc["payload"] == record.payload for doc in docs)
    assert json.loads(out)["uncommitted"] == []
    assert committed(kafka_broker, group, kafka_topic) == high_watermarks(sent)
    assert SECRET not in "\n".join(process.lines) + out
    assert not any("stamina" in line for line in process.lines)
