"""Sampling: which values a vehicle sends, and when.

Stream formats send a key only when its value (rounded as on the wire) changed since the
key's last tick, at most every ``interval`` seconds, and everything once on each (re)connect.
With mess on, about 20 % of the records repeat the previous value, a share of values arrive as
strings and a few datums are flagged invalid. Poll formats take a snapshot of every key at the
vehicle's poll times; REST answers for a sleeping car repeat the last known values (BMW, High
Mobility) or are not answered at all (Tesla, ``poll_awake_only``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bibev.sim.rng import Purpose, hash64, uniform
from bibev.sim.signals import Signals
from bibev.sim.wire.fields import BOOL, ENUM, FLOAT, INT, LOCATION, Field, WireFormat

REPEAT_SHARE = 0.20  # of all records
HEARTBEAT_S = 30
STRING_SHARE = 0.01  # of a modern vehicle's numbers
INVALID_SHARE = 0.004  # of the datums of keys that can be invalid
STALE_LIMIT_S = 3 * 86400  # a REST API forgets values older than this
_T_BITS = 36  # epoch seconds fit in 36 bits until the year 4147


@dataclass
class Sampled:
    """Datums grouped by message (sorted by message, then field index)."""

    msg_sample: np.ndarray  # per message: row of the batch's samples the values come from
    msg_time_s: np.ndarray  # per message: when it was produced (epoch s)
    msg_first: np.ndarray  # per message: first after a wake-up or a reconnect
    msg: np.ndarray  # per datum: its message
    field: np.ndarray  # per datum: index into fmt.fields
    value: np.ndarray  # per datum: wire value (number or enum code)
    value2: np.ndarray  # per datum: longitude of a location, else NaN
    as_string: np.ndarray
    invalid: np.ndarray
    repeats: int = 0


def wire_values(f: Field, signals: Signals, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rounded wire value of ``f`` at sample ``rows`` (and the longitude of a location)."""
    nan = np.full(rows.size, np.nan)
    if f.kind == LOCATION:
        return np.round(signals.at("latitude", rows), 6), np.round(signals.at("longitude", rows), 6)
    raw = signals.at(f.signal, rows)
    if f.kind == FLOAT:
        return np.round(raw * f.scale, f.decimals), nan
    if f.kind == INT:
        return np.round(raw * f.scale), nan
    return raw.astype(np.float64), nan  # BOOL and ENUM: codes


def _sendable(f: Field, value: np.ndarray) -> np.ndarray:
    if f.kind != ENUM:
        return np.ones(value.size, dtype=bool)
    known = np.array([name is not None for name in f.names], dtype=bool)
    codes = value.astype(np.int64)
    ok = (codes >= 0) & (codes < known.size)
    ok[ok] = known[codes[ok]]  # gather only in range: an enum without names has no code 0
    return ok


@dataclass
class Periods:
    """Runs of consecutive awake, online seconds of one vehicle (as offsets into ``rows``)."""

    start: np.ndarray  # first offset of each run
    t0: np.ndarray  # its epoch second
    length: np.ndarray
    pos: np.ndarray  # batch position of its vehicle

    @staticmethod
    def of(signals: Signals, rows: np.ndarray) -> Periods:
        t, pos = signals.trace["t"][rows], signals.pos[rows]
        first = np.ones(rows.size, dtype=bool)
        first[1:] = (pos[1:] != pos[:-1]) | (t[1:] != t[:-1] + 1)
        start = np.flatnonzero(first)
        length = np.diff(np.concatenate([start, [rows.size]]))
        return Periods(start, t[start], length, pos[start])


def ticks(periods: Periods, interval: np.ndarray, phase: np.ndarray, n_rows: int) -> np.ndarray:
    """Offsets (into ``rows``) of the seconds ``t`` with ``t % interval == phase`` and of the
    first second of each period, sorted. ``interval`` and ``phase`` are per period."""
    lead = (phase - periods.t0) % interval
    count = np.maximum(0, (periods.length - lead + interval - 1) // interval)
    total = int(count.sum())
    run = np.repeat(np.arange(count.size), count)
    k = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    mask = np.zeros(n_rows, dtype=bool)
    mask[periods.start[run] + lead[run] + k * interval[run]] = True
    mask[periods.start] = True
    return np.flatnonzero(mask)


def sample_stream(
    fmt: WireFormat,
    signals: Signals,
    rows: np.ndarray,
    vehicles: dict[str, np.ndarray],
    *,
    seed: int,
    mess: bool,
) -> Sampled:
    """On-change sampling of every field at ``rows`` (awake, online samples, sorted)."""
    periods = Periods.of(signals, rows)
    first = np.zeros(rows.size, dtype=bool)
    first[periods.start] = True
    # One phase per vehicle: keys sharing an interval tick together and fill one message.
    phase_v = hash64(seed, Purpose.PHASE, signals.vehicle_index).astype(np.int64)
    cache: dict[int | str, np.ndarray] = {}

    def interval_of(spec: int | str) -> np.ndarray:
        """Per batch position."""
        return np.full(len(signals.days), spec) if isinstance(spec, int) else vehicles[spec]

    def ticks_of(spec: int | str) -> np.ndarray:
        if spec not in cache:
            interval = interval_of(spec)[periods.pos].astype(np.int64)
            cache[spec] = ticks(periods, interval, phase_v[periods.pos] % interval, rows.size)
        return cache[spec]

    picks = []
    for fi, f in enumerate(fmt.fields):
        tick, value, value2, changed = _on_change(f, signals, rows, ticks_of(f.interval), first)
        candidate = np.zeros(0, dtype=np.int64)
        if mess:
            # each vehicle by its own interval, not the batch's longest
            fast = interval_of(f.interval) < HEARTBEAT_S
            beat = ticks_of(HEARTBEAT_S) if fast.any() else None
            candidate = _unchanged(tick, changed, beat, fast[signals.pos[rows[tick]]])
        picks.append((fi, tick, value, value2, changed, candidate))
    rates = _repeat_rates(
        [signals.pos[rows[p[1][p[4]]]] for p in picks],
        [signals.pos[rows[p[1][p[5]]]] for p in picks],
        len(signals.days),
    )
    parts, repeats = [], 0
    for (fi, tick, value, value2, changed, candidate), rate in zip(picks, rates, strict=True):
        keep = changed
        if candidate.size:
            r = rows[tick[candidate]]
            u = uniform(seed, Purpose.REPEAT, signals.index_at(r), signals.trace["t"][r], fi)
            extra = candidate[u < rate[signals.pos[r]]]
            repeats += extra.size
            keep = changed.copy()
            keep[extra] = True
        parts.append(
            (tick[keep], np.full(int(keep.sum()), fi, np.int16), value[keep], value2[keep])
        )
    return _group(fmt, signals, rows, parts, first, seed=seed, mess=mess, repeats=repeats)


def _on_change(
    f: Field, signals: Signals, rows: np.ndarray, tick: np.ndarray, first: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The field's ticks, wire values, and whether each value differs from the tick before
    (a period's first tick always counts as a change: everything is sent on connect). A
    vehicle's first tick counts as a change too: it has no tick before it, even when an enum
    that cannot be sent at its first period's start leaves another vehicle's tick in front."""
    value, value2 = wire_values(f, signals, rows[tick])
    if f.kind == ENUM:
        ok = _sendable(f, value)
        tick, value, value2 = tick[ok], value[ok], value2[ok]
    changed = first[tick].copy()
    changed[1:] |= value[1:] != value[:-1]
    if f.kind == LOCATION:
        changed[1:] |= value2[1:] != value2[:-1]
    pos = signals.pos[rows[tick]]
    changed[:1] = True
    changed[1:] |= pos[1:] != pos[:-1]
    return tick, value, value2, changed


def _unchanged(
    tick: np.ndarray, changed: np.ndarray, heartbeat: np.ndarray | None, fast: np.ndarray
) -> np.ndarray:
    """Positions (into ``tick``) of unchanged values that could be sent again; where the key
    is watched more often than every ``HEARTBEAT_S`` seconds (``fast``, per tick), only those
    on that heartbeat."""
    if heartbeat is None:
        return np.flatnonzero(~changed)
    at = np.searchsorted(tick, heartbeat)
    inside = at < tick.size  # heartbeat is sorted, so the ones past the end come last
    at = at[inside]
    on_beat = np.zeros(tick.size, dtype=bool)
    on_beat[at[tick[at] == heartbeat[inside]]] = True
    return np.flatnonzero(~changed & (on_beat | ~fast))


def _repeat_rates(
    changed_pos: list[np.ndarray], candidate_pos: list[np.ndarray], n_vehicles: int
) -> list[np.ndarray]:
    """Per key and vehicle, the chance that an unchanged value is sent again, so that repeats
    make up ``REPEAT_SHARE`` of each vehicle's records: a key repeats in proportion to its own
    changes (``k · changed``), ``k`` raised until keys that run out of unchanged values are
    made up for by the others. Arguments: the vehicle of each changed / candidate record."""
    changed = np.array([np.bincount(p, minlength=n_vehicles) for p in changed_pos], dtype=float)
    free = np.array([np.bincount(p, minlength=n_vehicles) for p in candidate_pos], dtype=float)
    if changed.size == 0:
        return []
    wanted = REPEAT_SHARE / (1 - REPEAT_SHARE) * changed.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(changed > 0, free / changed, 0.0)
    lo, hi = np.zeros(n_vehicles), np.maximum(ratio.max(axis=0, initial=0.0), 1.0)
    for _ in range(50):
        k = (lo + hi) / 2
        short = np.minimum(free, k * changed).sum(axis=0) < wanted
        lo, hi = np.where(short, k, lo), np.where(short, hi, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(free > 0, np.minimum(1.0, hi * changed / free), 0.0)
    return list(rate)


def _group(
    fmt: WireFormat,
    signals: Signals,
    rows: np.ndarray,
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    first: np.ndarray,
    *,
    seed: int,
    mess: bool,
    repeats: int,
) -> Sampled:
    tick = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    field = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int16)
    value = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
    value2 = np.concatenate([p[3] for p in parts]) if parts else np.zeros(0)
    order = np.lexsort((field, tick))
    tick, field, value, value2 = tick[order], field[order], value[order], value2[order]
    new = np.ones(tick.size, dtype=bool)
    new[1:] = tick[1:] != tick[:-1]
    msg_tick, msg = tick[new], np.cumsum(new) - 1
    sample = rows[msg_tick]
    as_string, invalid = datum_mess(fmt, signals, sample[msg], field, seed=seed, mess=mess)
    return Sampled(
        msg_sample=sample,
        msg_time_s=signals.trace["t"][sample],
        msg_first=first[msg_tick],
        msg=msg,
        field=field,
        value=value,
        value2=value2,
        as_string=as_string,
        invalid=invalid,
        repeats=repeats,
    )


def datum_mess(
    fmt: WireFormat,
    signals: Signals,
    sample: np.ndarray,
    field: np.ndarray,
    *,
    seed: int,
    mess: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Which datums arrive as strings and which flagged invalid."""
    stringable = np.array([f.stringable and f.kind in (FLOAT, INT, BOOL) for f in fmt.fields])
    invalidable = np.array([f.invalidable for f in fmt.fields])
    if fmt.strings == "always":
        return stringable[field], np.zeros(field.size, dtype=bool)
    if not mess or fmt.strings == "never":
        return np.zeros(field.size, dtype=bool), np.zeros(field.size, dtype=bool)
    vid, t = signals.index_at(sample), signals.trace["t"][sample]
    old_firmware = signals.const("string_values", sample)
    u = uniform(seed, Purpose.STRING, vid, t, field)
    as_string = stringable[field] & (old_firmware | (u < STRING_SHARE))
    invalid = invalidable[field] & (uniform(seed, Purpose.INVALID, vid, t, field) < INVALID_SHARE)
    return as_string & ~invalid, invalid


def poll_rows(
    signals: Signals,
    rows: np.ndarray,
    interval: np.ndarray,
    window: tuple[int, np.ndarray],
    *,
    seed: int,
    awake_only: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(sample row, poll time) of every answered poll in ``window``: from its start (a
    midnight) to each batch position's own end, so that a vehicle's polls depend on its own
    trace only."""
    t, pos = signals.trace["t"][rows], signals.pos[rows]
    keys = (pos.astype(np.int64) << _T_BITS) | t
    found_rows, found_t = [], []
    n_vehicles = len(signals.days)
    phase = hash64(seed, Purpose.PHASE, signals.vehicle_index, 999)
    for p in range(n_vehicles):
        step = int(interval[p])
        start = window[0] + int(phase[p] % np.uint64(step))
        polls = np.arange(start, int(window[1][p]), step, dtype=np.int64)
        j = np.searchsorted(keys, (np.int64(p) << _T_BITS) | polls, side="right") - 1
        ok = j >= 0  # j = -1: no sample sorts at or before this poll
        ok[ok] = pos[j[ok]] == p
        # Gather only where j is a sample of this vehicle: t is empty when no vehicle of the
        # batch was awake and online all day, and then even a clipped index is out of bounds.
        age = np.full(polls.size, np.iinfo(np.int64).max)
        age[ok] = polls[ok] - t[j[ok]]
        ok &= (age == 0) if awake_only else (age <= STALE_LIMIT_S)
        found_rows.append(rows[j[ok]])
        found_t.append(polls[ok])
    return np.concatenate(found_rows), np.concatenate(found_t)


def sample_poll(
    fmt: WireFormat,
    signals: Signals,
    rows: np.ndarray,
    vehicles: dict[str, np.ndarray],
    window: tuple[int, np.ndarray],
    *,
    seed: int,
    mess: bool,
) -> Sampled:
    """A snapshot of every field at each answered poll. ``window`` is (first second, per batch
    position the second after the last poll)."""
    interval = (
        np.full(len(signals.days), fmt.poll_interval_s)
        if fmt.poll_interval_s
        else vehicles["poll"][: len(signals.days)]
    )
    sample, poll_t = poll_rows(
        signals, rows, interval, window, seed=seed, awake_only=fmt.poll_awake_only
    )
    order = np.lexsort((poll_t, signals.pos[sample]))
    sample, poll_t = sample[order], poll_t[order]
    n_msg, n_fields = sample.size, len(fmt.fields)
    msg = np.repeat(np.arange(n_msg), n_fields)
    field = np.tile(np.arange(n_fields, dtype=np.int16), n_msg)
    value = np.empty(msg.size)
    value2 = np.full(msg.size, np.nan)
    keep = np.ones(msg.size, dtype=bool)
    for fi, f in enumerate(fmt.fields):
        v, v2 = wire_values(f, signals, sample)
        value[fi::n_fields], value2[fi::n_fields] = v, v2
        keep[fi::n_fields] = _sendable(f, v)
    msg, field, value, value2 = msg[keep], field[keep], value[keep], value2[keep]
    as_string, invalid = datum_mess(fmt, signals, sample[msg], field, seed=seed, mess=mess)
    return Sampled(
        msg_sample=sample,
        msg_time_s=poll_t,
        msg_first=np.zeros(n_msg, dtype=bool),
        msg=msg,
        field=field,
        value=value,
        value2=value2,
        as_string=as_string,
        invalid=invalid,
    )
