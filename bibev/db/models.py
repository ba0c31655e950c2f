"""The bibev tables, as SQLAlchemy 2.0 typed models.

Every model lives in (or is imported by) this module, so that ``Base.metadata`` is the whole
schema: ``migrations/env.py`` compares it with the database to autogenerate revisions, and the
tests check that the migrations and the models agree.

Types are chosen to behave the same on SQLite and PostgreSQL: ``sqlalchemy.JSON`` for
documents and ``UTCDateTime`` for instants, which stores UTC and always reads back a
timezone-aware ``datetime`` (SQLite itself has no time zones).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint and index names, so that migrations never depend on a backend's defaults.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_STATUSES = ("running", "ok", "partial", "failed")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant, stored in UTC.

    Naive datetimes are refused: bibev works in UTC and a naive value is a bug upstream.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware value")
        value = value.astimezone(UTC)
        # SQLite's DATETIME text has no offset: store the UTC wall time.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Vehicle(Base):
    """A vehicle bibev has heard of, with its battery's capacities."""

    __tablename__ = "vehicles"

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), index=True)
    make: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    nominal_capacity_kwh: Mapped[float | None] = mapped_column(Float)
    net_capacity_kwh: Mapped[float | None] = mapped_column(Float)
    first_seen: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]


class IngestCursor(Base):
    """Where a provider's pull stopped; ``vin == ""`` is the fleet-wide cursor.

    The core writes it only after the batch it covers is durably stored.
    """

    __tablename__ = "ingest_cursors"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    vin: Mapped[str] = mapped_column(String(17), primary_key=True, default="")
    cursor: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class Run(Base):
    """One execution of a bibev command: what, when, how it ended, and what it did."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'ok', 'partial', 'failed')",
            name="status",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    command: Mapped[str] = mapped_column(String(200), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    bibev_version: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)


from bibev.db.quality import CleanQuality as CleanQuality  # noqa: E402
from bibev.db.segments import Segment as Segment  # noqa: E402
