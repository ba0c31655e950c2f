"""Which (VIN, day)s a stage changed, kept for the stage after it: ``changes/{layer}/*.json``.

``compact`` notes the compressed (VIN, day)s it is about to write, before writing them;
``transform clean`` notes the partitions it is about to clean, and once done replaces that note
with one naming only the files it wrote (``note``). ``--changed`` runs of the next stage read
every note of their input layer (``pending``), redo what those (VIN, day)s touch, and remove
the notes they read once every partition succeeded and its database rows are stored
(``clear``). A note is written before the files it names change, and removed after what is made
from them: a crash anywhere means doing some partitions again, never missing one. A run over
every day and vehicle clears its input layer's notes too: it has redone everything they name.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bibev.errors import ConfigError, DataContractError
from bibev.storage import Storage, validate_vin

logger = logging.getLogger(__name__)

Partition = tuple[str, date]
FOLDER = "changes"


@dataclass(frozen=True)
class Pending:
    """The notes of a layer, read at one moment: their keys and the (VIN, day)s they name."""

    layer: str
    keys: tuple[str, ...] = ()
    partitions: frozenset[Partition] = frozenset()


def note(storage: Storage, layer: str, partitions: Iterable[Partition], *, by: str) -> str | None:
    """Write a note naming ``partitions`` of ``layer`` (nothing when there are none); its key."""
    named = sorted({(vin, day) for vin, day in partitions}, key=lambda p: (p[1], p[0]))
    if not named:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{FOLDER}/{layer}/{stamp}-{uuid.uuid4().hex[:12]}.json"
    head = json.dumps({"layer": layer, "by": by})[:-1]
    pairs = ",\n".join(json.dumps([vin, f"{day}"]) for vin, day in named)
    storage.write_text(key, f'{head}, "partitions": [\n{pairs}\n]}}\n')
    return key


def pending(storage: Storage, layer: str) -> Pending:
    """Every note of ``layer`` now; a note that cannot be read is skipped, with a warning, and
    kept for a person to look at."""
    keys, partitions = [], set()
    for key in storage.list(f"{FOLDER}/{layer}"):
        try:
            partitions |= _read(storage.read_bytes(key))
        except (KeyError, ValueError, TypeError, DataContractError) as exc:
            logger.warning("skipping %s: not a note of changed (VIN, day)s (%s)", key, exc)
            continue
        keys.append(key)
    return Pending(layer, tuple(keys), frozenset(partitions))


def notes_for(storage: Storage, layer: str, *, changed: bool, everything: bool) -> Pending | None:
    """The notes of ``layer`` a run takes: every one for a ``changed`` run and for a run over
    every day and vehicle (it redoes all they name); ``None`` for a run of some days or
    vehicles, which logs how many wait. Read before the run lists its partitions, so that
    every file a note names is there already."""
    if changed and not everything:
        raise ConfigError(
            "--changed picks its own days and vehicles: no --date, --from, --to or --vin"
        )
    if changed or everything:
        return pending(storage, layer)
    remind(storage, layer)
    return None


def remind(storage: Storage, layer: str) -> None:
    """Log how many notes of ``layer`` wait for a ``--changed`` run (a run of some days only
    leaves them)."""
    waiting = len(storage.list(f"{FOLDER}/{layer}"))
    if waiting:
        logger.info(
            "%d note(s) of changed %s days wait in %s/%s/ for a --changed run",
            waiting,
            layer,
            FOLDER,
            layer,
        )


def clear(storage: Storage, notes: Pending) -> None:
    """Remove the notes read (``pending``); notes written since are kept."""
    storage.delete_many(notes.keys)


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


def _read(data: bytes) -> set[Partition]:
    body = json.loads(data)
    return {(validate_vin(vin), date.fromisoformat(day)) for vin, day in body["partitions"]}
