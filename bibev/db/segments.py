"""The ``segments`` table: one row per charging, driving or idle session.

It mirrors ``segments/YYYY/MM/DD/{VIN}.parquet``: ``bibev transform segment`` replaces the rows
of a (VIN, day), whole and in one transaction, every time it writes that day's file, so the
table always holds what the files hold. ``segment_id`` is stable (a hash of VIN, kind and
start), so the same session keeps its id from run to run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import polars as pl
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Engine,
    Float,
    Index,
    Integer,
    String,
    delete,
    insert,
    select,
    tuple_,
)
from sqlalchemy.orm import Mapped, mapped_column

from bibev.db.engine import connect
from bibev.db.models import Base

SEGMENT_KINDS = ("charging", "driving", "idle")


class Segment(Base):
    """A session cut out of a vehicle's clean series (docs/segmentation.md)."""

    __tablename__ = "segments"
    __table_args__ = (
        CheckConstraint("kind IN ('charging', 'driving', 'idle')", name="kind"),
        Index("ix_segments_vin_day", "vin", "day"),
    )

    segment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    vin: Mapped[str] = mapped_column(String(17))
    day: Mapped[date] = mapped_column(Date, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    start: Mapped[datetime] = mapped_column(index=True)
    end: Mapped[datetime]
    duration_s: Mapped[float] = mapped_column(Float)
    soc_start: Mapped[float | None] = mapped_column(Float)
    soc_end: Mapped[float | None] = mapped_column(Float)
    odometer_start_km: Mapped[float | None] = mapped_column(Float)
    odometer_end_km: Mapped[float | None] = mapped_column(Float)
    distance_km: Mapped[float | None] = mapped_column(Float)
    energy_added_kwh: Mapped[float | None] = mapped_column(Float)
    charger_kind: Mapped[str] = mapped_column(String(8))
    max_power_kw: Mapped[float | None] = mapped_column(Float)
    mean_power_kw: Mapped[float | None] = mapped_column(Float)
    temp_mean_c: Mapped[float | None] = mapped_column(Float)
    n_points: Mapped[int] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(16))
    offline: Mapped[bool] = mapped_column(Boolean)
    bridged_gap: Mapped[bool] = mapped_column(Boolean)
    estimated_start: Mapped[bool] = mapped_column(Boolean)
    estimated_end: Mapped[bool] = mapped_column(Boolean)
    open_start: Mapped[bool] = mapped_column(Boolean)
    open_end: Mapped[bool] = mapped_column(Boolean)


COLUMNS = tuple(column.name for column in Segment.__table__.columns)


def segment_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The rows of a segments frame (``bibev.pipeline.segment.SEGMENT_SCHEMA``) for the table."""
    plain = frame.with_columns(
        pl.col(name).cast(pl.String) for name in ("kind", "charger_kind", "source")
    )
    return plain.select(COLUMNS).to_dicts()


#: (VIN, day)s replaced per transaction: a few round trips for many days, on a server too.
DAYS_PER_TRANSACTION = 200


def replace_segments(engine: Engine, days: Iterable[tuple[str, date, pl.DataFrame]]) -> int:
    """For each (VIN, day, frame): delete that day's rows of that VIN and insert the frame's.
    Up to ``DAYS_PER_TRANSACTION`` (VIN, day)s are replaced in one transaction (one delete, one
    insert), so a (VIN, day) is always replaced whole. Returns the number of rows inserted."""
    inserted = 0
    todo = list(days)
    for start in range(0, len(todo), DAYS_PER_TRANSACTION):
        chunk = todo[start : start + DAYS_PER_TRANSACTION]
        rows = [row for _, _, frame in chunk for row in segment_rows(frame)]
        pairs = [(vin, day) for vin, day, _ in chunk]
        with connect(engine) as connection:
            connection.execute(delete(Segment).where(tuple_(Segment.vin, Segment.day).in_(pairs)))
            if rows:
                connection.execute(insert(Segment), rows)
        inserted += len(rows)
    return inserted


def load_segments(
    engine: Engine, *, vin: str | None = None, day: date | None = None
) -> list[dict[str, Any]]:
    """The stored sessions (of one VIN and/or day), by VIN then start."""
    query = select(Segment).order_by(Segment.vin, Segment.start)
    if vin is not None:
        query = query.where(Segment.vin == vin)
    if day is not None:
        query = query.where(Segment.day == day)
    with connect(engine, begin=False) as connection:
        return [
            dict(row._mapping)
            for row in connection.execute(query.with_only_columns(*Segment.__table__.columns))
        ]
