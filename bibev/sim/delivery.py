"""Delivery: when messages arrive, in which order, twice or broken.

With mess on: the first message after a wake-up can carry a clock up to 5 minutes ahead;
network latency is usually well under a second but a few messages arrive minutes late (so a
file is not in time order); about 1 % are re-sent later (Tesla ``isResend``, the same High
Mobility ``message_id``); and a few garbage copies (truncated JSON, no VIN, an impossible
timestamp) sit next to the good message. Messages are then ordered as files receive them:
per vehicle and date folder (the UTC date of the message's own time), by arrival, and cut into
files of at most ``LINES_PER_FILE`` lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from bibev.sim.rng import Purpose, hash64, uniform
from bibev.sim.signals import Signals
from bibev.sim.telemetry import Sampled
from bibev.sim.wire.render import (
    COPY_BAD_TS,
    COPY_NO_VIN,
    COPY_ORIGINAL,
    COPY_RESEND,
    COPY_TRUNCATED,
)

LINES_PER_FILE = 1000
SKEW_P = 0.35  # of the first messages after a wake-up
SKEW_MAX_S = 300
LATE_P = 0.02
RESEND_P = 0.01
GARBAGE_P = 0.0005
GARBAGE_KINDS = {
    COPY_TRUNCATED: "truncated",
    COPY_NO_VIN: "missing_vin",
    COPY_BAD_TS: "bad_timestamp",
}
_US = 1_000_000
_DAY_US = 86_400 * _US


@dataclass
class Delivered:
    """Messages in file order (``messages``) and their datums (``datum_index`` into the
    sampled datums, ``datum_msg`` the row of ``messages``)."""

    messages: pl.DataFrame
    datum_index: np.ndarray
    datum_msg: np.ndarray
    stats: dict[str, int] = field(default_factory=dict)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    total = int(counts.sum())
    shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return shift + np.arange(total, dtype=np.int64)


def deliver(
    sampled: Sampled,
    signals: Signals,
    *,
    seed: int,
    mess: bool,
    stream: bool,
    offsets: np.ndarray,
) -> Delivered:
    """Timestamps, arrival, copies and file order of the sampled messages.

    ``offsets`` holds each batch position's next stream offset; it is advanced in place.
    """
    n = sampled.msg_sample.size
    pos = signals.pos[sampled.msg_sample].astype(np.int64)
    vid = signals.index_at(sampled.msg_sample)
    t_value = signals.trace["t"][sampled.msg_sample]
    t_msg = sampled.msg_time_s
    jitter = (hash64(seed, Purpose.JITTER, vid, t_msg) % np.uint64(1000)).astype(np.int64)
    message_us = t_msg * _US + jitter * 1000
    sample_us = t_value * _US + (message_us - t_msg * _US if stream else 0)
    payload_us, skewed = _clock(sampled, seed, vid, message_us, skew=mess and stream)
    received_us, late = _arrival(seed, vid, t_msg, message_us, mess=mess)
    copy_of, copy_kind, copy_received = _copies(seed, vid, t_msg, received_us, mess=mess)
    orig = np.concatenate([np.arange(n), copy_of])
    kind = np.concatenate([np.full(n, COPY_ORIGINAL), copy_kind])
    received = np.concatenate([received_us, copy_received])
    day = payload_us[orig] // _DAY_US
    order = np.lexsort((kind, received, day, pos[orig]))
    orig, kind, received, day = orig[order], kind[order], received[order], day[order]
    messages = pl.DataFrame(
        {
            "pos": pos[orig],
            "orig": orig,
            "copy": kind.astype(np.int8),
            "payload_us": payload_us[orig],
            "sample_us": sample_us[orig],
            "received_us": received,
            "day": day,
            "message_key": hash64(seed, Purpose.RESEND, vid[orig], message_us[orig]),
        }
    ).with_columns(offset=pl.lit(0, dtype=pl.Int64))
    messages = _number(messages, offsets)
    counts = np.bincount(sampled.msg, minlength=n)
    starts = np.cumsum(counts) - counts
    datum_index = _ranges(starts[orig], counts[orig])
    datum_msg = np.repeat(np.arange(orig.size), counts[orig])
    stats = {
        "messages": int(n),
        "resends": int((copy_kind == COPY_RESEND).sum()),
        "skewed": int(skewed.sum()),
        "late": int(late.sum()),
        **{f"garbage_{name}": int((copy_kind == k).sum()) for k, name in GARBAGE_KINDS.items()},
    }
    return Delivered(messages, datum_index, datum_msg, stats)


def _clock(
    sampled: Sampled, seed: int, vid: np.ndarray, message_us: np.ndarray, *, skew: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The time each message says it was made: the first after a wake-up may run ahead."""
    payload_us = message_us.copy()
    if not skew:
        return payload_us, np.zeros(message_us.size, dtype=bool)
    u = uniform(seed, Purpose.SKEW, vid, sampled.msg_time_s, np.arange(2)[:, None])
    skewed = sampled.msg_first & (u[0] < SKEW_P)
    ahead_ms = (1000 + u[1][skewed] * (SKEW_MAX_S * 1000 - 1000)).astype(np.int64)
    payload_us[skewed] += ahead_ms * 1000
    return payload_us, skewed


def _arrival(
    seed: int, vid: np.ndarray, t: np.ndarray, message_us: np.ndarray, *, mess: bool
) -> tuple[np.ndarray, np.ndarray]:
    """When each message reaches the consumer: usually within a second, a few minutes late."""
    latency_ms = 80 + (1500 * uniform(seed, Purpose.LATENCY, vid, t) ** 3).astype(np.int64)
    late = np.zeros(t.size, dtype=bool)
    if mess:
        late = uniform(seed, Purpose.LATENCY, vid, t, 1) < LATE_P
        delay = uniform(seed, Purpose.LATENCY, vid, t, 2)[late]
        latency_ms[late] += (5_000 + 115_000 * delay).astype(np.int64)
    return message_us + latency_ms * 1000, late


def _copies(
    seed: int, vid: np.ndarray, t: np.ndarray, received_us: np.ndarray, *, mess: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not mess:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    u = uniform(seed, Purpose.RESEND, vid, t, np.arange(3)[:, None])
    resend = np.flatnonzero(u[0] < RESEND_P)
    garbage = np.flatnonzero(uniform(seed, Purpose.GARBAGE, vid, t) < GARBAGE_P)
    garbage_kind = COPY_TRUNCATED + (
        hash64(seed, Purpose.GARBAGE, vid[garbage], t[garbage], 1) % np.uint64(3)
    ).astype(np.int64)
    resend_at = received_us[resend] + (30 + 870 * u[1][resend]).astype(np.int64) * _US
    garbage_at = received_us[garbage] + (10 + 2000 * u[2][garbage]).astype(np.int64) * 1000
    return (
        np.concatenate([resend, garbage]),
        np.concatenate([np.full(resend.size, COPY_RESEND), garbage_kind]),
        np.concatenate([resend_at, garbage_at]),
    )


def _number(messages: pl.DataFrame, offsets: np.ndarray) -> pl.DataFrame:
    """Stream offsets in arrival order per vehicle, file numbers and line numbers."""
    # stable: messages of a vehicle that arrive in the same microsecond keep their file order
    # (an unstable sort may order them by the rest of the batch)
    by_arrival = messages.with_row_index("row").sort(
        ["pos", "received_us", "copy"], maintain_order=True
    )
    pos = by_arrival["pos"].to_numpy()
    first = np.concatenate([[0], np.flatnonzero(pos[1:] != pos[:-1]) + 1])
    rank = np.arange(pos.size) - np.repeat(first, np.diff(np.concatenate([first, [pos.size]])))
    offset = offsets[pos] + rank
    np.add.at(offsets, pos, 1)
    offset_by_row = np.empty(pos.size, dtype=np.int64)
    offset_by_row[by_arrival["row"].to_numpy()] = offset
    pos_sorted, day = messages["pos"].to_numpy(), messages["day"].to_numpy()
    n = pos_sorted.size
    change = (pos_sorted[1:] != pos_sorted[:-1]) | (day[1:] != day[:-1])
    start = np.concatenate([[0], np.flatnonzero(change) + 1]) if n else np.zeros(0, np.int64)
    in_group = np.arange(n) - np.repeat(start, np.diff(np.concatenate([start, [n]])))
    return messages.with_columns(
        offset=pl.Series(offset_by_row),
        chunk=pl.Series(in_group // LINES_PER_FILE, dtype=pl.Int64),
        line=pl.Series(in_group % LINES_PER_FILE + 1, dtype=pl.Int64),
    )
