"""``run_segment``: which (VIN, day) partitions to segment, and running them.

A partition reads the clean files of its day and of the days before and after it, cuts the
sessions that start on its day (``segment_day``) and writes ``segments/YYYY/MM/DD/{VIN}.parquet``
(only when its bytes change). A session at an edge of those three days is followed into the
files beyond (``_follow_open_sessions``). The output depends on the clean files only, so days
can be segmented in any order, in parallel, and again, with the same result.

The partitions run in day batches (``bibev.pipeline.partitions.run_batches``): the VINs of a
batch are read and segmented in one query (``segment_batch``), which costs little more than one
vehicle (a small partition costs mostly query planning); a batch that fails is run again one
partition at a time, so a bad partition fails alone. The files are the same for any batch size.

A session still open at the end of the data (``open_end``: the next day was not there yet) is
completed when a later day is segmented: selecting a day also selects the day that left its
last session open (``_open_owner``: the day before, or an earlier one when that session covers
the days between), so running tonight's day completes it instead of cutting or duplicating it.

The ``segments`` table is updated in this process after the partitions ran, one (VIN, day) per
transaction (delete, then insert). While a run works on a day it holds the lock
``segment/YYYY-MM-DD``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import polars as pl

from bibev.errors import ConfigError
from bibev.executors import OnProgress, PartitionResult
from bibev.pipeline.changes import around, existing, notes_for, settle
from bibev.pipeline.partitions import log_done, raise_for_failures, run_batches, take_day_locks
from bibev.pipeline.segment.day import segment_day
from bibev.pipeline.segment.files import encode, read_day, read_windows, write_segments
from bibev.pipeline.segment.params import DEFAULT_PARAMS, SegmentParams
from bibev.storage import Storage, validate_vin

if TYPE_CHECKING:  # workers import this module: not the database layer they never use
    from sqlalchemy import Engine

logger = logging.getLogger(__name__)

Partition = tuple[str, date]

#: VINs of a day segmented in one query (see ``run_segment``).
DEFAULT_BATCH_SIZE = 100
#: How many days after its window a session still running at the window's end is followed
#: (``_follow_open_sessions``); one running longer is cut there, flagged ``open_end``.
MAX_FOLLOW_DAYS = 31
#: Rounds of redoing the days next to the redone ones whose sessions no longer meet them.
MAX_SEAM_ROUNDS = 3


def lock_name(day: date) -> str:
    return f"segment/{day:%Y-%m-%d}"


@dataclass(frozen=True)
class SegmentJob:
    """Everything a worker needs to segment a partition (picklable)."""

    storage: Storage
    params: SegmentParams = DEFAULT_PARAMS
    lookaround_days: int = 1
    #: The first and last day of ``clean/`` (listed once per run); ``None``: listed when needed.
    clean_span: tuple[date, date] | None = None


@dataclass(frozen=True)
class SegmentResult:
    """What segmenting one (VIN, day) did; ``sessions`` holds the day's rows for the table."""

    vin: str
    day: date
    rows_in: int
    sessions: pl.DataFrame
    written: bool
    bytes_out: int

    def counts(self) -> Counter[str]:
        counted: Counter[str] = Counter(self.sessions["kind"].cast(pl.String).to_list())
        counted["offline"] = int(self.sessions["offline"].sum())
        return counted


def segment_batch(job: SegmentJob, batch: Sequence[Partition]) -> list[SegmentResult]:
    """Segment the partitions of ``batch``, one query per day of it; one result per partition,
    in the batch's order. Module-level so that it can run in a worker."""
    days: dict[date, list[str]] = {}
    for vin, day in batch:
        days.setdefault(day, []).append(vin)
    done: dict[Partition, SegmentResult] = {}
    for day, vins in days.items():
        done |= {(r.vin, day): r for r in _segment_day_batch(job, day, vins)}
    return [done[partition] for partition in batch]


def segment_partition(job: SegmentJob, partition: Partition) -> SegmentResult:
    """Segment one (VIN, day): a batch of one."""
    return segment_batch(job, [partition])[0]


def _segment_day_batch(job: SegmentJob, day: date, vins: list[str]) -> list[SegmentResult]:
    storage = job.storage
    rows, rows_in = read_windows(storage, vins, day, job.lookaround_days)
    sessions = segment_day(rows.lazy(), day, job.params).collect()
    # No session of its own on the day (no rows, or an earlier session covers its rows): one
    # laid in a telemetry gap around the day may still start there, once both sides are seen.
    unowned = set(vins) - set(sessions["vin"].to_list())
    sessions = _follow_open_sessions(job, day, rows, sessions, unowned)
    by_vin = sessions.partition_by("vin", as_dict=True, maintain_order=True)
    frames = {vin: by_vin.get((vin,), sessions.clear()) for vin in vins}
    stored = write_segments(storage, day, frames)
    return [SegmentResult(vin, day, rows_in[vin], frames[vin], *stored[vin]) for vin in vins]


def _open_edges(sessions: pl.DataFrame) -> tuple[set[str], set[str]]:
    """The VINs whose first session of the day starts with the rows read (``open_start``) and
    those whose last one runs to their end (``open_end``)."""
    edges = sessions.group_by("vin").agg(pl.col("open_start").first(), pl.col("open_end").last())
    return set(edges.filter("open_start")["vin"]), set(edges.filter("open_end")["vin"])


def _follow_open_sessions(
    job: SegmentJob,
    day: date,
    rows: pl.DataFrame,
    sessions: pl.DataFrame,
    unowned: set[str] | None = None,
) -> pl.DataFrame:
    """``sessions`` with the sessions at the edges of each VIN's rows followed to their ends.

    A session of ``day`` that runs to the end of the rows read (an idle through days of
    parking, a charge longer than the day after) is followed into the later clean files of
    its vehicle; one that starts with the rows read (the days before have no rows) is followed
    into the earlier ones, where it may turn out to have started before ``day``, which then
    leaves it to its own day. Files are read a day at a time, skipping days without rows, up
    to ``MAX_FOLLOW_DAYS`` days beyond the window; a session longer than that stays cut,
    flagged. Only the vehicles followed are segmented again: the others' sessions do not depend
    on rows further away. So every session is whole in the day it starts on, and the days it
    covers have no hole. The ``unowned`` vehicles (no session of their own on ``day``) are
    followed both ways until rows are found on each side: a session laid in the gap between
    them may start on ``day``."""
    backward, forward = _open_edges(sessions)
    unowned = unowned or set()
    lonely_before, lonely_after = _without_sides(rows, day, unowned)
    backward, forward = backward | lonely_before, forward | lonely_after
    if not backward and not forward:
        return sessions
    first, last = job.clean_span or _span(job.storage.days("clean"), day)
    before = day - timedelta(days=job.lookaround_days)
    after = day + timedelta(days=job.lookaround_days)
    followed: dict[str, pl.DataFrame] = {}
    for _ in range(MAX_FOLLOW_DAYS):
        backward = {vin for vin in backward if before > first}
        forward = {vin for vin in forward if after < last}
        if not backward and not forward:
            break
        before, after = before - timedelta(days=1), after + timedelta(days=1)
        found = [read_day(job.storage, sorted(backward), before)] if backward else []
        found += [read_day(job.storage, sorted(forward), after)] if forward else []
        more = [frame for frame in found if frame is not None]
        if not more:  # no rows on those days (asleep all day): look one day further
            continue
        rows = pl.concat([rows, *more], how="vertical_relaxed")
        chased = backward | forward
        mine = rows.filter(pl.col("vin").is_in(chased)).lazy()
        redone = segment_day(mine, day, job.params).collect()
        followed |= {vin: redone.filter(pl.col("vin") == vin) for vin in chased}
        still_start, still_end = _open_edges(redone)
        lonely_before, lonely_after = _without_sides(rows, day, unowned)
        backward = (backward & still_start) | (backward & lonely_before)
        forward = (forward & still_end) | (forward & lonely_after)
    if not followed:
        return sessions
    kept = sessions.filter(~pl.col("vin").is_in(list(followed)))
    return pl.concat([kept, *followed.values()]).sort("vin", "start")


def _without_sides(rows: pl.DataFrame, day: date, vins: set[str]) -> tuple[set[str], set[str]]:
    """Those of ``vins`` with no rows before ``day``, and those with none after it."""
    if not vins:
        return set(), set()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    mine = rows.filter(pl.col("vin").is_in(sorted(vins)))
    before = set(mine.filter(pl.col("ts") < start)["vin"].to_list())
    after = set(mine.filter(pl.col("ts") >= start + timedelta(days=1))["vin"].to_list())
    return vins - before, vins - after


def _span(days: list[date], default: date) -> tuple[date, date]:
    return (days[0], days[-1]) if days else (default, default)


def _open_owner(storage: Storage, vin: str, day: date, first: date) -> date | None:
    """The earlier day whose last session of ``vin`` reaches into ``day`` or was left open
    (``open_end``): its end depends on ``day``'s rows. Found walking back from the day before
    over days without rows and days whose sessions file is empty (an earlier day's session
    covers them), down to ``first``."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    for back in range(1, MAX_FOLLOW_DAYS + 2):
        earlier = day - timedelta(days=back)
        if earlier < first:
            return None
        key = storage.day_key("segments", earlier, vin)
        if not storage.exists(key):
            if storage.exists(storage.day_key("clean", earlier, vin)):
                return None  # not segmented yet: nothing was left open there
            continue
        frame = storage.read_parquet(key, columns=["end", "open_end"])
        if frame.height:
            end, still_open = frame.sort("end").row(-1)
            return earlier if still_open or end >= start else None
    return None


def select_partitions(
    storage: Storage,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    vins: Sequence[str] | None = None,
    changed: Iterable[Partition] | None = None,
    also: Iterable[Partition] = (),
) -> list[Partition]:
    """The (VIN, day) partitions of ``clean/`` in the range (or, with ``changed``, those (VIN,
    day)s and their VIN's days before and after), and ``also`` (days whose clean file the same
    run changed), plus the days whose sessions depend on them: for a VIN whose session reaches
    into them or was left open before them, the day that session started on
    (``_open_owner``); after them, the days an earlier session covered (``_covered_after``).
    With ``changed``, only the changed days' sessions can depend on them. By day then VIN."""
    if date_from and date_to and date_from > date_to:
        raise ConfigError(f"--from {date_from} is after --to {date_to}")
    wanted = None if vins is None else {validate_vin(vin) for vin in vins}
    known = storage.days("clean")
    if not known:
        return []
    sources = set(existing(storage, "clean", also))
    if changed is not None:
        sources |= set(existing(storage, "clean", changed))
        chosen = set(existing(storage, "clean", around(changed))) | sources
    else:
        chosen = set(sources)
        for day in known:
            if (date_from and day < date_from) or (date_to and day > date_to):
                continue
            for vin in storage.day_keys("clean", day):
                if wanted is None or vin in wanted:
                    chosen.add((vin, day))
        sources = chosen
    one = timedelta(days=1)
    # with --changed, the days around a changed one are chosen, but the session it depends on
    # may have started before them: follow it from the changed day itself
    owners = {
        (vin, _open_owner(storage, vin, day, known[0]))
        for vin, day in sources
        if changed is not None or (vin, day - one) not in chosen
    }
    repairs = {(vin, owner) for vin, owner in owners if owner is not None} - chosen
    if repairs:
        logger.info(
            "segment: %d earlier day(s) end with a session into the range: redone", len(repairs)
        )
    covered = {
        (vin, later)
        for vin, day in sources
        if changed is not None or (vin, day + one) not in chosen
        for later in _covered_after(storage, vin, day, known[-1])
    } - chosen
    if covered:
        logger.info("segment: %d later day(s) were covered by a session: redone", len(covered))
    selected = chosen | repairs | covered
    between = _days_between(selected) - selected
    if between:
        logger.info(
            "segment: %d day(s) without rows of their own between them: segmented", len(between)
        )
    return sorted(selected | between, key=lambda p: (p[1], p[0]))


def _days_between(partitions: set[Partition]) -> set[Partition]:
    """For each VIN, the days between two of its ``partitions`` (days without rows, where a
    session laid in the gap may start, or days an earlier session covers), at most
    ``MAX_FOLLOW_DAYS + 1`` after the earlier one or before the later one (beyond that no
    session is followed)."""
    days: dict[str, list[date]] = {}
    for vin, day in partitions:
        days.setdefault(vin, []).append(day)
    reach = MAX_FOLLOW_DAYS + 1
    found = set()
    for vin, listed in days.items():
        ordered = sorted(listed)
        for a, b in itertools.pairwise(ordered):
            gap = (b - a).days
            for n in range(1, gap):
                if n <= reach or gap - n <= reach:
                    found.add((vin, a + timedelta(days=n)))
    return found


def _covered(
    storage: Storage, noted: Iterable[Partition], done: set[Partition], first: date
) -> set[Partition]:
    """The noted clean (VIN, day)s whose sessions are up to date after this run: the day and
    the day after (it reads the day) segmented or without a clean file, and the earlier day
    whose last session runs into the day (``_open_owner``, down to ``first``), if any,
    segmented."""
    one = timedelta(days=1)
    noted = set(noted)
    days = {day + shift for _, day in noted for shift in (0 * one, one)}
    present = {day: storage.day_keys("clean", day) for day in days}

    def fresh(vin: str, day: date) -> bool:
        return (vin, day) in done or vin not in present[day]

    def owner_done(vin: str, day: date) -> bool:
        owner = _open_owner(storage, vin, day, first)
        return owner is None or (vin, owner) in done

    return {
        (vin, day)
        for vin, day in noted
        if fresh(vin, day) and fresh(vin, day + one) and owner_done(vin, day)
    }


def _seams(storage: Storage, done: set[Partition]) -> set[Partition]:
    """The days, next to each VIN's redone ones, whose sessions no longer meet them: the
    last session before the first redone day must end where the first session from that day
    on starts, and the first session after the last redone day must start where the last
    one up to it ends. A redone session may now end sooner or later (late data inside a gap
    moves what was laid there), and the day that owns its neighbour must be redone too."""
    found: set[Partition] = set()
    days: dict[str, list[date]] = {}
    for vin, day in done:
        days.setdefault(vin, []).append(day)
    listed: dict[date, dict[str, str]] = {}  # one listing per day, not one request per file
    segmented = storage.days("segments")
    if not segmented:
        return found
    span = (segmented[0], segmented[-1])
    for vin, mine in days.items():
        first, last = min(mine), max(mine)
        before = _next_sessions(storage, listed, span, vin, first, -1)
        if before:  # (the files read only when there is a neighbour to meet)
            since = _next_sessions(storage, listed, span, vin, first - timedelta(days=1), 1)
            if since and before[1]["end"].max() != since[1]["start"].min():
                found.add((vin, before[0]))
        after = _next_sessions(storage, listed, span, vin, last, 1)
        if after:
            upto = _next_sessions(storage, listed, span, vin, last + timedelta(days=1), -1)
            if upto and upto[1]["end"].max() != after[1]["start"].min():
                found.add((vin, after[0]))
    return found


def _next_sessions(
    storage: Storage,
    listed: dict[date, dict[str, str]],
    span: tuple[date, date],
    vin: str,
    day: date,
    step: int,
) -> tuple[date, pl.DataFrame] | None:
    """The first day after ``day`` (``step`` 1) or before it (-1) with sessions of ``vin`` in
    its file, and those sessions; ``None`` within ``MAX_FOLLOW_DAYS + 1`` days or outside
    ``span`` (the first and last day of ``segments/``). ``listed`` caches the day listings."""
    for n in range(1, MAX_FOLLOW_DAYS + 2):
        other = day + timedelta(days=step * n)
        if not span[0] <= other <= span[1]:
            return None
        if other not in listed:
            listed[other] = storage.day_keys("segments", other)
        if vin in listed[other]:
            sessions = storage.read_parquet(listed[other][vin], columns=["start", "end"])
            if sessions.height:
                return other, sessions
    return None


def _covered_after(storage: Storage, vin: str, day: date, last: date) -> list[date]:
    """The later days of ``vin`` whose sessions file is empty because a session of ``day`` (or
    before) covered them: redone with ``day``, since that session may now end sooner. Walks
    forward over days without rows, down to the first day with sessions of its own."""
    found = []
    for ahead in range(1, MAX_FOLLOW_DAYS + 2):
        later = day + timedelta(days=ahead)
        if later > last:
            break
        key = storage.day_key("segments", later, vin)
        if not storage.exists(key):
            if storage.exists(storage.day_key("clean", later, vin)):
                break  # not segmented yet: it will be on its own
            continue
        if storage.read_parquet(key, columns=["end"]).height:
            break
        found.append(later)
    return found


@dataclass(frozen=True)
class SegmentSummary:
    """The outcome of a run: one result per partition done, and the failed partitions."""

    results: list[SegmentResult]
    failures: list[tuple[str, str]]
    days: list[date]
    seconds: float
    stored: int = 0

    def totals(self) -> dict[str, Any]:
        """The counts recorded in the ``runs`` table and printed by the CLI."""
        counted: Counter[str] = Counter()
        for result in self.results:
            counted.update(result.counts())
        return {
            "days": len(self.days),
            "vehicles": len({r.vin for r in self.results}),
            "partitions": len(self.results) + len(self.failures),
            "failed": len(self.failures),
            "rows_in": sum(r.rows_in for r in self.results),
            "sessions": sum(r.sessions.height for r in self.results),
            "charging": counted["charging"],
            "driving": counted["driving"],
            "idle": counted["idle"],
            "offline": counted["offline"],
            "files_written": sum(r.written for r in self.results),
            "files_unchanged": sum(not r.written for r in self.results),
            "rows_stored": self.stored,
            "seconds": round(self.seconds, 3),
        }

    def raise_for_failures(self) -> None:
        """``PartialFailure`` (exit 5) listing the failed partitions, if there are any."""
        raise_for_failures(self.failures, self.totals()["partitions"])


def run_segment(
    storage: Storage,
    engine: Engine | None = None,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    vins: Sequence[str] | None = None,
    params: SegmentParams | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    on_progress: OnProgress | None = None,
    lock_wait: float = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    changed: bool = False,
    also: Sequence[Partition] = (),
) -> SegmentSummary:
    """Segment every selected (VIN, day) (see the module doc) and replace their rows in the
    ``segments`` table of ``engine`` (when given). Failed partitions are listed in the summary,
    never raised: ``summary.raise_for_failures()`` does that.

    ``changed`` selects instead the (VIN, day)s that the clean files written since the last
    such run touch (``bibev.pipeline.changes``). ``also``: more (VIN, day)s whose clean file
    changed (``transform all`` passes those its clean step cleaned before the range).

    The VINs of a day are segmented ``batch_size`` at a time, in one query: a worker's memory
    is bounded by a batch (clean rows of three days of ``batch_size`` vehicles); the files are
    the same for any batch size."""
    if batch_size < 1:
        raise ConfigError(f"a batch holds at least one vehicle, not {batch_size}")
    started = time.monotonic()
    everything = not (date_from or date_to or vins)
    notes = notes_for(storage, "clean", changed=changed, everything=everything)
    partitions = select_partitions(
        storage,
        date_from=date_from,
        date_to=date_to,
        vins=vins,
        changed=notes.partitions if changed else None,
        also=also,
    )
    if not partitions:
        storage.check_root()  # nothing to do, or a mistyped root: say which
    days = sorted({day for _, day in partitions})
    logger.info("segment: %d partition(s) over %d day(s)", len(partitions), len(days))
    storage.sweep_tmp()  # files a killed writer left under _tmp/ more than a day ago
    if storage.protocol == "memory" and (workers != 1 or dask_address):
        logger.info("memory:// roots live in this process: segmenting inline")
        workers, dask_address = 1, None
    job = SegmentJob(
        storage, params or DEFAULT_PARAMS, clean_span=_span(storage.days("clean"), date.today())
    )
    run = partial(
        run_batches,
        partial(segment_batch, job),
        batch_size=batch_size,
        workers=workers,
        dask_address=dask_address,
        on_progress=on_progress,
    )
    with ExitStack() as stack:
        refused = take_day_locks(stack, storage, days, lock_name, lock_wait)
        results = run([p for p in partitions if p[1] not in refused])
        attempted = list(partitions)
        for _ in range(MAX_SEAM_ROUNDS):
            seams = _seams(storage, {r.partition for r in results if r.ok}) - set(attempted)
            if not seams:
                break
            logger.info("segment: %d day(s) no longer meet the sessions redone: redone", len(seams))
            more_days = sorted({day for _, day in seams} - {day for _, day in attempted})
            refused |= take_day_locks(stack, storage, more_days, lock_name, lock_wait)
            attempted += sorted(seams, key=lambda p: (p[1], p[0]))
            results += run([p for p in sorted(seams) if p[1] not in refused])
    failures = [(f"{vin} {day}", reason) for vin, day in attempted if (reason := refused.get(day))]
    failures += _failures(results)
    done = [r.value for r in results if r.ok]
    stored = 0
    if engine is not None and done:
        from bibev.db.segments import replace_segments

        stored = replace_segments(engine, ((r.vin, r.day, r.sessions) for r in done))
    # the files and rows made from the changed clean files are there
    if everything and not failures:
        settle(storage, notes, set(notes.partitions))  # every day done
    else:
        redone = {(r.vin, r.day) for r in done}
        first = job.clean_span[0] if job.clean_span else date.today()
        settle(storage, notes, _covered(storage, notes.partitions, redone, first))
    summary = SegmentSummary(
        results=done,
        failures=sorted(failures),
        days=days,
        seconds=time.monotonic() - started,
        stored=stored,
    )
    log_done(logger, "segment", summary.totals())
    return summary


def _failures(results: Sequence[PartitionResult[Partition]]) -> list[tuple[str, str]]:
    return [(f"{r.partition[0]} {r.partition[1]}", r.error or "") for r in results if not r.ok]


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SegmentJob",
    "SegmentResult",
    "SegmentSummary",
    "encode",
    "lock_name",
    "read_windows",
    "run_segment",
    "segment_batch",
    "segment_partition",
    "select_partitions",
]
