"""`bibev stream` as real processes against a real broker: SIGKILL at random points loses
nothing, SIGTERM drains cleanly, and two processes of one group share the partitions."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
import uuid
from datetime import timedelta

import pytest

from tests.stream.conftest import (
    BASE,
    Sent,
    committed,
    fleet_records,
    high_watermarks,
    produce,
    stored_by_position,
    tesla_value,
    vin,
)
from tests.stream.processes import drain_when_stored, wait_until_stored

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]


def test_sigkill_three_times_at_random_points_loses_nothing(
    kafka_broker, kafka_topic, tmp_path, spawn
):
    rng = random.Random(3)
    group = f"crash-{uuid.uuid4().hex[:8]}"
    flags = ("--buffer-size", "50", "--flush-interval", "0.5")
    # A killed member holds its partitions until its session expires: keep that short here.
    flags += ("--consumer-config", "session.timeout.ms=2000")
    flags += ("--consumer-config", "heartbeat.interval.ms=300")
    sent: list[Sent] = []
    producing = threading.Event()
    producing.set()

    def producer() -> None:
        i = 0
        while producing.is_set():
            batch = [
                Sent(vin(k % 40).encode(), tesla_value(vin(k % 40), BASE + timedelta(seconds=k), k))
                for k in range(i, i + 100)
            ]
            sent.extend(produce(kafka_broker, kafka_topic, batch))
            i += 100
            time.sleep(0.2)

    feeder = threading.Thread(target=producer)
    feeder.start()
    kills = []
    try:
        for _ in range(3):
            process = spawn(group, *flags)
            process.wait_for(r"assigned .*\[")
            time.sleep(rng.uniform(0.5, 2.5))
            code, _ = process.stop(signal.SIGKILL)
            assert code == -signal.SIGKILL
            kills.append((len(sent), len(stored_by_position(tmp_path / "data"))))
    finally:
        producing.clear()
        feeder.join()
    # Every kill hit a consumer while records were still being produced and stored.
    assert len(kills) == 3
    assert kills[-1][1] > 0, kills

    final = spawn(group, *flags)
    out = drain_when_stored(final, tmp_path / "data", sent)
    assert json.loads(out)["uncommitted"] == []
    assert committed(kafka_broker, group, kafka_topic) == high_watermarks(sent)


def test_sigterm_drains_buffers_and_commits_everything(kafka_broker, kafka_topic, tmp_path, spawn):
    sent = produce(kafka_broker, kafka_topic, fleet_records(2000, json_every=5))
    group = f"drain-{uuid.uuid4().hex[:8]}"
    flags = ("--buffer-size", "100000", "--flush-interval", "600", "--stats-interval", "0.3")
    process = spawn(group, *flags)
    process.wait_for(r"total 2,000 messages")
    assert stored_by_position(tmp_path / "data") == {}  # all of it still in memory

    code, out = process.stop(signal.SIGTERM)

    assert code == 0, "\n".join(process.lines[-20:])
    assert any("draining" in line for line in process.lines)
    summary = json.loads(out)
    assert (summary["messages"], summary["quarantined"], summary["uncommitted"]) == (2000, 0, [])
    stored = stored_by_position(tmp_path / "data")
    assert sorted(stored) == sorted((r.partition, r.offset) for r in sent)
    assert all(len(docs) == 1 for docs in stored.values())
    assert committed(kafka_broker, group, kafka_topic) == high_watermarks(sent)


def test_two_processes_in_one_group_share_the_partitions(
    kafka_broker, kafka_topic, tmp_path, spawn
):
    group = f"pair-{uuid.uuid4().hex[:8]}"
    flags = ("--flush-interval", "0.5")
    first = spawn(group, *flags)
    first.wait_for(r"assigned .*\[")
    second = spawn(group, *flags)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shares = [first.assigned(), second.assigned()]
        if shares[0] and shares[1] and len(shares[0]) + len(shares[1]) == 4:
            break
        time.sleep(0.2)
    assert shares[0] | shares[1] == {0, 1, 2, 3}, shares
    assert not shares[0] & shares[1], shares

    sent = produce(kafka_broker, kafka_topic, fleet_records(4000, vehicles=40))
    wait_until_stored(
        lambda: stored_by_position(tmp_path / "data"), {(r.partition, r.offset) for r in sent}
    )
    results = [process.stop(signal.SIGTERM) for process in (first, second)]

    assert [code for code, _ in results] == [0, 0]
    counts = [json.loads(out)["messages"] for _, out in results]
    assert all(count > 0 for count in counts), counts
    by_partition = {p: sum(1 for r in sent if r.partition == p) for p in range(4)}
    assert counts == [sum(by_partition[p] for p in share) for share in shares]
    assert committed(kafka_broker, group, kafka_topic) == high_watermarks(sent)
