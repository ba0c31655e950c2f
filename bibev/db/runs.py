"""The ``runs`` table: one row per command that does work.

``record_run`` writes the row with status ``running`` when the command starts and completes it
when the command ends: ``ok``, ``partial`` (set by the command, or a ``PartialFailure``) or
``failed`` (an exception escaped; ``error`` holds its one-line message, never a traceback).
A killed command leaves its row ``running``: read back, such a row whose process on this host
has ended says ``died`` (``run_as_dict``).

Parameters are stored as JSON and never hold a secret: a parameter whose name contains one of
``SECRET_WORDS`` is dropped, a ``SecretStr`` is dropped whatever its name, and the password of
any ``scheme://user:password@host`` URL in a value is replaced by ``***``.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import PurePath
from typing import Any

from pydantic import SecretBytes, SecretStr
from sqlalchemy import CursorResult, Engine, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

import bibev
from bibev._locks import process_gone
from bibev.db.engine import connect, has_table, redact, storage_error
from bibev.db.models import Run
from bibev.errors import PartialFailure

log = logging.getLogger(__name__)

SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "key",
    "credential",
    "auth",
    "cookie",
    "private",
)
FINAL_STATUSES = ("ok", "partial", "failed")
MAX_ERROR_CHARS = 2000


def _utcnow() -> datetime:
    return datetime.now(UTC)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def safe_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe parameters with every secret removed (see the module docstring)."""
    return _to_json(parameters, keep_secrets=False)


def _is_secret(name: Any, value: Any) -> bool:
    return isinstance(value, SecretStr | SecretBytes) or is_secret_name(str(name))


def _to_json(value: Any, *, keep_secrets: bool) -> Any:
    """``value`` as JSON types; unless ``keep_secrets``, secrets are dropped at any depth."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if keep_secrets else redact(value)
    if isinstance(value, Mapping):
        return {
            str(k): _to_json(v, keep_secrets=keep_secrets)
            for k, v in value.items()
            if keep_secrets or not _is_secret(k, v)
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [
            _to_json(v, keep_secrets=keep_secrets)
            for v in value
            if keep_secrets or not isinstance(v, SecretStr | SecretBytes)
        ]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _to_json(value.value, keep_secrets=keep_secrets)
    if isinstance(value, PurePath):
        return str(value)
    return str(value) if keep_secrets else redact(str(value))


def error_line(exc: BaseException) -> str:
    """The exception's message on one line (its type when it has none), passwords hidden."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = lines[0] if lines else type(exc).__name__
    return redact(message)[:MAX_ERROR_CHARS]


@dataclass
class RunRecorder:
    """The running command's handle on its row: fill ``counts``; set ``status`` to ``partial``."""

    id: int
    counts: dict[str, Any] = field(default_factory=dict)
    _status: str = "ok"

    @property
    def status(self) -> str:
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        if value not in FINAL_STATUSES:
            raise ValueError(
                f"run status must be one of {', '.join(FINAL_STATUSES)}, not {value!r}"
            )
        self._status = value


def _identity() -> dict[str, Any]:
    return {"bibev_version": bibev.__version__, "host": socket.gethostname(), "pid": os.getpid()}


def _inserted_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - every supported backend reports it
        raise RuntimeError("the database did not report the new run's id")
    return int(key[0])


@contextmanager
def record_run(
    engine: Engine,
    command: str,
    parameters: Mapping[str, Any],
    *,
    now: Callable[[], datetime] = _utcnow,
) -> Iterator[RunRecorder]:
    """Record one run of ``command``; any exception is recorded and re-raised."""
    values = {"command": command, "parameters": safe_parameters(parameters), "status": "running"}
    with connect(engine) as connection:
        run_id = _inserted_id(
            connection.execute(
                insert(Run).values(**values, started_at=now(), counts={}, **_identity())
            )
        )
    recorder = RunRecorder(id=run_id)
    try:
        yield recorder
    except BaseException as exc:
        status = "partial" if isinstance(exc, PartialFailure) else "failed"
        _finish(engine, recorder, status, error_line(exc), now, raise_errors=False)
        raise
    _finish(engine, recorder, recorder.status, None, now, raise_errors=True)


def _finish(
    engine: Engine,
    recorder: RunRecorder,
    status: str,
    error: str | None,
    now: Callable[[], datetime],
    *,
    raise_errors: bool,
) -> None:
    statement = (
        update(Run)
        .where(Run.id == recorder.id)
        .values(
            ended_at=now(),
            status=status,
            counts=_to_json(recorder.counts, keep_secrets=True),
            error=error,
        )
    )
    try:
        with engine.begin() as connection:
            connection.execute(statement)
    except DBAPIError as exc:
        if raise_errors:
            raise storage_error(engine, exc, "cannot record the run in") from exc
        # The command's own exception matters more: keep it, log this one.
        log.error("could not record the end of run %s: %s", recorder.id, error_line(exc))


def log_finished_run(
    engine: Engine,
    command: str,
    parameters: Mapping[str, Any],
    *,
    started_at: datetime,
    counts: Mapping[str, Any] | None = None,
    now: Callable[[], datetime] = _utcnow,
) -> int | None:
    """Record a run that has already ended well, if the ``runs`` table exists (``db upgrade``
    and ``db downgrade`` create and drop it); returns the row id or ``None``."""
    if not has_table(engine, Run.__tablename__):
        return None
    values = {
        "command": command,
        "parameters": safe_parameters(parameters),
        "status": "ok",
        "started_at": started_at,
        "ended_at": now(),
        "counts": _to_json(dict(counts or {}), keep_secrets=True),
        **_identity(),
    }
    with connect(engine) as connection:
        return _inserted_id(connection.execute(insert(Run).values(**values)))


def recent_runs(engine: Engine, limit: int = 20) -> list[Run]:
    """The latest ``limit`` runs, newest first (detached objects, every column loaded)."""
    try:
        with Session(engine, expire_on_commit=False) as session:
            return list(session.scalars(select(Run).order_by(Run.id.desc()).limit(limit)))
    except DBAPIError as exc:
        raise storage_error(engine, exc, "cannot read the runs from") from exc


def run_as_dict(run: Run) -> dict[str, Any]:
    """A run as a JSON-ready dict (instants in ISO 8601). A run still ``running`` whose
    process on this host has ended (killed, or the machine restarted) shows as ``died``."""
    status = run.status
    if status == "running" and process_gone(run.host, run.pid):
        status = "died"
    return {
        "id": run.id,
        "command": run.command,
        "parameters": run.parameters,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        "status": status,
        "counts": run.counts,
        "error": run.error,
        "bibev_version": run.bibev_version,
        "host": run.host,
        "pid": run.pid,
    }
