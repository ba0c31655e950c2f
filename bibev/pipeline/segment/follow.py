"""Following the sessions at the edges of a partition's rows into the clean files beyond."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from bibev.pipeline.segment.day import segment_day_reach
from bibev.pipeline.segment.files import read_day

if TYPE_CHECKING:
    from bibev.pipeline.segment.run import SegmentJob

#: How many days after its window a session still running at the window's end is followed
#: (``follow_open_sessions``); one running longer is cut there, flagged ``open_end``.
MAX_FOLLOW_DAYS = 31


def _cut_edges(
    sessions: pl.DataFrame, reach: pl.DataFrame, rows: pl.DataFrame
) -> tuple[set[str], set[str]]:
    """The VINs whose sessions of the day may change with rows before those read, and those
    whose sessions may change with rows after them.

    Before: the day's first session starts in the first chain of the rows (``reach``, from
    ``day.chain_reach``), in the gap after it or where the second one starts, which is all an
    ``open_start`` session does; or no odometer reading is seen before it (the odometer at a
    row is the last reading plus the distance since, and the first row read only carries a
    value reported earlier). After: the day's last session ends in the gap before the last
    chain or in it (``open_end`` included)."""
    edges = sessions.group_by("vin").agg(first=pl.col("start").min(), last=pl.col("end").max())
    edges = edges.join(reach.with_columns(pl.col("vin").cast(pl.String)), on="vin", how="left")
    edges = edges.join(_first_readings(rows), on="vin", how="left")
    inner_start, inner_last = pl.col("inner_start"), pl.col("inner_last")
    unread = pl.col("has_odometer").fill_null(False) & ~(pl.col("reading") <= pl.col("first"))
    before = edges.filter(
        inner_start.is_null() | (pl.col("first") <= inner_start) | unread.fill_null(True)
    )
    after = edges.filter(inner_last.is_null() | (pl.col("last") >= inner_last))
    return set(before["vin"]), set(after["vin"])


def _first_readings(rows: pl.DataFrame) -> pl.DataFrame:
    """Per VIN of ``rows``: whether it has an odometer value, and the first row after its
    first one that reports a new odometer value (``rules.fresh``)."""
    odometer = pl.col("odometer_km")
    previous = odometer.shift(1).over("vin")
    later = pl.col("ts") > pl.col("ts").min().over("vin")
    new = odometer.is_not_null() & (previous.is_null() | (odometer != previous)) & later
    return (
        rows.select(pl.col("vin").cast(pl.String), "ts", "odometer_km")
        .sort("vin", "ts")
        .with_columns(new=new)
        .group_by("vin")
        .agg(has_odometer=odometer.is_not_null().any(), reading=pl.col("ts").filter("new").min())
    )


def follow_open_sessions(
    job: SegmentJob,
    day: date,
    rows: pl.DataFrame,
    sessions: pl.DataFrame,
    reach: pl.DataFrame,
    unowned: set[str] | None = None,
) -> pl.DataFrame:
    """``sessions`` with the sessions at the edges of each VIN's rows followed to their ends.

    A session of ``day`` that runs to the end of the rows read (an idle through days of
    parking, a charge longer than the day after) is followed into the later clean files of
    its vehicle; one that starts with the rows read (the days before have no rows) is followed
    into the earlier ones, where it may turn out to have started before ``day``, which then
    leaves it to its own day. So is a session laid in a telemetry gap next to the first or last
    chain of rows read (``reach``, from ``day.chain_reach``), whose layout reads those whole
    chains, until they are whole. Files are read a day at a time, skipping days without rows, up
    to ``MAX_FOLLOW_DAYS`` days beyond the window; a session longer than that stays cut,
    flagged. Only the vehicles followed are segmented again: the others' sessions do not depend
    on rows further away. So every session is whole in the day it starts on, and the days it
    covers have no hole. The ``unowned`` vehicles (no session of their own on ``day``) are
    followed both ways until rows are found on each side: a session laid in the gap between
    them may start on ``day``."""
    backward, forward = _cut_edges(sessions, reach, rows)
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
        redone, reach = segment_day_reach(mine, day, job.params)
        followed |= {vin: redone.filter(pl.col("vin") == vin) for vin in chased}
        still_start, still_end = _cut_edges(redone, reach, rows)
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
