"""Advisory locks on a storage root, so that two runs of one stage for one day never interleave.

A lock is one small JSON file, ``_locks/{name}.lock``, naming its holder (host, pid, since). It is
taken with an exclusive create, which only one contender can win:

* local disk: ``link()`` of a complete file into place (``O_CREAT | O_EXCL`` without links);
* S3: ``PutObject`` with ``If-None-Match: *`` (a conditional write);
* memory: a process-wide mutex around check-then-write.

A holder that crashed leaves its file behind. Once the file is older than ``stale_after`` seconds
the next contender breaks it, again with a compare-and-swap so that two breakers cannot both win:
``PutObject`` with ``If-Match: <etag>`` on S3, and on local disk a rename aside that is checked
against the file it judged stale. Releasing removes the file only if it still names this holder.

This module is private to ``bibev.storage``, the only user of fsspec.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bibev.errors import LockedError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock. ``since`` is the holder's own clock, in seconds since the epoch."""

    name: str
    host: str
    pid: int
    since: float
    token: str

    @classmethod
    def me(cls, name: str, now: float) -> Holder:
        return cls(name, socket.gethostname(), os.getpid(), now, uuid.uuid4().hex)

    def to_bytes(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes, name: str, modified: float) -> Holder:
        """A holder from a lock file; an unreadable file (torn or foreign) counts as held by an
        unknown process since the file's modification time."""
        try:
            raw = json.loads(data)
            return cls(
                name, str(raw["host"]), int(raw["pid"]), float(raw["since"]), str(raw["token"])
            )
        except (ValueError, KeyError, TypeError):
            return cls(name, "unknown host", -1, modified, "")

    def is_gone(self) -> bool:
        """Whether the holder was a process on this host that no longer runs (it crashed):
        its lock can be taken over at once instead of waiting until it is stale."""
        return process_gone(self.host, self.pid)

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"host {self.host}, pid {self.pid}, since {since}"


def process_gone(host: str | None, pid: int | None) -> bool:
    """Whether process ``pid`` of ``host`` is known to have ended: only a process of this host
    can be checked (anything else, or a pid in use again, counts as running)."""
    if os.name != "posix" or host != socket.gethostname() or not pid or pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


@dataclass(frozen=True)
class LockFile:
    data: bytes
    version: str  # what a compare-and-swap compares: an S3 ETag, an inode, a digest
    modified: float


class LockBackend(Protocol):
    def create(self, path: str, data: bytes) -> bool:
        """Create ``path`` holding ``data`` unless it exists; True when this call created it."""

    def read(self, path: str) -> LockFile | None:
        """The lock file, or None when there is none."""

    def replace(self, path: str, data: bytes, version: str) -> bool:
        """Overwrite ``path`` only if it is still at ``version``; True when this call did."""

    def remove(self, path: str, version: str) -> None:
        """Remove ``path`` only if it is still at ``version``."""


class LocalLocks:
    """Lock files on a local (or network-mounted POSIX) file system."""

    def create(self, path: str, data: bytes) -> bool:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Write a complete file aside, then link it into place: link() fails if the lock exists,
        # and a reader never sees a lock file without its holder.
        staged = f"{path}.{uuid.uuid4().hex}.new"
        self._write_new(staged, data)
        try:
            os.link(staged, path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: an exclusive create instead
            try:
                self._write_new(path, data)
            except FileExistsError:
                return False
        finally:
            os.unlink(staged)
        return True

    @staticmethod
    def _write_new(path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, path: str) -> LockFile | None:
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                data = fh.read()
        except FileNotFoundError:
            return None
        return LockFile(data, _version(st, data), st.st_mtime)

    def replace(self, path: str, data: bytes, version: str) -> bool:
        aside = f"{path}.{uuid.uuid4().hex}.broken"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return self.create(path, data)
        moved = self.read(aside)
        if moved is None or moved.version != version:
            # Someone else replaced the stale file first: put theirs back, never overwriting.
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
            os.unlink(aside)
            return False
        os.unlink(aside)
        return self.create(path, data)

    def remove(self, path: str, version: str) -> None:
        current = self.read(path)
        if current is not None and current.version == version:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _version(st: os.stat_result, data: bytes) -> str:
    # Inode numbers are reused at once; the holder's random token in the content is not.
    return f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{hashlib.sha256(data).hexdigest()}"


class S3Locks:
    """Lock objects on S3 through conditional writes (``If-None-Match`` / ``If-Match``)."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def create(self, path: str, data: bytes) -> bool:
        try:
            self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        except OSError as exc:
            if _s3_code(exc) in {"PreconditionFailed", "ConditionalRequestConflict"}:
                return False
            raise
        return True

    def read(self, path: str) -> LockFile | None:
        # Head first, then body: the body is at least as new as the ETag, so a lock judged
        # stale from its body can only be replaced if the ETag still matches that stale file.
        try:
            info = self.fs.info(path)
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        modified = info.get("LastModified")
        return LockFile(data, str(info["ETag"]), modified.timestamp() if modified else 0.0)

    def replace(self, path: str, data: bytes, version: str) -> bool:
        try:
            self.fs.pipe_file(path, data, IfMatch=version)
        except (FileNotFoundError, FileExistsError):
            return False
        except OSError as exc:
            if _s3_code(exc) in {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"}:
                return False
            raise
        return True

    def remove(self, path: str, version: str) -> None:
        bucket, key, _ = self.fs.split_path(path)
        try:
            self.fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=version)
        except FileNotFoundError:
            pass
        except OSError as exc:
            code = _s3_code(exc)
            if code in {"PreconditionFailed", "NoSuchKey"}:
                return
            if code not in {"NotImplemented", "InvalidArgument"}:
                raise
            # A store without conditional deletes: the holder check in release() must do.
            self.fs.rm_file(path)
        finally:
            self.fs.invalidate_cache(path)


def _s3_code(exc: BaseException) -> str | None:
    """The S3 error code behind an exception translated by s3fs, when there is one."""
    cause = exc.__cause__
    response = getattr(cause, "response", None) or getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


class MemoryLocks:
    """Locks on the in-process memory file system (tests, demos): one mutex makes them atomic."""

    _mutex = threading.Lock()

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def create(self, path: str, data: bytes) -> bool:
        with self._mutex:
            if self.fs.exists(path):
                return False
            self.fs.pipe_file(path, data)
            return True

    def read(self, path: str) -> LockFile | None:
        with self._mutex:
            try:
                data = self.fs.cat_file(path)
            except FileNotFoundError:
                return None
            created = self.fs.info(path).get("created")
        modified = created.timestamp() if isinstance(created, datetime) else float(created or 0)
        return LockFile(data, data.hex(), modified)

    def replace(self, path: str, data: bytes, version: str) -> bool:
        with self._mutex:
            try:
                if self.fs.cat_file(path).hex() != version:
                    return False
            except FileNotFoundError:
                pass
            self.fs.pipe_file(path, data)
            return True

    def remove(self, path: str, version: str) -> None:
        with self._mutex, contextlib.suppress(FileNotFoundError):
            if self.fs.cat_file(path).hex() == version:
                self.fs.rm_file(path)


def acquire(
    backend: LockBackend,
    path: str,
    name: str,
    *,
    stale_after: float,
    wait: float,
    clock: Callable[[], float] = time.time,
) -> Holder:
    """Take the lock at ``path`` or raise ``LockedError`` naming its holder.

    Waits up to ``wait`` seconds for a live holder to finish; breaks a holder older than
    ``stale_after`` seconds with a warning."""
    deadline = time.monotonic() + wait
    while True:
        me = Holder.me(name, clock())
        if backend.create(path, me.to_bytes()):
            return me
        current = backend.read(path)
        if current is None:
            continue  # released between our create and read: try again at once
        holder = Holder.parse(current.data, name, current.modified)
        age = clock() - holder.since
        gone = holder.is_gone()
        if age > stale_after or gone:
            logger.warning(
                "breaking %s lock %r (%s; %.0f s old, stale after %.0f s)",
                "a crashed process's" if gone else "stale",
                name,
                holder.describe(),
                age,
                stale_after,
            )
            if backend.replace(path, me.to_bytes(), current.version):
                return me
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _locked(holder, age, stale_after)
        time.sleep(min(remaining, max(0.05, min(1.0, wait / 20))))


def release(backend: LockBackend, path: str, holder: Holder) -> None:
    """Remove the lock if it is still ours; if another run broke it, leave theirs alone."""
    current = backend.read(path)
    if current is None:
        logger.warning("lock %r was already gone when released", holder.name)
        return
    if Holder.parse(current.data, holder.name, current.modified).token != holder.token:
        logger.warning("lock %r was broken by another run while held; leaving theirs", holder.name)
        return
    backend.remove(path, current.version)


def _locked(holder: Holder, age: float, stale_after: float) -> LockedError:
    error = LockedError(
        f"lock {holder.name!r} is held by another run ({holder.describe()}, {age:.0f} s ago); "
        f"wait for it to finish (a crashed holder's lock is broken after {stale_after:.0f} s)"
    )
    error.holder = holder  # type: ignore[attr-defined]
    return error


__all__ = [
    "Holder",
    "LocalLocks",
    "LockBackend",
    "MemoryLocks",
    "S3Locks",
    "acquire",
    "release",
]
