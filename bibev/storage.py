"""The storage root: the only place bibev touches files, and the only user of fsspec.

A root is a local directory, ``file://…``, ``s3://bucket/prefix`` or ``memory://name``. Every
stage speaks in root-relative keys ("/"-separated) built by the layout methods below::

    temp/{VIN}/{YYYY-MM-DD}/{HHMMSSffffff}-{uuid}.jsonl   raw messages (ingest, stream)
    {layer}/YYYY/MM/DD/{VIN}.parquet                       compressed, clean, segments
    quarantine/{stage}/YYYY/MM/DD/{name}                    input a stage could not use
    truth/{name}                                            reference data
    _tmp/, _locks/                                          atomic writes, advisory locks

A VIN is checked (ISO 3779) before it becomes part of a key, and every key is checked before it
becomes a path, so nothing from outside can escape the root. Writes go to ``_tmp/`` first and are
then moved into place: a reader sees the old file or the whole new one, never half of it.
Failures of the layers below (OS, fsspec, botocore, polars) come out as ``StorageError`` naming
the operation and the key. Nothing here contacts S3 before the first real I/O.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import io
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import IO, TYPE_CHECKING, Any

import polars as pl

from bibev import _locks
from bibev.errors import BibevError, ConfigError, DataContractError, StorageError
from bibev.layout import (
    LAYERS,
    RESERVED,
    VIN_PATTERN,
    check_key,
    check_name,
    is_valid_vin,
    parse_day,
    parse_root,
    validate_vin,
)

if TYPE_CHECKING:
    import pyarrow.fs

    from bibev.config import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "LAYERS",
    "RESERVED",
    "VIN_PATTERN",
    "Storage",
    "check_key",
    "is_valid_vin",
    "parse_root",
    "validate_vin",
]

_GLOB_CHARS = re.compile(r"[*?\[]")
_FAILURE_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "pyarrow")
_SECRET_NAMES = ("key", "secret", "token", "password", "aws_secret_access_key", "aws_session_token")


def _is_storage_failure(exc: BaseException) -> bool:
    if isinstance(exc, OSError | pl.exceptions.PolarsError):
        return True
    return type(exc).__module__.split(".")[0] in _FAILURE_MODULES


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"{type(exc).__name__}: {exc}"


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _mtime(info: dict[str, Any]) -> float:
    for field in ("mtime", "LastModified", "created"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return time.time()


class Storage:
    """One storage root. Cheap to build and to pickle (for worker processes): the fsspec file
    system is created on first use, and secrets in ``s3_options`` never reach logs or repr."""

    def __init__(self, url: str, *, s3_options: dict[str, Any] | None = None) -> None:
        self.protocol, self._root, self.url = parse_root(url)
        self._s3_options: dict[str, Any] = copy.deepcopy(s3_options or {})
        self._fs: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        return cls(settings.root, s3_options=settings.s3_options())

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None}

    @property
    def fs(self) -> Any:
        """The fsspec file system (built on first use; no network before that)."""
        if self._fs is None:
            self._fs = self._build_fs()
        return self._fs

    def _build_fs(self) -> Any:
        import fsspec

        if self.protocol != "s3":
            return fsspec.filesystem(self.protocol)
        try:
            import s3fs
        except ImportError:
            raise ConfigError("s3:// roots need s3fs: install bibev[s3]") from None
        # Other processes write to the same bucket: never answer from a stale listing.
        return s3fs.S3FileSystem(**{"use_listings_cache": False, **self._s3_options})

    # -- layout ---------------------------------------------------------------------------

    def temp_key(self, vin: str, day: date, name: str | None = None) -> str:
        vin = validate_vin(vin)
        if name is None:
            name = f"{datetime.now(UTC):%H%M%S%f}-{uuid.uuid4().hex}.jsonl"
        return f"temp/{vin}/{day:%Y-%m-%d}/{check_name(name, 'a temp file name')}"

    def day_key(self, layer: str, day: date, vin: str) -> str:
        return f"{self._day_dir(layer, day)}/{validate_vin(vin)}.parquet"

    def quarantine_key(self, stage: str, day: date, name: str) -> str:
        stage = check_name(stage, "a stage name")
        return f"quarantine/{stage}/{day:%Y/%m/%d}/{check_key(name)}"

    def truth_key(self, name: str) -> str:
        return f"truth/{check_key(name)}"

    def _day_dir(self, layer: str, day: date) -> str:
        if layer not in LAYERS:
            raise DataContractError(f"unknown layer (one of {', '.join(LAYERS)})", value=layer)
        return f"{layer}/{day:%Y/%m/%d}"

    # -- paths ----------------------------------------------------------------------------

    def _p(self, key: str) -> str:
        return f"{self._root.rstrip('/')}/{key}" if key else self._root

    def _key_of(self, path: str) -> str | None:
        base = self._root.rstrip("/") + "/"
        return path[len(base) :] if path.startswith(base) else None

    def fs_path(self, key: str) -> str:
        """The path of ``key`` for ``fs`` and ``pyarrow_filesystem()`` (no scheme)."""
        return self._p(check_key(key, allow_empty=True, allow_reserved=True))

    def uri(self, key: str) -> str:
        """A URL polars/pyarrow can open (a glob is fine): an absolute path, s3://… or memory://…"""
        path = self._p(check_key(key, allow_empty=True))
        if self.protocol == "s3":
            return f"s3://{path}"
        if self.protocol == "memory":
            return f"memory://{path.lstrip('/')}"
        return path

    @contextlib.contextmanager
    def _io(self, operation: str, key: str) -> Iterator[None]:
        try:
            yield
        except BibevError:
            raise
        except Exception as exc:
            if not _is_storage_failure(exc):
                raise
            message = f"cannot {operation} {key!r} in {self.url}: {_describe(exc)}"
            raise StorageError(self._redact(message)) from exc

    def _redact(self, text: str) -> str:
        secrets = [os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_SESSION_TOKEN")]
        for options in (self._s3_options, self._s3_options.get("client_kwargs") or {}):
            secrets += [options.get(name) for name in _SECRET_NAMES]
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    # -- writing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        """A binary file that becomes ``key`` when the block ends without error (written under
        ``_tmp/`` then moved); on error the key is left as it was and the temp file removed."""
        key = check_key(key)
        tmp = self._p(f"_tmp/{uuid.uuid4().hex}-{key.rsplit('/', 1)[-1]}")
        with self._io("write", key):
            fh = self._open_tmp(tmp)
        try:
            with self._io("write", key):
                yield fh
                self._commit(fh, tmp, self._p(key))
        except BaseException:
            with contextlib.suppress(Exception):
                fh.close()
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise
        logger.debug("wrote %s", key)

    def _open_tmp(self, tmp: str) -> IO[bytes]:
        if self.protocol == "file":
            os.makedirs(os.path.dirname(tmp), exist_ok=True)
            return builtins.open(tmp, "wb")
        return self.fs.open(tmp, "wb")  # type: ignore[no-any-return]

    def _commit(self, fh: IO[bytes], tmp: str, final: str) -> None:
        if self.protocol != "file":
            fh.close()
            self.fs.mv(tmp, final)  # on S3 a copy then a delete: the object appears whole
            return
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        parent = os.path.dirname(final)
        for attempt in range(3):
            os.makedirs(parent, exist_ok=True)
            try:
                os.replace(tmp, final)
                break
            except FileNotFoundError:
                # A concurrent delete pruned the empty parent between makedirs and replace.
                if attempt == 2 or not os.path.exists(tmp):
                    raise
        _fsync_dir(parent)

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.writer(key) as fh:
            fh.write(data)

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode("utf-8"))

    def write_parquet(self, key: str, df: pl.DataFrame, **write_kwargs: Any) -> int:
        """Write ``df`` atomically (zstd, statistics on by default); returns the bytes written."""
        options: dict[str, Any] = {"compression": "zstd", "statistics": True, **write_kwargs}
        with self.writer(key) as fh:
            df.write_parquet(fh, **options)
            written = fh.tell()
        return written

    # -- reading --------------------------------------------------------------------------

    def read_bytes(self, key: str) -> bytes:
        with self._io("read", key):
            return self.fs.cat_file(self._p(check_key(key)))  # type: ignore[no-any-return]

    def read_parquet(self, key: str, **kwargs: Any) -> pl.DataFrame:
        with self._io("read", key):
            path = self._p(check_key(key))
            if self.protocol == "file":
                return pl.read_parquet(path, **kwargs)
            return pl.read_parquet(io.BytesIO(self.fs.cat_file(path)), **kwargs)

    def scan_parquet(self, key_or_glob: str, **kwargs: Any) -> pl.LazyFrame:
        """A lazy frame over one key or a glob of keys (errors surface at ``collect``)."""
        path = self._p(check_key(key_or_glob))
        if self.protocol == "file":
            return pl.scan_parquet(path, **kwargs)
        if self.protocol == "s3":
            options = self.polars_storage_options()
            return pl.scan_parquet(self.uri(key_or_glob), storage_options=options, **kwargs)
        # polars cannot open memory:// itself: read eagerly through fsspec.
        with self._io("read", key_or_glob):
            paths = sorted(self.fs.glob(path)) if _GLOB_CHARS.search(path) else [path]
            if not paths:
                raise FileNotFoundError(path)
            frames = [pl.read_parquet(io.BytesIO(self.fs.cat_file(p)), **kwargs) for p in paths]
        return pl.concat(frames).lazy()

    def open(self, key: str, mode: str = "rb") -> IO[Any]:
        """A plain fsspec file for streaming reads (write with ``writer`` or ``write_*``)."""
        if mode not in ("rb", "r"):
            raise ValueError("Storage.open only reads; write with writer() or write_bytes()")
        with self._io("open", key):
            return self.fs.open(self._p(check_key(key)), mode)  # type: ignore[no-any-return]

    def exists(self, key: str) -> bool:
        with self._io("check", key):
            return bool(self.fs.exists(self._p(check_key(key))))

    def size(self, key: str) -> int:
        with self._io("stat", key):
            return int(self.fs.size(self._p(check_key(key))))

    # -- listing --------------------------------------------------------------------------

    def list(self, prefix: str) -> builtins.list[str]:
        """Sorted keys of the files under ``prefix`` (a folder, or one key), recursively."""
        check_key(prefix, allow_empty=True)
        with self._io("list", prefix):
            try:
                found = self.fs.find(self._p(prefix))
            except FileNotFoundError:
                return []
        keys = (self._key_of(path) for path in found)
        return sorted(
            key
            for key in keys
            if key and not key.endswith("/") and key.split("/")[0] not in RESERVED
        )

    def _children(self, prefix: str) -> builtins.list[tuple[str, bool]]:
        """``(name, is_folder)`` of the entries directly under ``prefix``."""
        base = self._p(prefix).rstrip("/")
        with self._io("list", prefix):
            try:
                entries = self.fs.ls(base, detail=True)
            except FileNotFoundError:
                return []
        children = []
        for entry in entries:
            name = entry["name"].rstrip("/")
            if name != base:
                children.append((name.rsplit("/", 1)[-1], entry["type"] == "directory"))
        return sorted(children)

    def _vin_folders(self, *, warn: bool) -> builtins.list[str]:
        vins = []
        for name, is_folder in self._children("temp"):
            if is_folder and is_valid_vin(name):
                vins.append(name)
            elif warn:
                logger.warning("skipping temp/%s: not a folder named by a valid VIN", name)
        return vins

    def temp_days(self) -> builtins.list[date]:
        """Sorted distinct days present under ``temp/{VIN}/``."""
        days = set()
        for vin in self._vin_folders(warn=True):
            for name, is_folder in self._children(f"temp/{vin}"):
                day = parse_day(name) if is_folder else None
                if day is None:
                    logger.warning("skipping temp/%s/%s: not a YYYY-MM-DD folder", vin, name)
                else:
                    days.add(day)
        return sorted(days)

    def temp_files(
        self, day: date, vins: Iterable[str] | None = None
    ) -> dict[str, builtins.list[str]]:
        """VIN → sorted keys of ``temp/{VIN}/{day}/*`` (VINs without files left out)."""
        wanted = self._vin_folders(warn=False) if vins is None else [validate_vin(v) for v in vins]
        files: dict[str, builtins.list[str]] = {}
        for vin in sorted(set(wanted)):
            folder = f"temp/{vin}/{day:%Y-%m-%d}"
            keys = [
                f"{folder}/{name}" for name, is_folder in self._children(folder) if not is_folder
            ]
            if keys:
                files[vin] = sorted(keys)
        return files

    def day_keys(self, layer: str, day: date) -> dict[str, str]:
        """VIN → key of ``{layer}/YYYY/MM/DD/{VIN}.parquet`` for that day."""
        folder = self._day_dir(layer, day)
        keys = {}
        for name, is_folder in self._children(folder):
            vin = name.removesuffix(".parquet")
            if is_folder or not name.endswith(".parquet") or not is_valid_vin(vin):
                logger.warning("skipping %s/%s: not a {VIN}.parquet file", folder, name)
            else:
                keys[vin] = f"{folder}/{name}"
        return dict(sorted(keys.items()))

    def days(self, layer: str) -> builtins.list[date]:
        """Sorted days that have a ``{layer}/YYYY/MM/DD/`` folder."""
        self._day_dir(layer, date(2000, 1, 1))  # validates the layer
        found = []
        for year in self._numbered(layer, 4):
            for month in self._numbered(f"{layer}/{year}", 2):
                for day in self._numbered(f"{layer}/{year}/{month}", 2):
                    try:
                        found.append(date(int(year), int(month), int(day)))
                    except ValueError:
                        logger.warning("skipping %s/%s/%s/%s: not a date", layer, year, month, day)
        return sorted(found)

    def _numbered(self, prefix: str, digits: int) -> builtins.list[str]:
        names = []
        for name, is_folder in self._children(prefix):
            if is_folder and len(name) == digits and name.isdigit():
                names.append(name)
            else:
                logger.warning("skipping %s/%s: not a %d-digit folder", prefix, name, digits)
        return names

    # -- deleting -------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        """Remove one file; a missing file is fine. Empty local folders are pruned."""
        path = self._p(check_key(key))
        with self._io("delete", key):
            if self.protocol == "file":
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                    self._prune(os.path.dirname(path))
            else:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(path)

    def delete_many(self, keys: Iterable[str]) -> None:
        checked = [check_key(key) for key in keys]
        if self.protocol != "s3":
            for key in checked:
                self.delete(key)
            return
        literal = [key for key in checked if not _GLOB_CHARS.search(key)]
        for start in range(0, len(literal), 1000):
            chunk = literal[start : start + 1000]
            with self._io("delete", f"{chunk[0]} and {len(chunk) - 1} more"):
                self.fs.rm([self._p(key) for key in chunk])
        for key in checked:
            if _GLOB_CHARS.search(key):
                self.delete(key)

    def _prune(self, folder: str) -> None:
        # Local folders outlive their files; S3 has none. Prune so that listings agree.
        root = self._root.rstrip("/")
        while folder.startswith(root + "/"):
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = os.path.dirname(folder)

    def check_root(self) -> None:
        """``StorageError`` when the root is not there (a local directory that does not exist, an
        S3 bucket that does not exist): a command that reads it would find nothing to do and
        succeed, hiding a mistyped root. A memory root, or an empty prefix of a bucket, is
        fine."""
        if self.protocol == "memory":
            return
        missing = f"the storage root {self.url} does not exist"
        if self.protocol == "file":
            if not os.path.isdir(self._root):
                raise StorageError(f"{missing} (no such directory)")
            return
        bucket, _, prefix = self._root.partition("/")
        with self._io("list", ""):
            try:  # one request; s3fs's exists() would call a denied or failed probe "missing"
                self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=1)
            except FileNotFoundError:
                raise StorageError(f"{missing} (no bucket {bucket})") from None

    def check_writable(self) -> None:
        """``StorageError`` unless a file can be written under the root and removed again:
        for a command that would otherwise run a while before it first writes (``stream``)."""
        tmp = self._p(f"_tmp/{uuid.uuid4().hex}-probe")
        with self._io("write", "_tmp/"):
            with self._open_tmp(tmp) as fh:
                fh.write(b"bibev")
            self.fs.rm_file(tmp)

    def sweep_tmp(self, older_than: float = 86400.0) -> int:
        """Remove ``_tmp/`` files older than ``older_than`` seconds (left by crashed writers)."""
        with self._io("list", "_tmp"):
            try:
                found = self.fs.find(self._p("_tmp"), detail=True)
            except FileNotFoundError:
                return 0
        cutoff = time.time() - older_than
        stale = [path for path, info in found.items() if _mtime(info) < cutoff]
        for path in stale:
            with self._io("delete", path), contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)
        return len(stale)

    # -- locks ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, *, stale_after: float = 3600.0, wait: float = 0.0) -> Iterator[None]:
        """Hold the advisory lock ``name`` (e.g. ``compact/2024-05-01``) for the block.

        Raises ``LockedError`` naming the holder when another run has it (after waiting up to
        ``wait`` seconds); a lock older than ``stale_after`` seconds is broken with a warning."""
        check_key(name)
        path = self._p(f"_locks/{name}.lock")
        backend = self._lock_backend()
        with self._io("take lock", name):
            holder = _locks.acquire(backend, path, name, stale_after=stale_after, wait=wait)
        try:
            yield
        except BaseException:
            try:
                with self._io("release lock", name):
                    _locks.release(backend, path, holder)
            except StorageError as exc:
                logger.error("%s", exc)
            raise
        with self._io("release lock", name):
            _locks.release(backend, path, holder)

    def _lock_backend(self) -> _locks.LockBackend:
        if self.protocol == "file":
            return _locks.LocalLocks()
        if self.protocol == "s3":
            return _locks.S3Locks(self.fs)
        return _locks.MemoryLocks(self.fs)

    # -- handing over to polars and pyarrow -----------------------------------------------

    def polars_storage_options(self) -> dict[str, str] | None:
        """``storage_options`` for polars on this root (None for local and memory roots)."""
        if self.protocol != "s3":
            return None
        opts = self._s3_options
        client = opts.get("client_kwargs") or {}
        env = os.environ
        endpoint = client.get("endpoint_url") or opts.get("endpoint_url")
        region = client.get("region_name") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        options: dict[str, str] = {}
        if endpoint:
            options["aws_endpoint_url"] = str(endpoint)
            region = region or "us-east-1"  # S3-compatible servers ignore it but signing needs one
            if str(endpoint).startswith("http://"):
                options["aws_allow_http"] = "true"
        if region:
            options["aws_region"] = str(region)
        key, secret, token = opts.get("key"), opts.get("secret"), opts.get("token")
        if not (key and secret):
            key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
            token = env.get("AWS_SESSION_TOKEN")
        if key and secret:
            options["aws_access_key_id"] = str(key)
            options["aws_secret_access_key"] = str(secret)
        if token:
            options["aws_session_token"] = str(token)
        if opts.get("anon"):
            options["aws_skip_signature"] = "true"
        return options

    def pyarrow_filesystem(self) -> pyarrow.fs.FileSystem:
        """A pyarrow file system for this root; give it paths from ``fs_path(key)``."""
        import pyarrow.fs as pafs

        if self.protocol == "file":
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))
