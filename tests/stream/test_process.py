"""`bibev stream` as real processes against a real broker: SIGKILL at random points loses
nothing, SIGTERM drains cleanly, and two processes of one group share the partitions."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.stream.conftest import (
    BASE,
    FAST_GROUP,
    Sent,
    committed,
    fleet_records,
    high_watermarks,
    produce,
    stored_by_position,
    tesla_value,
    vin,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]


class StreamProcess:
    """One ``python -m bibev stream`` process; its stderr is collected line by line."""

    def __init__(self, tmp: Path, bootstrap: str, topic: str, group: str, *flags: str) -> None:
        command = [
            sys.executable,
            "-m",
            "bibev",
            "--root",
            str(tmp / "data"),
            "--database-url",
            f"sqlite:///{tmp / 'bibev.db'}",
            "stream",
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            topic,
            "--group-id",
            group,
            *[arg for pair in FAST_GROUP for arg in ("--consumer-config", pair)],
            *flags,
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in reversed(self.lines):
                found = regex.search(line)
                if found:
                    return found
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in stderr:\n" + "\n".join(self.lines[-30:]))

    def assigned(self) -> set[int]:
        """Partitions this process holds now, from its assigned/revoked log lines."""
        held: set[int] = set()
        for line in list(self.lines):
            found = re.search(r"(assigned|revoked) (.*)", line)
            if found:
                partitions = {int(p) for p in re.findall(r"\[(\d+)\]", found.group(2))}
                held = partitions if found.group(1) == "assigned" else held - partitions
        return held

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> tuple[int, str]:
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self._reader.join(10)
        assert self.process.stdout is not None
        return code, self.process.stdout.read()


Spawn = Callable[..., StreamProcess]


@pytest.fixture
def spawn(kafka_broker: str, kafka_topic: str, tmp_path: Path) -> Iterator[Spawn]:
    """Start ``bibev stream`` processes on the test's topic; any still running at the end of
    the test is killed."""
    started: list[StreamProcess] = []

    def start(group: str, *flags: str) -> StreamProcess:
        process = StreamProcess(tmp_path, kafka_broker, kafka_topic, group, *flags)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(10)


def wait_until_stored(root: Path, wanted: set[tuple[int, int]], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wanted <= set(stored_by_position(root)):
            return
        time.sleep(0.3)
    missing = wanted - set(stored_by_position(root))
    raise AssertionError(f"{len(missing)} records never arrived, e.g. {sorted(missing)[:5]}")


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
    wait_until_stored(tmp_path / "data", {(r.partition, r.offset) for r in sent})
    code, out = final.stop(signal.SIGTERM)
    assert code == 0, "\n".join(final.lines[-20:])

    stored = stored_by_position(tmp_path / "data")
    for record in sent:
        docs = stored[(record.partition, record.offset)]
        assert all(doc["payload"] == record.payload for doc in docs)
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
    wait_until_stored(tmp_path / "data", {(r.partition, r.offset) for r in sent})
    results = [process.stop(signal.SIGTERM) for process in (first, second)]

    assert [code for code, _ in results] == [0, 0]
    counts = [json.loads(out)["messages"] for _, out in results]
    assert all(count > 0 for count in counts), counts
    by_partition = {p: sum(1 for r in sent if r.partition == p) for p in range(4)}
    assert counts == [sum(by_partition[p] for p in share) for share in shares]
    assert committed(kafka_broker, group, kafka_topic) == high_watermarks(sent)
