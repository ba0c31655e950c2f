"""Following the sessions at the edges of a partition's rows into the clean files beyond."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from bibev.pipeline.segment.day import segment_day
from bibev.pipeline.segment.files import read_day

if TYPE_CHECKING:
    from bibev.pipeline.segment.run import SegmentJob

#: How many days after its window a session still running at the window's end is followed
#: (``follow_open_sessions``); one running longer is cut there, flagged ``open_end``.
MAX_FOLLOW_DAYS = 31


def _open_edges(sessions: pl.DataFrame) -> tuple[set[str], set[str]]:
    """The VINs whose first session of the day starts with the rows read (``open_start``) and
    those whose last one runs to their end (``open_end``)."""
    edges = sessions.group_by("vin").agg(pl.col("open_start").first(), pl.col("open_end").last())
    return set(edges.filter("open_start")["vin"]), set(edges.filter("open_end")["vin"])


def follow_open_sessions(
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
    first, last = job.clean_span or span(job.storage.days("clean"), day)
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


def span(days: list[date], default: date) -> tuple[date, date]:
    return (days[0], days[-1]) if days else (default, default)
