"""Per-VIN buffers and the offsets that are safe to commit.

A buffer holds the lines of one VIN, grouped by the UTC day of each record, so a buffer that
spans midnight is written as one file per day. Buffers hold records from several partitions
(and a partition feeds many buffers), so the committable offset of a partition is tracked
here, from two facts:

- ``done``: the highest offset of the partition whose record is either in a buffer or durably
  quarantined (every lower offset is too: a partition is read in order);
- ``pending``: for each buffer holding records of the partition, the first of its offsets.

The next offset to commit is ``min(pending)`` when some buffer still holds records of the
partition, else ``done + 1``: every record before it is durably written or quarantined. This
module is pure bookkeeping; the consumer writes, then calls ``flushed``, then commits.
"""

from __future__ import annotations

from collections.abc import Iterable

TopicPartition = tuple[str, int]


class VinBuffer:
    """The unwritten lines of one VIN."""

    __slots__ = ("count", "days", "first_offsets", "started", "vin")

    def __init__(self, vin: str, started: float) -> None:
        self.vin = vin
        self.started = started
        self.count = 0
        self.days: dict[str, list[bytes]] = {}
        self.first_offsets: dict[TopicPartition, int] = {}

    def __repr__(self) -> str:
        return f"VinBuffer({self.vin}, {self.count} lines, days={sorted(self.days)})"


class StreamBuffers:
    """All buffers of one consumer, and the commit bookkeeping of its partitions."""

    def __init__(self, buffer_size: int) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        self.buffer_size = buffer_size
        # Insertion order is creation order: the first buffer is the oldest.
        self.buffers: dict[str, VinBuffer] = {}
        self.ready: list[VinBuffer] = []
        self.pending: dict[TopicPartition, dict[VinBuffer, int]] = {}
        self.done: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.buffered = 0

    def add(
        self, vin: str, day: str, line: bytes, tp: TopicPartition, offset: int, now: float
    ) -> None:
        """Buffer one line (see ``add_lines``)."""
        self.add_lines(vin, {day: [line]}, {tp: offset}, now)

    def add_lines(
        self,
        vin: str,
        days: dict[str, list[bytes]],
        first_offsets: dict[TopicPartition, int],
        now: float,
    ) -> None:
        """Buffer one batch's lines of ``vin`` (``days``: the lines of each UTC day, in order;
        ``first_offsets``: the first offset of each partition they come from). A buffer that
        reaches ``buffer_size`` moves to ``ready`` at once and the rest starts a new buffer, so
        no buffer ever exceeds the size. (When a batch's lines are split over two buffers, both
        hold the lines' first offsets as pending: a commit waits for both, which is safe.)"""
        size = self.buffer_size
        for day, lines in days.items():
            start, total = 0, len(lines)
            while start < total:
                buffer = self.buffers.get(vin)
                if buffer is None:
                    buffer = self.buffers[vin] = VinBuffer(vin, now)
                take = min(size - buffer.count, total - start)
                chunk = lines if take == total else lines[start : start + take]
                held = buffer.days.get(day)
                if held is None:
                    buffer.days[day] = chunk
                else:
                    held.extend(chunk)
                buffer.count += take
                self.buffered += take
                start += take
                for tp, offset in first_offsets.items():
                    if tp not in buffer.first_offsets:
                        buffer.first_offsets[tp] = offset
                        self.pending.setdefault(tp, {})[buffer] = offset
                if buffer.count >= size:
                    del self.buffers[vin]
                    self.ready.append(buffer)

    def take_ready(self) -> list[VinBuffer]:
        """The full buffers, removed for writing (offsets pending until ``flushed``)."""
        ready, self.ready = self.ready, []
        self.buffered -= sum(buffer.count for buffer in ready)
        return ready

    def advance(self, tp: TopicPartition, offset: int, first: int | None = None) -> None:
        """Every record of ``tp`` up to ``offset`` is buffered or durably quarantined.
        ``first`` is the first offset read in this batch: the first time a partition is seen,
        the offset before it is where the group had committed (or the reset point), so there
        is nothing to commit until the consumer gets past it."""
        if tp not in self.done and first is not None:
            self.committed.setdefault(tp, first)
        if offset > self.done.get(tp, -1):
            self.done[tp] = offset

    def aged(self, cutoff: float) -> list[str]:
        """VINs whose buffer was started at or before ``cutoff`` (oldest first)."""
        vins = []
        for vin, buffer in self.buffers.items():
            if buffer.started > cutoff:
                break
            vins.append(vin)
        return vins

    def oldest(self, keep: int) -> list[str]:
        """The oldest VINs to flush so that at most ``keep`` lines stay buffered."""
        vins, left = [], self.buffered
        for vin, buffer in self.buffers.items():
            if left <= keep:
                break
            vins.append(vin)
            left -= buffer.count
        return vins

    def holding(self, tps: Iterable[TopicPartition]) -> list[str]:
        """VINs whose open buffers hold records of any of ``tps``."""
        held = {buffer for tp in tps for buffer in self.pending.get(tp, {})}
        return [vin for vin, buffer in self.buffers.items() if buffer in held]

    def take(self, vins: Iterable[str]) -> list[VinBuffer]:
        """Remove these buffers for writing; their offsets stay pending until ``flushed``."""
        taken = []
        for vin in vins:
            buffer = self.buffers.pop(vin, None)
            if buffer is not None:
                self.buffered -= buffer.count
                taken.append(buffer)
        return taken

    def take_all(self) -> list[VinBuffer]:
        return self.take_ready() + self.take(list(self.buffers))

    def flushed(self, buffers: Iterable[VinBuffer]) -> None:
        """These buffers are durably written: their offsets no longer hold commits back."""
        for buffer in buffers:
            for tp in buffer.first_offsets:
                waiting = self.pending.get(tp)
                if waiting is not None:
                    waiting.pop(buffer, None)
                    if not waiting:
                        del self.pending[tp]

    def committable(self, tp: TopicPartition) -> int | None:
        """The next offset of ``tp`` that is safe to commit (``None``: nothing read yet)."""
        done = self.done.get(tp)
        if done is None:
            return None
        waiting = self.pending.get(tp)
        if waiting:
            return min(min(waiting.values()), done + 1)
        return done + 1

    def to_commit(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Next offsets that moved past the last commit, for ``tps`` (default: every one)."""
        offsets = {}
        for tp in self.done if tps is None else tps:
            offset = self.committable(tp)
            if offset is not None and offset > self.committed.get(tp, -1):
                offsets[tp] = offset
        return offsets

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if offset > self.committed.get(tp, -1):
                self.committed[tp] = offset

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop the bookkeeping of partitions this consumer no longer owns."""
        for tp in tps:
            self.done.pop(tp, None)
            self.committed.pop(tp, None)
            for buffer in self.pending.pop(tp, {}):
                buffer.first_offsets.pop(tp, None)

    def uncommitted(self) -> list[TopicPartition]:
        """Partitions with records read but not yet committed."""
        return [tp for tp, done in self.done.items() if self.committed.get(tp, -1) <= done]

    @property
    def vins(self) -> int:
        return len(self.buffers)
