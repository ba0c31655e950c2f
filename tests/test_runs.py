"""The runs log: one row per command, its outcome, its counts, and never a secret."""

from __future__ import annotations

import enum
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, insert

import bibev
from bibev.db import migrate
from bibev.db.engine import connect, make_engine
from bibev.db.models import Run
from bibev.db.runs import (
    log_finished_run,
    recent_runs,
    record_run,
    run_as_dict,
    safe_parameters,
)
from bibev.errors import PartialFailure

T0 = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)


def ticking_clock(step: timedelta = timedelta(seconds=30)) -> Callable[[], datetime]:
    ticks = iter(T0 + n * step for n in range(1000))
    return lambda: next(ticks)


def only_run(engine: Engine) -> dict[str, Any]:
    [run] = recent_runs(engine)
    return run_as_dict(run)


def test_ok_run(database_engine: Engine) -> None:
    with record_run(
        database_engine, "compact", {"date": date(2025, 3, 1)}, now=ticking_clock()
    ) as run:
        assert only_run(database_engine)["status"] == "running"
        run.counts["partitions"] = 12
        run.counts["rows"] = 34_567
    row = only_run(database_engine)
    assert row == {
        "id": run.id,
        "command": "compact",
        "parameters": {"date": "2025-03-01"},
        "started_at": "2025-03-01T02:00:00+00:00",
        "ended_at": "2025-03-01T02:00:30+00:00",
        "status": "ok",
        "counts": {"partitions": 12, "rows": 34_567},
        "error": None,
        "bibev_version": bibev.__version__,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def test_a_running_row_whose_process_ended_reads_as_died(database_engine: Engine) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    here = socket.gethostname()
    rows = [("compact", here, ended.pid), ("stream", here, os.getpid())]
    rows.append(("sim", "another-host", ended.pid))  # another host's process: cannot tell
    with connect(database_engine) as connection:
        for command, host, pid in rows:
            values = {"command": command, "status": "running", "started_at": T0}
            connection.execute(insert(Run).values(**values, host=host, pid=pid))
    statuses = {r.command: run_as_dict(r)["status"] for r in recent_runs(database_engine)}
    assert statuses == {"compact": "died", "stream": "running", "sim": "running"}


def test_partial_run(database_engine: Engine) -> None:
    with record_run(database_engine, "transform clean", {}) as run:
        run.counts.update(done=3, failed=1)
        run.status = "partial"
    row = only_run(database_engine)
    assert (row["status"], row["counts"], row["error"]) == (
        "partial",
        {"done": 3, "failed": 1},
        None,
    )


@pytest.mark.parametrize(
    ("exc", "status", "error"),
    [
        (ValueError("boom\nTraceback (most recent call last): ..."), "failed", "boom"),
        (RuntimeError(), "failed", "RuntimeError"),
        (
            PartialFailure("2 of 9 days failed", [("VIN/2025-03-01", "bad")]),
            "partial",
            "2 of 9 days failed",
        ),
        (
            OSError("cannot reach s3://k:hunter2@minio/bucket"),
            "failed",
            "cannot reach s3://k:***@minio/bucket",
        ),
        (KeyboardInterrupt(), "failed", "KeyboardInterrupt"),
    ],
)
def test_failed_run_keeps_counts_and_one_line_error(
    database_engine: Engine, exc: BaseException, status: str, error: str
) -> None:
    def ingest() -> None:
        with record_run(database_engine, "ingest tesla", {}) as run:
            run.counts["messages"] = 5
            raise exc

    with pytest.raises(type(exc)):
        ingest()
    row = only_run(database_engine)
    assert (row["status"], row["counts"], row["error"]) == (status, {"messages": 5}, error)
    assert row["ended_at"] is not None


class Kind(enum.Enum):
    CLEAN = "clean"


@pytest.mark.parametrize(
    ("parameters", "stored"),
    [
        ({"password": "hunter2", "vins": ["A", "B"]}, {"vins": ["A", "B"]}),
        ({"api_key": "k", "client_secret": "s", "access_token": "t", "AWS_ACCESS_KEY_ID": "x"}, {}),
        ({"auth_header": "Bearer t", "refresh": True}, {"refresh": True}),
        ({"credentials": {"user": "u"}}, {}),
        ({"options": SecretStr("hunter2")}, {}),
        ({"provider": {"name": "bmw", "client_secret": "s"}}, {"provider": {"name": "bmw"}}),
        (
            {"database_url": "postgresql://bob:hunter2@db/bibev"},
            {"database_url": "postgresql://bob:***@db/bibev"},
        ),
        (
            {
                "since": datetime(2025, 3, 1, tzinfo=UTC),
                "root": Path("/data/bibev"),
                "kind": Kind.CLEAN,
            },
            {"since": "2025-03-01T00:00:00+00:00", "root": "/data/bibev", "kind": "clean"},
        ),
        (
            {"workers": 4, "dry_run": False, "tags": {"b", "a"}},
            {"workers": 4, "dry_run": False, "tags": ["a", "b"]},
        ),
    ],
)
def test_parameters_are_json_safe_and_never_secret(
    database_engine: Engine, parameters: dict[str, Any], stored: dict[str, Any]
) -> None:
    assert safe_parameters(parameters) == stored
    with record_run(database_engine, "ingest", parameters):
        pass
    assert only_run(database_engine)["parameters"] == stored


def test_status_accepts_only_final_values(database_engine: Engine) -> None:
    with (
        pytest.raises(ValueError, match="run status must be one of"),
        record_run(database_engine, "x", {}) as run,
    ):
        run.status = "running"
    assert only_run(database_engine)["status"] == "failed"


def test_recent_runs_newest_first_with_limit(database_engine: Engine) -> None:
    for name in ("compact", "transform clean", "report soh"):
        with record_run(database_engine, name, {}):
            pass
    assert [run.command for run in recent_runs(database_engine, limit=2)] == [
        "report soh",
        "transform clean",
    ]


def test_log_finished_run(database_engine: Engine) -> None:
    run_id = log_finished_run(
        database_engine,
        "db upgrade",
        {"revision": "head"},
        started_at=T0,
        counts={"steps": 1},
        now=lambda: T0,
    )
    row = only_run(database_engine)
    assert (row["id"], row["command"], row["status"], row["counts"]) == (
        run_id,
        "db upgrade",
        "ok",
        {"steps": 1},
    )
    assert row["started_at"] == row["ended_at"] == "2025-03-01T02:00:00+00:00"


def test_log_finished_run_without_runs_table(database_url: str) -> None:
    migrate.upgrade(database_url)
    migrate.downgrade(database_url, "base")
    engine = make_engine(database_url)
    try:
        assert log_finished_run(engine, "db downgrade", {}, started_at=T0) is None
    finally:
        engine.dispose()
