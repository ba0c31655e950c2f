"""Which (VIN, day)s a stage changed, kept for the stage after it: ``changes/{layer}/*.json``.

A writer (``compact``, ``transform clean``) notes the (VIN, day)s it is about to write in a
*running* note before it writes them, and once done replaces it with a note naming only the
files it wrote (``note``). Every run of the next stage reads the notes of its input layer
(``pending``: ``--changed`` runs take their (VIN, day)s as their selection) and, once its files
and database rows are stored, removes from them the (VIN, day)s it brought up to date
(``settle``): a note whose (VIN, day)s are all done goes, one partly done is replaced by a note
of the rest. A running note is left to its writer while it is younger than
``RUNNING_STALE`` (its files may still come); older, its writer died and it is settled like
any other. So a note is there before its files change and leaves only after what is made from
them: a crash or an overlap anywhere means doing some partitions again, never missing one.

A file that is not a readable note goes to ``quarantine/changes/`` with the reason (whatever it
named is then unknown: a run over every day covers it).
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bibev.errors import ConfigError, DataContractError, StorageError
from bibev.storage import Storage, validate_vin

logger = logging.getLogger(__name__)

Partition = tuple[str, date]
FOLDER = "changes"
#: How long a writer's running note is left to it (as long as its locks are).
RUNNING_STALE = timedelta(hours=1)
_STAMP = "%Y%m%dT%H%M%S%fZ"
_RUNNING = "-running"


@dataclass(frozen=True)
class Note:
    """One note: its key, the (VIN, day)s it names, who wrote it and when."""

    key: str
    partitions: frozenset[Partition]
    by: str
    written_at: datetime
    running: bool = False

    def left_to_writer(self, now: datetime) -> bool:
        return self.running and now - self.written_at < RUNNING_STALE


@dataclass(frozen=True)
class Pending:
    """The notes of a layer, read at one moment."""

    layer: str
    notes: tuple[Note, ...] = ()

    @property
    def partitions(self) -> frozenset[Partition]:
        return frozenset().union(*(n.partitions for n in self.notes))


def note(
    storage: Storage,
    layer: str,
    partitions: Iterable[Partition],
    *,
    by: str,
    running: bool = False,
) -> str | None:
    """Write a note naming ``partitions`` of ``layer`` (nothing when there are none); its key.
    ``running``: the writer is about to write them, and removes the note itself when done."""
    named = sorted({(vin, day) for vin, day in partitions}, key=lambda p: (p[1], p[0]))
    if not named:
        return None
    stamp = datetime.now(UTC).strftime(_STAMP)
    key = f"{FOLDER}/{layer}/{stamp}-{uuid.uuid4().hex[:12]}{_RUNNING if running else ''}.json"
    head = json.dumps({"layer": layer, "by": by})[:-1]
    pairs = ",\n".join(json.dumps([vin, f"{day}"]) for vin, day in named)
    storage.write_text(key, f'{head}, "partitions": [\n{pairs}\n]}}\n')
    return key


def pending(storage: Storage, layer: str) -> Pending:
    """Every note of ``layer`` now (the ``*.json`` files of ``changes/{layer}/``; other files
    are left alone). One that cannot be read is moved to quarantine, with a warning."""
    folder = f"{FOLDER}/{layer}/"
    notes = []
    for key in storage.list(folder.rstrip("/")):
        name = key.removeprefix(folder)
        if "/" in name or not name.endswith(".json"):
            continue
        try:
            data = storage.read_bytes(key)
        except StorageError:
            if storage.exists(key):
                raise
            continue  # settled by another run since it was listed
        try:
            notes.append(_read(key, name, data))
        except (KeyError, ValueError, TypeError, RecursionError, DataContractError) as exc:
            _quarantine(storage, key, data, f"not a note of changed (VIN, day)s: {exc}")
    return Pending(layer, tuple(notes))


def notes_for(storage: Storage, layer: str, *, changed: bool, everything: bool) -> Pending:
    """The notes of ``layer`` a run reads before it lists its partitions, so that every file
    a note names is there already (``changed`` runs take their selection from them)."""
    if changed and not everything:
        raise ConfigError(
            "--changed picks its own days and vehicles: no --date, --from, --to or --vin"
        )
    return pending(storage, layer)


def settle(storage: Storage, notes: Pending, done: set[Partition]) -> int:
    """Remove the (VIN, day)s ``done`` from ``notes`` (see the module doc); how many noted
    (VIN, day)s still wait, which is logged."""
    now = datetime.now(UTC)
    waiting: set[Partition] = set()
    for item in notes.notes:
        if item.left_to_writer(now):
            waiting |= item.partitions
            continue
        left = item.partitions - done
        if left != item.partitions or not left:
            note(storage, notes.layer, left, by=item.by)  # the rest first: nothing is lost
            storage.delete(item.key)
        waiting |= left
    if waiting:
        logger.info(
            "%d changed (VIN, day)s of %s wait in %s/%s/ (for a --changed run)",
            len(waiting),
            notes.layer,
            FOLDER,
            notes.layer,
        )
    return len(waiting)


def around(partitions: Iterable[Partition]) -> set[Partition]:
    """Each (VIN, day) with the same VIN's day before and day after: a stage's output of a day
    reads its input of the two days around it."""
    one = timedelta(days=1)
    return {(vin, day + shift) for vin, day in partitions for shift in (-one, 0 * one, one)}


def existing(storage: Storage, layer: str, partitions: Iterable[Partition]) -> list[Partition]:
    """Those of ``partitions`` that have a file in ``layer`` (one listing per day), by day then
    VIN."""
    days: dict[date, set[str]] = {}
    for vin, day in partitions:
        days.setdefault(day, set()).add(vin)
    found = []
    for day in sorted(days):
        present = storage.day_keys(layer, day)
        found += [(vin, day) for vin in sorted(days[day]) if vin in present]
    return found


def _read(key: str, name: str, data: bytes) -> Note:
    body = json.loads(data)
    stamp = name.split("-", 1)[0]
    written_at = datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)
    partitions = frozenset(
        (validate_vin(vin), date.fromisoformat(day)) for vin, day in body["partitions"]
    )
    by = body.get("by")
    running = name.endswith(f"{_RUNNING}.json")
    return Note(key, partitions, by if isinstance(by, str) else "", written_at, running)


def _quarantine(storage: Storage, key: str, data: bytes, reason: str) -> None:
    now = datetime.now(UTC)
    record = {
        "reason": reason,
        "note": key,
        "content_base64": base64.b64encode(data).decode("ascii"),
        "quarantined_at": now.isoformat(),
    }
    name = f"{now:%H%M%S%f}-{uuid.uuid4().hex[:12]}.json"
    storage.write_text(storage.quarantine_key("changes", now.date(), name), json.dumps(record))
    storage.delete(key)
    logger.warning(
        "moved %s to quarantine/changes/: %s; what it named is unknown, a run over every day "
        "covers it",
        key,
        reason,
    )
