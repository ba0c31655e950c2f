"""Durable writes of the consumer: buffers to ``temp/``, bad records to ``quarantine/stream/``.

Every write goes through ``Storage.write_bytes`` (atomic and durable when it returns) and is
retried with backoff while the storage root fails (a network blip, S3 throttling). A write that
still fails raises ``StorageError``: the consumer then stops without committing what it could
not write, so nothing is lost; the records are read again on restart.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import NamedTuple

import stamina

from bibev.errors import StorageError
from bibev.storage import Storage
from bibev.stream.buffers import VinBuffer

logger = logging.getLogger(__name__)

STAGE = "stream"


class Written(NamedTuple):
    files: int
    bytes: int


def _utcnow() -> datetime:
    return datetime.now(UTC)


class StreamSink:
    """Writes for one consumer; ``workers`` files are written at once (S3 latency adds up)."""

    def __init__(
        self,
        storage: Storage,
        *,
        workers: int = 4,
        attempts: int = 8,
        timeout: float = 120.0,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.storage = storage
        self.attempts = attempts
        self.timeout = timeout
        self.now = now
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bibev-stream")
        # Runs ``write_buffers`` for ``submit``, which fans the files out to ``_pool``.
        self._batches = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bibev-stream-batch")

    def _write(self, key: str, data: bytes) -> int:
        for attempt in stamina.retry_context(
            on=StorageError, attempts=self.attempts, timeout=self.timeout
        ):
            with attempt:
                try:
                    self.storage.write_bytes(key, data)
                except StorageError as exc:  # it names the key and the root
                    logger.warning("attempt %d of at most %d: %s", attempt.num, self.attempts, exc)
                    raise
        return len(data)

    def check(self, attempts: int = 3, timeout: float = 20.0) -> None:
        """``StorageError`` unless the root takes a write, tried ``attempts`` times within
        ``timeout`` seconds: a wrong root fails before anything is consumed."""
        for attempt in stamina.retry_context(on=StorageError, attempts=attempts, timeout=timeout):
            with attempt:
                self.storage.check_writable()

    def write_buffers(self, buffers: Iterable[VinBuffer]) -> Written:
        """One ``temp/{VIN}/{day}/…jsonl`` per buffer and day; returns files and bytes."""
        files = []
        for buffer in buffers:
            for day, lines in buffer.days.items():
                key = self.storage.temp_key(buffer.vin, date.fromisoformat(day))
                files.append((key, b"\n".join(lines) + b"\n"))
        if len(files) == 1:
            sizes = [self._write(*files[0])]
        else:
            sizes = list(self._pool.map(lambda item: self._write(*item), files))
        return Written(len(files), sum(sizes))

    def submit(self, buffers: list[VinBuffer]) -> Future[Written]:
        """``write_buffers`` in the background; the future raises what it would raise."""
        return self._batches.submit(self.write_buffers, buffers)

    def write_quarantine(self, lines: list[str]) -> str:
        """One ``quarantine/stream/YYYY/MM/DD/…jsonl`` with these records; returns its key."""
        now = self.now()
        name = f"{now:%H%M%S%f}-{uuid.uuid4().hex}.jsonl"
        key = self.storage.quarantine_key(STAGE, now.date(), name)
        self._write(key, ("\n".join(lines) + "\n").encode("utf-8"))
        return key

    def close(self) -> None:
        self._batches.shutdown(wait=True)
        self._pool.shutdown(wait=True)
