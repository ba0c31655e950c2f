"""Models, migrations and engines, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from bibev.db import migrate, segments
from bibev.db.engine import make_engine, open_database
from bibev.db.models import Base, IngestCursor, Run, Vehicle
from bibev.errors import ConfigError, StorageError

INITIAL_TABLES = {"vehicles", "ingest_cursors", "runs"}
BIBEV_TABLES = set(Base.metadata.tables)
HEAD = migrate.heads()[0]
NEXT = f"{int(HEAD) + 1:04d}"
VIN = "5YJ3E1EA7KF000001"


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    assert tables(database_url) == set()
    assert migrate.upgrade(database_url) == [HEAD]
    assert tables(database_url) == BIBEV_TABLES | {"alembic_version"}
    assert migrate.downgrade(database_url, "base") == []
    assert tables(database_url) == {"alembic_version"}
    assert migrate.current(database_url) == []
    assert migrate.upgrade(database_url, "0001") == ["0001"]
    assert tables(database_url) == INITIAL_TABLES | {"alembic_version"}
    assert migrate.upgrade(database_url) == [HEAD]
    assert tables(database_url) == BIBEV_TABLES | {"alembic_version"}
    assert migrate.current(database_url) == migrate.heads() == [HEAD]


def test_models_match_migrations(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert migrate.check_models_match(database_url) == []


def test_models_match_detects_drift(sqlite_database_url: str) -> None:
    engine = open_database(sqlite_database_url)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE vehicles ADD COLUMN colour TEXT"))
    diff = migrate.check_models_match(engine)
    engine.dispose()
    assert [(op[0], op[2], op[3].name) for op in diff] == [("remove_column", "vehicles", "colour")]


@pytest.mark.parametrize(
    ("table", "primary_key", "index_names"),
    [
        ("vehicles", "pk_vehicles", {"ix_vehicles_provider"}),
        ("ingest_cursors", "pk_ingest_cursors", set()),
        ("runs", "pk_runs", {"ix_runs_command", "ix_runs_started_at"}),
    ],
)
def test_constraint_names_follow_the_convention(
    database_engine: Engine, table: str, primary_key: str, index_names: set[str]
) -> None:
    inspector = inspect(database_engine)
    assert inspector.get_pk_constraint(table)["name"] == primary_key
    assert {index["name"] for index in inspector.get_indexes(table)} == index_names


def test_instants_come_back_in_utc(database_engine: Engine) -> None:
    seen = datetime(2025, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=2)))
    with Session(database_engine) as session:
        session.add(Vehicle(vin=VIN, provider="tesla", first_seen=seen, last_seen=seen))
        session.commit()
    with Session(database_engine) as session:
        vehicle = session.get_one(Vehicle, VIN)
        assert vehicle.first_seen == datetime(2025, 3, 1, 21, 30, tzinfo=UTC)
        assert vehicle.first_seen is not None
        assert vehicle.first_seen.tzinfo is UTC
        assert vehicle.net_capacity_kwh is None


def test_naive_instants_are_refused(database_engine: Engine) -> None:
    with Session(database_engine) as session:
        session.add(Vehicle(vin=VIN, provider="tesla", first_seen=datetime(2025, 3, 1)))
        with pytest.raises(StatementError, match="naive datetime"):
            session.commit()


def test_ingest_cursor_key_is_provider_and_vin(database_engine: Engine) -> None:
    now = datetime(2025, 3, 1, tzinfo=UTC)
    with Session(database_engine) as session:
        session.add_all(
            [
                IngestCursor(provider="bmw", cursor="page-7", updated_at=now),
                IngestCursor(provider="bmw", vin=VIN, cursor="2025-03-01T00:00Z", updated_at=now),
            ]
        )
        session.commit()
        assert session.get_one(IngestCursor, ("bmw", "")).cursor == "page-7"
        session.add(IngestCursor(provider="bmw", vin="", cursor="again", updated_at=now))
        with pytest.raises(IntegrityError):
            session.commit()


def test_run_status_is_constrained(database_engine: Engine) -> None:
    row = {"command": "compact", "parameters": {}, "counts": {}, "status": "maybe"}
    with pytest.raises(IntegrityError), database_engine.begin() as connection:
        connection.execute(insert(Run).values(**row, started_at=datetime.now(UTC)))


def test_sqlite_engine_creates_folder_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "bibev.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    engine.dispose()
    assert path.is_file()


def test_sqlite_folder_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(StorageError, match=r"cannot create .*taken for the database"):
        make_engine(f"sqlite:///{tmp_path / 'taken' / 'bibev.db'}")


def test_open_database_upgrades_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bibev.db"
    engine = open_database(f"sqlite:///{path}")
    try:
        assert migrate.current(engine) == [HEAD]
        with engine.connect() as connection:
            assert connection.execute(select(Run)).all() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (None, f"database is at revision base (empty), head is {HEAD}: run `bibev db upgrade`"),
        ("9999", "database is at revision 9999, which this bibev version does not know"),
    ],
)
def test_open_database_refuses_a_database_not_at_head(
    database_url: str, version: str | None, message: str
) -> None:
    migrate.upgrade(database_url)
    migrate.downgrade(database_url, "base")
    if version:
        engine = make_engine(database_url)
        with engine.begin() as connection:
            connection.execute(text(f"INSERT INTO alembic_version VALUES ('{version}')"))
        engine.dispose()
    with pytest.raises(ConfigError) as caught:
        open_database(database_url)
    assert str(caught.value).startswith(message)


def test_open_database_without_auto_upgrade(sqlite_database_url: str) -> None:
    with pytest.raises(ConfigError, match=f"base \\(empty\\), head is {HEAD}"):
        open_database(sqlite_database_url, upgrade_if_empty=False)


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("hunter2-is-not-a-url", ConfigError, "invalid database URL: expected"),
        ("postgresql+psycopg://bob:hunter2@127.0.0.1:notaport/db", ConfigError, "bob:***@"),
        ("nosuchdb://bob:hunter2@localhost/db", ConfigError, "unknown database kind 'nosuchdb'"),
        (
            "postgresql+psycopg://bob:hunter2@127.0.0.1:1/db",
            StorageError,
            "cannot connect to the database postgresql+psycopg://bob:***@127.0.0.1:1/db",
        ),
    ],
)
def test_bad_urls_never_show_the_password(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        open_database(url)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_migrations_dir_is_the_source_folder() -> None:
    folder = migrate.migrations_dir()
    assert folder == Path(__file__).resolve().parent.parent / "migrations"
    assert (folder / "versions" / "0001_initial.py").is_file()


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_revision_is_numbered_after_head(migrations_copy: Path) -> None:
    path = migrate.revision(None, "add segments", script_location=migrations_copy)
    assert path == migrations_copy / "versions" / f"{NEXT}_add_segments.py"
    source = path.read_text()
    assert f"revision: str = '{NEXT}'" in source
    assert f"down_revision: str | Sequence[str] | None = '{HEAD}'" in source
    assert migrate.heads(migrations_copy) == [NEXT]
    assert migrate.heads() == [HEAD]


def test_autogenerate_writes_the_difference(
    migrations_copy: Path, sqlite_database_url: str
) -> None:
    engine = open_database(sqlite_database_url)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE vehicles DROP COLUMN last_seen"))
    path = migrate.revision(engine, "restore last seen", True, script_location=migrations_copy)
    engine.dispose()
    source = path.read_text()
    assert "batch_op.add_column(sa.Column('last_seen', sa.DateTime(timezone=True)" in source
    assert "UTCDateTime" not in source


def test_autogenerate_without_difference_writes_nothing(
    migrations_copy: Path, database_url: str
) -> None:
    before = sorted(p.name for p in (migrations_copy / "versions").glob("*.py"))
    migrate.upgrade(database_url)
    with pytest.raises(ConfigError, match="models match the database"):
        migrate.revision(database_url, "nothing", True, script_location=migrations_copy)
    assert sorted(p.name for p in (migrations_copy / "versions").glob("*.py")) == before


def _open_and_count_runs(url: str, start: Any) -> int:
    start.wait()
    engine = open_database(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM runs")).scalar_one()
    finally:
        engine.dispose()


def test_concurrent_first_opens_of_a_new_database_all_succeed(database_url: str) -> None:
    # Two cron jobs started at once on a new database: one creates the tables, the others
    # wait for it instead of failing on "table already exists".
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(4) as pool:
        start = manager.Barrier(4)  # all four open it at the same moment
        counts = pool.starmap(_open_and_count_runs, [(database_url, start)] * 4)
    assert counts == [0, 0, 0, 0]
    engine = make_engine(database_url)
    try:
        assert migrate.current(engine) == migrate.heads()
    finally:
        engine.dispose()


def _sessions(vin: str, day: date, count: int) -> pl.DataFrame:
    """``count`` idle sessions of ``vin`` on ``day``, one an hour, as the segments stage writes."""
    starts = [datetime.combine(day, dt_time(h), tzinfo=UTC) for h in range(count)]
    return (
        pl.DataFrame(
            {
                "segment_id": [f"{vin}-{day}-{h}" for h in range(count)],
                "vin": vin,
                "day": day,
                "kind": "idle",
                "start": starts,
                "end": [s + timedelta(minutes=30) for s in starts],
                "duration_s": 1800.0,
                "charger_kind": "none",
                "n_points": 3,
                **dict.fromkeys(
                    ("offline", "bridged_gap", "estimated_start", "estimated_end"), False
                ),
                **dict.fromkeys(("open_start", "open_end"), False),
            }
        )
        .with_columns(
            pl.lit(None, pl.Float64).alias(name)
            for name in segments.COLUMNS
            if name.endswith(("_km", "_kwh", "_c", "_kw")) or name in ("soc_start", "soc_end")
        )
        .with_columns(source=pl.lit(None, pl.String))
    )


def test_segments_of_many_days_are_replaced_whole_across_transactions(
    database_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segments, "DAYS_PER_TRANSACTION", 2)
    day1, day2 = date(2025, 3, 1), date(2025, 3, 2)
    vins = ["5YJ3E1EA7KF000001", "5YJ3E1EA7KF000002", "5YJ3E1EA7KF000003"]
    first = [(vin, day, _sessions(vin, day, 3)) for vin in vins for day in (day1, day2)]
    assert segments.replace_segments(database_engine, first) == 18

    again = [
        (vins[0], day1, _sessions(vins[0], day1, 1)),
        (vins[2], day2, _sessions(vins[2], day2, 0)),
    ]
    assert segments.replace_segments(database_engine, again) == 1

    def count(vin: str, day: date) -> int:
        return len(segments.load_segments(database_engine, vin=vin, day=day))

    assert [count(vin, day) for vin in vins for day in (day1, day2)] == [1, 3, 3, 3, 3, 0]
