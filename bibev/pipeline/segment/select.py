"""Which (VIN, day) partitions a run segments, which noted ones it brought up to date, and
which days next to the redone ones no longer meet them."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import polars as pl

from bibev.errors import ConfigError, StorageError
from bibev.pipeline.changes import around, existing
from bibev.pipeline.segment.follow import MAX_FOLLOW_DAYS
from bibev.storage import Storage, validate_vin

logger = logging.getLogger(__name__)

Partition = tuple[str, date]


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
        frame = _read_sessions(storage, key, ["end", "open_end"])
        if frame is None:
            return earlier  # damaged: redone, which writes it again
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
    rows = RowDays(storage, known)
    sources = set(existing(storage, "clean", also))
    if changed is not None:
        sources |= set(existing(storage, "clean", changed))
        # the days that read a changed day: those around it, or beyond its days without rows
        neighbours = row_neighbours(rows, set(changed))
        chosen = set(existing(storage, "clean", around(changed))) | neighbours | sources
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
    between = (_days_between(selected) | rowless_beside(rows, selected)) - selected
    if between:
        logger.info(
            "segment: %d day(s) without rows of their own between them: segmented", len(between)
        )
    return sorted(selected | between, key=lambda p: (p[1], p[0]))


class RowDays:
    """The days of ``clean/`` each VIN has rows on (a clean file), one listing per day looked
    at; ``known``: the days of ``clean/``."""

    def __init__(self, storage: Storage, known: list[date] | None = None) -> None:
        self.storage = storage
        self.known = storage.days("clean") if known is None else known
        self._listed: dict[date, dict[str, str]] = {}

    def has(self, vin: str, day: date) -> bool:
        if day not in self._listed:
            self._listed[day] = self.storage.day_keys("clean", day)
        return vin in self._listed[day]

    def beside(self, vin: str, day: date, step: int) -> tuple[list[date], date | None]:
        """The days without rows of ``vin`` next to ``day`` on one side (``step`` -1 or 1),
        and the first day with rows beyond them (``None``: none before the end of
        ``clean/``)."""
        passed: list[date] = []
        other = day + timedelta(days=step)
        while self.known and self.known[0] <= other <= self.known[-1]:
            if self.has(vin, other):
                return passed, other
            passed.append(other)
            other += timedelta(days=step)
        return passed, None


def rowless_beside(rows: RowDays, partitions: Iterable[Partition]) -> set[Partition]:
    """The days without rows of each VIN between each of its ``partitions`` and its nearest
    day with rows on either side, when there is one, at most ``MAX_FOLLOW_DAYS + 1`` from
    either: sessions laid in the gap may start there, and they depend on the partition's
    rows."""
    reach = MAX_FOLLOW_DAYS + 1
    found = set()
    for vin, day in partitions:
        for step in (-1, 1):
            passed, beyond = rows.beside(vin, day, step)
            if beyond is not None:
                gap = len(passed) + 1
                found |= {(vin, d) for n, d in enumerate(passed, 1) if min(n, gap - n) <= reach}
    return found


def row_neighbours(rows: RowDays, partitions: Iterable[Partition]) -> set[Partition]:
    """For each of ``partitions``, its VIN's nearest days with rows before and after it (days
    without rows skipped): they read its rows."""
    return {
        (vin, beyond)
        for vin, day in partitions
        for step in (-1, 1)
        if (beyond := rows.beside(vin, day, step)[1]) is not None
    }


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


def covered(
    storage: Storage, noted: Iterable[Partition], done: set[Partition], first: date
) -> set[Partition]:
    """The noted clean (VIN, day)s whose sessions are up to date after this run: the day and
    the vehicle's next day with rows (it reads the day; the days between have no clean file)
    segmented or without a clean file, and the earlier day whose last session runs into the
    day (``_open_owner``, down to ``first``), if any, segmented."""
    rows = RowDays(storage)

    def fresh(vin: str, day: date | None) -> bool:
        return day is None or (vin, day) in done or not rows.has(vin, day)

    def owner_done(vin: str, day: date) -> bool:
        owner = _open_owner(storage, vin, day, first)
        return owner is None or (vin, owner) in done

    return {
        (vin, day)
        for vin, day in set(noted)
        if fresh(vin, day) and fresh(vin, rows.beside(vin, day, 1)[1]) and owner_done(vin, day)
    }


def seams(storage: Storage, done: set[Partition]) -> set[Partition]:
    """The days, next to each VIN's redone ones, whose sessions no longer meet them: the
    last session before the first redone day must end where the first session from that day
    on starts, and the first session after the last redone day must start where the last
    one up to it ends. A redone session may now end sooner or later (late data inside a gap
    moves what was laid there), and the day that owns its neighbour must be redone too. So is
    a neighbour cut at the redone side (``open_start`` / ``open_end``: it was segmented when
    the redone days had no rows yet) when they have rows now."""
    found: set[Partition] = set()
    rows = RowDays(storage)
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
        with_rows = any(rows.has(vin, day) for day in mine)
        before = _next_sessions(storage, listed, span, vin, first, -1)
        if before is not None:  # (the files read only when there is a neighbour to meet)
            owner, theirs = before
            since = _next_sessions(storage, listed, span, vin, first - timedelta(days=1), 1)
            ours = None if since is None else since[1]
            # damaged (redone, which writes it again), cut at the redone days, or not meeting
            if theirs is None or _unmet(theirs, ours, with_rows, after=False):
                found.add((vin, owner))
        after = _next_sessions(storage, listed, span, vin, last, 1)
        if after is not None:
            owner, theirs = after
            upto = _next_sessions(storage, listed, span, vin, last + timedelta(days=1), -1)
            ours = None if upto is None else upto[1]
            if theirs is None or _unmet(theirs, ours, with_rows, after=True):
                found.add((vin, owner))
    return found


def _unmet(
    theirs: pl.DataFrame, ours: pl.DataFrame | None, with_rows: bool, *, after: bool
) -> bool:
    """Whether a neighbour's sessions (``theirs``, after the redone days or before them) must
    be redone: cut at the redone side while the redone days have rows, or not meeting the
    redone sessions (``ours``)."""
    ordered = theirs.sort("start")
    cut = with_rows and bool(ordered["open_start"][0] if after else ordered["open_end"][-1])
    if cut or ours is None:
        return cut
    earlier, later = (ours, theirs) if after else (theirs, ours)
    return bool(earlier["end"].max() != later["start"].min())


def _read_sessions(storage: Storage, key: str, columns: list[str]) -> pl.DataFrame | None:
    """Those ``columns`` of a segments file; ``None`` (logged) when it cannot be read."""
    try:
        return storage.read_parquet(key, columns=columns)
    except StorageError as exc:
        logger.warning("%s: the day is segmented again", exc)
        return None


def _next_sessions(
    storage: Storage,
    listed: dict[date, dict[str, str]],
    span: tuple[date, date],
    vin: str,
    day: date,
    step: int,
) -> tuple[date, pl.DataFrame | None] | None:
    """The first day after ``day`` (``step`` 1) or before it (-1) with sessions of ``vin`` in
    its file, and those sessions (``None``: the file cannot be read); ``None`` within
    ``MAX_FOLLOW_DAYS + 1`` days or outside ``span`` (the first and last day of
    ``segments/``). ``listed`` caches the day listings."""
    for n in range(1, MAX_FOLLOW_DAYS + 2):
        other = day + timedelta(days=step * n)
        if not span[0] <= other <= span[1]:
            return None
        if other not in listed:
            listed[other] = storage.day_keys("segments", other)
        if vin in listed[other]:
            columns = ["start", "end", "open_start", "open_end"]
            sessions = _read_sessions(storage, listed[other][vin], columns)
            if sessions is None or sessions.height:
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
        sessions = _read_sessions(storage, key, ["end"])
        if sessions is not None and sessions.height:
            break
        found.append(later)  # (a damaged file too: redone, which writes it again)
    return found
