"""Crash safety: a real compaction process dies at each step, a second run repairs it, and the
result is the same as that of a run that never crashed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bibev.pipeline.compact.failpoints import CRASH_ENV, CRASH_EXIT_CODE, CRASH_POINTS
from bibev.storage import Storage
from tests.fixtures.s3 import s3_client_options
from tests.pipeline.snapshots import snapshot
from tests.pipeline.test_compact import (
    DAY,
    NEXT,
    NOW,
    compact,
    soc_lines,
    tesla_line,
    write_temp,
)

SCRIPT = """
import json, sys
from datetime import datetime
from bibev.pipeline.compact import run_compact
from bibev.storage import Storage

storage = Storage(sys.argv[1], s3_options=json.loads(sys.argv[2]))
summary = run_compact(storage, now=datetime.fromisoformat(sys.argv[3]), workers=1)
sys.exit(5 if summary.failures else 0)
"""


def prepare(storage: Storage) -> None:
    """An already compacted day, late files for it (one with garbage and a message of the next
    day), and a second vehicle."""
    write_temp(storage, DAY, "080000000000-a.jsonl", soc_lines(DAY, 4))
    compact(storage)
    write_temp(storage, DAY, "090000000000-b.jsonl", soc_lines(DAY, 6, start=2))
    late = [*soc_lines(DAY, 3, start=20), "{garbage", tesla_line(f"{NEXT}T00:00:03Z", {"Soc": 9.0})]
    write_temp(storage, DAY, "100000000000-c.jsonl", late)
    write_temp(storage, DAY, "110000000000-d.jsonl", soc_lines(DAY, 2, start=40))
    write_temp(storage, NEXT, "a.jsonl", soc_lines(NEXT, 3))


def run_process(storage: Storage, options: dict, crash_at: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at:
        env[CRASH_ENV] = crash_at
    argv = [sys.executable, "-c", SCRIPT, storage.url, json.dumps(options), NOW.isoformat()]
    return subprocess.run(argv, env=env, check=False, timeout=120).returncode


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    storage = Storage(str(tmp_path_factory.mktemp("reference") / "root"))
    prepare(storage)
    compact(storage)
    result = snapshot(storage)
    assert not any(key.startswith("temp/") for key in result)
    assert len(result["noted compressed"]) == 2  # type: ignore[arg-type]
    return result


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_at_any_step_is_repaired_by_running_again(
    point: str, tmp_path: Path, uninterrupted: dict[str, object]
) -> None:
    storage = Storage(str(tmp_path / "root"))
    prepare(storage)
    assert run_process(storage, {}, crash_at=point) == CRASH_EXIT_CODE
    assert run_process(storage, {}, crash_at=None) == 0
    assert snapshot(storage) == uninterrupted


@pytest.mark.s3
def test_a_crash_on_s3_is_repaired_too(
    s3_endpoint: str, s3_bucket: str, uninterrupted: dict[str, object]
) -> None:
    options = s3_client_options(s3_endpoint)
    storage = Storage(f"s3://{s3_bucket}/root", s3_options=options)
    prepare(storage)
    assert run_process(storage, options, crash_at="mid-delete") == CRASH_EXIT_CODE
    assert run_process(storage, options, crash_at=None) == 0
    assert snapshot(storage) == uninterrupted
