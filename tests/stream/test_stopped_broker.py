"""A broker that stops answering (SIGSTOP) while ``bibev stream`` runs: the loop goes on, and
SIGTERM ends the process within a bound, exit 0, with its buffers on storage; after the broker
resumes, a restart reads what was not committed and nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest

from tests.fixtures.kafka import create_topic, free_port, start_tansu, stop_tansu
from tests.stream.conftest import (
    committed,
    fleet_records,
    high_watermarks,
    produce,
    stored_by_position,
)
from tests.stream.processes import StreamProcess, drain_when_stored, wait_until_stored

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

# commit_timeout + close_timeout (10 s each) and the drain, with room to spare.
EXIT_BOUND = 35.0


def test_sigterm_while_the_broker_is_stopped_exits_in_time_and_loses_nothing(tmp_path):
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = start_tansu(port)
    stopped = False
    processes: list[StreamProcess] = []
    try:
        topic = create_topic(bootstrap, f"stop_{uuid.uuid4().hex[:8]}")
        sent = produce(bootstrap, topic, fleet_records(300, vehicles=6))
        group = f"stop-{uuid.uuid4().hex[:8]}"
        # Buffers are written 5 s after their first record: while the broker is stopped. The
        # session outlasts the test's stop, so the partitions are still this process's to
        # commit when SIGTERM comes (a shorter one would make the client give them up first).
        flags = ("--buffer-size", "100000", "--flush-interval", "5", "--stats-interval", "0.5")
        flags += ("--consumer-config", "session.timeout.ms=45000")
        first = StreamProcess(tmp_path, bootstrap, topic, group, *flags)
        processes.append(first)
        first.wait_for(r"flushes 0 \(0 files\).*total 300 messages", timeout=60)

        os.kill(broker.pid, signal.SIGSTOP)
        stopped = True
        wait_until_stored(
            lambda: stored_by_position(tmp_path / "data"),
            {(r.partition, r.offset) for r in sent},
            timeout=30,
        )
        # The loop goes on after trying to commit: stats lines keep coming.
        seen = len(first.lines)
        time.sleep(3)
        assert sum("msg/s" in line for line in first.lines[seen:]) >= 3, first.lines[-10:]

        started = time.monotonic()
        code, out = first.stop(signal.SIGTERM, timeout=EXIT_BOUND + 30)
        took = time.monotonic() - started

        assert code == 0, "\n".join(first.lines[-20:])
        assert took < EXIT_BOUND, took
        assert any("could not commit the last offsets" in line for line in first.lines), "\n".join(
            first.lines[-30:]
        )
        summary = json.loads(out)
        assert summary["messages"] == 300
        assert summary["uncommitted"]  # the broker never answered

        os.kill(broker.pid, signal.SIGCONT)
        stopped = False
        more = produce(bootstrap, topic, fleet_records(100, vehicles=6, first=300))
        second = StreamProcess(tmp_path, bootstrap, topic, group, "--flush-interval", "0.5")
        processes.append(second)
        everything = sent + more
        drain_when_stored(second, tmp_path / "data", everything)
        assert committed(bootstrap, group, topic) == high_watermarks(everything)
    finally:
        for process in processes:
            if process.process.poll() is None:
                process.process.kill()
                process.process.wait(10)
        if stopped:
            os.kill(broker.pid, signal.SIGCONT)
        stop_tansu(broker)
