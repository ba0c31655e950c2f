"""Alembic, driven from code: no alembic.ini, the database URL comes from bibev's settings.

Every function takes the database as a URL or as an open ``Engine`` (the tests and
``open_database`` pass an engine, which is left open).
"""

from __future__ import annotations

import logging
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

import bibev
from bibev.db.engine import connect, make_engine
from bibev.db.models import Base
from bibev.db.runs import log_finished_run
from bibev.errors import ConfigError

log = logging.getLogger(__name__)

Database = str | Engine


def migrations_dir() -> Path:
    """The ``migrations/`` folder: beside the package in a source checkout, inside it in a wheel."""
    package = Path(bibev.__file__).resolve().parent
    for candidate in (package.parent / "migrations", package / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError(
        f"the bibev migrations folder is missing (looked beside and inside {package})"
    )


def alembic_config(
    url: str | None = None,
    *,
    connection: Connection | None = None,
    script_location: Path | None = None,
) -> Config:
    """An Alembic ``Config`` built in code, quiet (Alembic's own messages go to the log)."""
    config = Config(cmd_opts=Namespace(quiet=True))
    config.set_main_option("script_location", str(script_location or migrations_dir()))
    if url is not None:
        # ConfigParser interpolates "%": a percent-encoded password must be escaped.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _engine(database: Database) -> Iterator[Engine]:
    if isinstance(database, Engine):
        yield database
        return
    engine = make_engine(database)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _alembic_errors() -> Iterator[None]:
    try:
        yield
    except (CommandError, RevisionError) as exc:
        raise ConfigError(f"migration: {exc}") from exc


def _current(connection: Connection) -> list[str]:
    return sorted(MigrationContext.configure(connection).get_current_heads())


def current(database: Database) -> list[str]:
    """The revisions the database is at (empty for a fresh database)."""
    with _engine(database) as engine, connect(engine, begin=False) as connection:
        return _current(connection)


def heads(script_location: Path | None = None) -> list[str]:
    """The head revisions of the migrations this bibev ships."""
    script = ScriptDirectory.from_config(alembic_config(script_location=script_location))
    return sorted(script.get_heads())


def known_revisions(script_location: Path | None = None) -> list[str]:
    """Every revision id in the migrations folder."""
    script = ScriptDirectory.from_config(alembic_config(script_location=script_location))
    return [rev.revision for rev in script.walk_revisions()]


# The key of the PostgreSQL advisory lock that migrations hold (any fixed 64-bit number).
MIGRATION_LOCK_KEY = 0x62696265762D6462  # "bibev-db"


def _lock_for_migration(connection: Connection) -> None:
    """Hold the database's migration lock until ``connection``'s transaction ends, so that two
    processes never migrate at once (two cron jobs opening a new database together: the second
    waits, then finds the tables made and has nothing to do). PostgreSQL: a transaction-level
    advisory lock. SQLite: the write lock, taken now (``BEGIN IMMEDIATE``) rather than at the
    first write; it also makes the DDL transactional. Other databases: no lock."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    elif dialect == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _run(database: Database, action: Any, rev: str) -> list[str]:
    with _engine(database) as engine, connect(engine) as connection, _alembic_errors():
        _lock_for_migration(connection)
        action(alembic_config(connection=connection), rev)
        return _current(connection)


def upgrade(database: Database, rev: str = "head") -> list[str]:
    """Apply migrations up to ``rev``; returns the revisions the database is at afterwards."""
    return _run(database, command.upgrade, rev)


def downgrade(database: Database, rev: str) -> list[str]:
    """Revert migrations down to ``rev`` (``base`` removes every bibev table)."""
    return _run(database, command.downgrade, rev)


def steps_between(lower: list[str], upper: list[str]) -> int:
    """How many revisions lie above ``lower`` up to and including ``upper``."""
    script = ScriptDirectory.from_config(alembic_config())
    with _alembic_errors():
        return len(list(script.iterate_revisions(tuple(upper), tuple(lower))))


@dataclass(frozen=True)
class Migration:
    """What ``migrate_recorded`` did: the revisions before and after, and how many it applied."""

    before: list[str]
    after: list[str]
    steps: int


def migrate_recorded(url: str, direction: Literal["upgrade", "downgrade"], rev: str) -> Migration:
    """``upgrade`` or ``downgrade`` ``url`` to ``rev`` and log it in ``runs`` (when that table
    exists afterwards: the first upgrade creates it, a downgrade to base drops it)."""
    engine = make_engine(url)
    try:
        started = datetime.now(UTC)
        before = current(engine)
        after = upgrade(engine, rev) if direction == "upgrade" else downgrade(engine, rev)
        lower, upper = (before, after) if direction == "upgrade" else (after, before)
        steps = steps_between(lower, upper)
        log_finished_run(
            engine,
            f"db {direction}",
            {"revision": rev},
            started_at=started,
            counts={"steps": steps},
        )
    finally:
        engine.dispose()
    return Migration(before=before, after=after, steps=steps)


def _next_rev_id(script_location: Path | None) -> str | None:
    # Numbered revisions keep versions/ in order; anything else falls back to Alembic's ids.
    current_heads = heads(script_location)
    if len(current_heads) == 1 and current_heads[0].isdigit():
        return f"{int(current_heads[0]) + 1:04d}"
    return None


def _check_script_location(folder: Path, autogenerate: bool) -> None:
    """A folder without the files Alembic needs to write a revision is a ``ConfigError`` naming
    the first one missing (Alembic itself fails with a bare ``FileNotFoundError``)."""
    needed = ("script.py.mako", "env.py") if autogenerate else ("script.py.mako",)
    for name in needed:
        if not (folder / name).is_file():
            raise ConfigError(f"{folder} is not an Alembic migrations folder (no {name})")


def revision(
    database: Database | None,
    message: str,
    autogenerate: bool = False,
    *,
    script_location: Path | None = None,
) -> Path:
    """Write a new revision file and return its path.

    With ``autogenerate`` the file holds the difference between the models and the database
    (which must be at head); a ``ConfigError`` says so when there is no difference.
    """
    if script_location is not None:
        _check_script_location(script_location, autogenerate)
    rev_id = _next_rev_id(script_location)
    with _alembic_errors():
        if not autogenerate:
            config = alembic_config(script_location=script_location)
            script = command.revision(config, message=message, rev_id=rev_id)
        else:
            if database is None:
                raise ConfigError("an autogenerated revision needs a database URL")
            with _engine(database) as engine, connect(engine) as connection:
                config = alembic_config(connection=connection, script_location=script_location)
                script = command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
    if not script or isinstance(script, list):
        raise ConfigError("the models match the database: no revision written")
    log.info("wrote revision %s: %s", script.revision, script.path)
    return Path(script.path)


def check_models_match(database: Database) -> list[Any]:
    """The autogenerate difference between the models and the database; empty when in sync."""
    with _engine(database) as engine, connect(engine, begin=False) as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "render_as_batch": connection.dialect.name == "sqlite",
                "target_metadata": Base.metadata,
            },
        )
        return list(compare_metadata(context, Base.metadata))
