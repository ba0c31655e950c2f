"""Counters of a ``bibev stream`` run and the periodic stats line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from bibev.stream.buffers import TopicPartition


@dataclass
class StreamCounts:
    """What a run did; ``counts()`` is what the runs table records."""

    messages: int = 0
    bytes: int = 0
    flushes: int = 0
    files: int = 0
    written_bytes: int = 0
    quarantined: int = 0
    commits: int = 0
    seconds: float = 0.0
    vins: set[str] = field(default_factory=set, repr=False)

    def counts(self) -> dict[str, float | int]:
        data = asdict(self)
        data["vins"] = len(self.vins)
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass(frozen=True)
class StatsSnapshot:
    """Counters at one instant, to compute rates between two of them."""

    at: float
    messages: int
    bytes: int


def format_lag(lag: Mapping[TopicPartition, int | None]) -> str:
    """``tesla_V[0]=12 tesla_V[1]=0`` (``?`` until the broker has told the high watermark)."""
    if not lag:
        return "none assigned"
    return " ".join(
        f"{topic}[{partition}]={'?' if behind is None else behind}"
        for (topic, partition), behind in sorted(lag.items())
    )


def stats_line(
    previous: StatsSnapshot,
    current: StatsSnapshot,
    *,
    buffered: int,
    vins: int,
    lag: Mapping[TopicPartition, int | None],
    counts: StreamCounts,
) -> str:
    """The periodic log line: rates since ``previous``, then totals."""
    elapsed = max(current.at - previous.at, 1e-9)
    rate = (current.messages - previous.messages) / elapsed
    byte_rate = (current.bytes - previous.bytes) / elapsed
    return (
        f"{rate:,.0f} msg/s, {byte_rate / 1e6:,.2f} MB/s, buffered {buffered:,} messages "
        f"of {vins:,} VINs, lag {format_lag(lag)}, flushes {counts.flushes:,} "
        f"({counts.files:,} files), quarantined {counts.quarantined:,}, "
        f"commits {counts.commits:,}, total {counts.messages:,} messages"
    )
