"""Engines for the bibev database: SQLite (embedded, the default) or PostgreSQL.

Connection problems are translated here, once: a URL that cannot work is a ``ConfigError``, a
server that cannot be reached is a ``StorageError``. No message ever contains the password.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from bibev.errors import ConfigError, StorageError

log = logging.getLogger(__name__)

VERSION_TABLE = "alembic_version"

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^/@:\s]*:)[^/@\s]*(?P<tail>@)")


def redact(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***\g<tail>", text)


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL, or a ``ConfigError`` that does not repeat the password."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        # Something that is not a URL at all might be a secret pasted in the wrong place.
        shown = f" {redact(url)!r}" if "://" in url else ""
        raise ConfigError(
            f"invalid database URL{shown}: expected e.g. sqlite:///bibev.db "
            "or postgresql+psycopg://user@host/db"
        ) from None


def display_url(url: str | URL) -> str:
    """The URL as it may be shown to a user or written to a log: password hidden."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return redact(url)


def _is_sqlite_file(url: URL) -> bool:
    database = url.database or ""
    return (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
    )


def _on_sqlite_connect(wal: bool) -> Callable[[sqlite3.Connection, Any], None]:
    def configure(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            if wal:
                # Readers do not block the writer; some file systems (network shares) refuse
                # WAL, and SQLite then simply keeps its rollback journal.
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    return configure


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for a SQLite file, its folder is created when missing."""
    parsed = parse_url(url)
    if _is_sqlite_file(parsed):
        folder = Path(parsed.database or "").parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {folder} for the database: {exc.strerror}") from exc
    try:
        engine = create_engine(parsed)
    except NoSuchModuleError:
        raise ConfigError(
            f"unknown database kind {parsed.drivername!r} in {display_url(parsed)}: "
            "use sqlite:///… or postgresql+psycopg://…"
        ) from None
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"the database driver {exc.name!r} for {display_url(parsed)} is not installed "
            "(for PostgreSQL: pip install 'bibev[postgres]')"
        ) from None
    except ArgumentError as exc:
        raise ConfigError(
            f"invalid database URL {display_url(parsed)}: {redact(str(exc))}"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _on_sqlite_connect(wal=_is_sqlite_file(parsed)))
    return engine


def storage_error(engine: Engine, exc: DBAPIError, doing: str) -> StorageError:
    """A ``StorageError`` for a database failure, with the driver's first line, password hidden."""
    reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc).__name__
    password = engine.url.password
    if password:
        reason = reason.replace(str(password), "***")
    return StorageError(f"{doing} {display_url(engine.url)}: {redact(reason)}")


@contextmanager
def connect(engine: Engine, *, begin: bool = True) -> Iterator[Connection]:
    """A connection (in a transaction when ``begin``); driver errors become ``StorageError``."""
    try:
        connection = engine.connect()
    except DBAPIError as exc:
        raise storage_error(engine, exc, "cannot connect to the database") from exc
    try:
        with connection:
            if begin:
                with connection.begin():
                    yield connection
            else:
                yield connection
    except DBAPIError as exc:
        raise storage_error(engine, exc, "database error on") from exc


def has_table(engine: Engine, name: str) -> bool:
    """Whether table ``name`` exists (a migration may not have created it yet)."""
    with connect(engine, begin=False) as connection:
        return inspect(connection).has_table(name)


def missing_file(url: str) -> bool:
    """``url`` names a SQLite file that does not exist (connecting would create it)."""
    parsed = parse_url(url)
    return _is_sqlite_file(parsed) and not Path(parsed.database or "").exists()


def open_database(url: str, *, upgrade_if_empty: bool = True, create: bool = True) -> Engine:
    """An engine on a database at the head revision.

    A fresh database (no ``alembic_version`` table) is upgraded to head when ``upgrade_if_empty``,
    so that commands work with zero set-up; a database behind head is refused with a
    ``ConfigError`` that says to run ``bibev db upgrade``. A command that only reads passes
    ``create=False``: a SQLite file that does not exist is then a ``ConfigError`` instead of a
    new, empty database (a mistyped path would otherwise show nothing, and leave a file).
    """
    from bibev.db import migrate

    if not create and missing_file(url):
        raise ConfigError(
            f"no bibev database at {display_url(parse_url(url))}: the first command that writes "
            "makes it (or `bibev db upgrade`)"
        )
    engine = make_engine(url)
    try:
        fresh = not has_table(engine, VERSION_TABLE)
        current = migrate.current(engine)
        heads = migrate.heads()
        if fresh and upgrade_if_empty:
            log.info("new database %s: creating the bibev tables", display_url(engine.url))
            current = migrate.upgrade(engine, "head")
        if sorted(current) != sorted(heads):
            raise ConfigError(_not_at_head(current, heads, migrate.known_revisions()))
    except BaseException:
        engine.dispose()
        raise
    return engine


def _not_at_head(current: list[str], heads: list[str], known: list[str]) -> str:
    shown_current = ", ".join(current) or "base (empty)"
    shown_heads = ", ".join(heads)
    if any(rev not in known for rev in current):
        return (
            f"database is at revision {shown_current}, which this bibev version does not know "
            f"(head is {shown_heads}): upgrade bibev"
        )
    return f"database is at revision {shown_current}, head is {shown_heads}: run `bibev db upgrade`"
