"""``bibev stream`` as a real process (the ``spawn`` fixture of conftest.py starts them)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.stream.conftest import FAST_GROUP, Sent, stored_by_position


class StreamProcess:
    """One ``python -m bibev stream`` process; its stderr is collected line by line.

    It stores under ``root`` (default: ``tmp/data``) with ``env`` added to this process's
    environment, and records its runs in a SQLite database in ``tmp``."""

    def __init__(
        self,
        tmp: Path,
        bootstrap: str,
        topic: str,
        group: str,
        *flags: str,
        root: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        command = [
            sys.executable,
            "-m",
            "bibev",
            "--root",
            root or str(tmp / "data"),
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
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp,
            env={**os.environ, **(env or {})},
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
        return self.wait(timeout)

    def wait(self, timeout: float = 60.0) -> tuple[int, str]:
        """Its exit code and stdout, once it has ended."""
        code = self.process.wait(timeout)
        self._reader.join(10)
        assert self.process.stdout is not None
        return code, self.process.stdout.read()


Spawn = Callable[..., StreamProcess]


def wait_until_stored(
    stored: Callable[[], dict[tuple[int, int], Any]],
    wanted: set[tuple[int, int]],
    timeout: float = 90.0,
) -> None:
    """Wait until every (partition, offset) of ``wanted`` is among the keys ``stored()``
    returns (``stored_by_position`` of a root)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wanted <= set(stored()):
            return
        time.sleep(0.3)
    missing = wanted - set(stored())
    raise AssertionError(f"{len(missing)} records never arrived, e.g. {sorted(missing)[:5]}")


def drain_when_stored(process: StreamProcess, root: Path, sent: Sequence[Sent]) -> str:
    """Wait until every record of ``sent`` is stored under ``root``, then stop ``process`` with
    SIGTERM (it must exit 0) and check that every stored copy is the payload sent; its
    stdout (the run's counts as JSON)."""
    wait_until_stored(lambda: stored_by_position(root), {(r.partition, r.offset) for r in sent})
    code, out = process.stop(signal.SIGTERM)
    assert code == 0, "\n".join(process.lines[-20:])
    stored = stored_by_position(root)
    for record in sent:
        docs = stored[(record.partition, record.offset)]
        assert all(doc["payload"] == record.payload for doc in docs)
    return out
