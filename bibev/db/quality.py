"""The ``clean_quality`` table: one data-quality record per cleaned (VIN, day).

``bibev transform clean`` replaces a (VIN, day)'s row every time it cleans that day, so the
table always describes the clean files as they are; ``bibev report quality`` reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Date, Engine, Float, Integer, String, delete, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from bibev.db.engine import connect
from bibev.db.models import Base

if TYPE_CHECKING:
    from bibev.pipeline.clean.quality import QualityRecord

COUNTS = (
    "rows_in",
    "observations",
    "unmapped_rows",
    "unmapped_keys",
    "invalid_values",
    "clamped_ts",
    "superseded",
    "dropped_total",
    "rows_out",
    "gaps",
)


class CleanQuality(Base):
    """What cleaning one (VIN, day) read, dropped (by reason) and wrote."""

    __tablename__ = "clean_quality"

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    provider: Mapped[str | None] = mapped_column(String(64))
    rows_in: Mapped[int] = mapped_column(Integer, default=0)
    observations: Mapped[int] = mapped_column(Integer, default=0)
    unmapped_rows: Mapped[int] = mapped_column(Integer, default=0)
    unmapped_keys: Mapped[int] = mapped_column(Integer, default=0)
    invalid_values: Mapped[int] = mapped_column(Integer, default=0)
    clamped_ts: Mapped[int] = mapped_column(Integer, default=0)
    superseded: Mapped[int] = mapped_column(Integer, default=0)
    dropped_total: Mapped[int] = mapped_column(Integer, default=0)
    dropped: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rows_out: Mapped[int] = mapped_column(Integer, default=0)
    gaps: Mapped[int] = mapped_column(Integer, default=0)
    longest_gap_s: Mapped[float | None] = mapped_column(Float)
    first_ts: Mapped[datetime | None]
    last_ts: Mapped[datetime | None]
    cleaned_at: Mapped[datetime]


def _row(record: QualityRecord, cleaned_at: datetime) -> dict[str, Any]:
    values = record.as_dict()
    row: dict[str, Any] = {name: int(values[name]) for name in COUNTS}
    row.update(
        vin=record.vin,
        day=record.day,
        provider=record.provider,
        dropped=dict(record.dropped),
        longest_gap_s=record.longest_gap_s,
        first_ts=record.first_ts,
        last_ts=record.last_ts,
        cleaned_at=cleaned_at,
    )
    return row


def upsert_clean_quality(
    engine: Engine, records: Iterable[QualityRecord], *, now: datetime | None = None
) -> int:
    """Replace the rows of these (VIN, day)s with ``records``, in one transaction; returns the
    number of rows written."""
    cleaned_at = now or datetime.now(UTC)
    rows = [_row(record, cleaned_at) for record in records]
    if not rows:
        return 0
    by_day: dict[date, list[str]] = {}
    for row in rows:
        by_day.setdefault(row["day"], []).append(row["vin"])
    with connect(engine) as connection:
        for day, vins in sorted(by_day.items()):
            for start in range(0, len(vins), 500):
                chunk = vins[start : start + 500]
                connection.execute(
                    delete(CleanQuality).where(CleanQuality.day == day, CleanQuality.vin.in_(chunk))
                )
        connection.execute(insert(CleanQuality), rows)
    return len(rows)


def clean_quality_rows(
    engine: Engine,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    vins: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The stored records in the range (every one when no bound is given), by day then VIN."""
    query = select(CleanQuality).order_by(CleanQuality.day, CleanQuality.vin)
    if date_from is not None:
        query = query.where(CleanQuality.day >= date_from)
    if date_to is not None:
        query = query.where(CleanQuality.day <= date_to)
    if vins:
        query = query.where(CleanQuality.vin.in_(sorted(set(vins))))
    columns = [c.name for c in CleanQuality.__table__.columns]
    with connect(engine, begin=False) as connection:
        result = connection.execute(query.with_only_columns(*CleanQuality.__table__.columns))
        return [dict(zip(columns, row, strict=True)) for row in result]
