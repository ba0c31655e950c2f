"""Where things live under a storage root, and what may become part of a path.

Pure: no I/O. ``bibev.storage`` builds every key through these checks, so a VIN or any other
external string is validated before it can become a path.
"""

from __future__ import annotations

import os
import re
from datetime import date

from bibev.errors import ConfigError, DataContractError

VIN_PATTERN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
LAYERS = ("compressed", "clean", "segments")
RESERVED = ("_tmp", "_locks")

_DAY_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def validate_vin(vin: object) -> str:
    """The VIN itself when it is 17 characters of ``A-H J-N P R-Z 0-9``; else DataContractError."""
    if isinstance(vin, str) and VIN_PATTERN.fullmatch(vin):
        return vin
    raise DataContractError(f"invalid VIN: {_vin_problem(vin)}", value=vin)


def is_valid_vin(vin: object) -> bool:
    return isinstance(vin, str) and VIN_PATTERN.fullmatch(vin) is not None


def _vin_problem(vin: object) -> str:
    if not isinstance(vin, str):
        return f"expected a string, got {type(vin).__name__}"
    if len(vin) != 17:
        return f"{len(vin)} characters instead of 17"
    if any(c in "IOQ" for c in vin):
        return "the letters I, O and Q are not allowed (ISO 3779)"
    if vin != vin.upper():
        return "lowercase letters are not allowed"
    return "only A-H, J-N, P, R-Z and 0-9 are allowed (ISO 3779)"


def check_key(key: object, *, allow_empty: bool = False, allow_reserved: bool = False) -> str:
    """A root-relative key, or DataContractError: no '..', '.', empty parts, absolute paths,
    backslashes or NUL; the reserved ``_tmp/`` and ``_locks/`` folders only when allowed."""
    if not isinstance(key, str):
        raise DataContractError("storage key must be a string", value=key)
    if key == "" and allow_empty:
        return key
    parts = key.split("/")
    if "\\" in key or "\x00" in key or any(part in ("", ".", "..") for part in parts):
        raise DataContractError(
            "invalid storage key (relative, '/'-separated, without '..', '.', empty parts "
            "or backslashes)",
            value=key,
        )
    if parts[0] in RESERVED and not allow_reserved:
        raise DataContractError(f"storage key inside the reserved {parts[0]}/ folder", value=key)
    return key


def check_name(name: object, what: str) -> str:
    part = check_key(name)
    if "/" in part:
        raise DataContractError(f"{what} must not contain '/'", value=name)
    return part


def parse_day(name: str) -> date | None:
    if not _DAY_FOLDER.fullmatch(name):
        return None
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None


def parse_root(url: str) -> tuple[str, str, str]:
    """``(protocol, fsspec root path, normalised URL)`` of a root, or ConfigError."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("the storage root is empty")
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "file", url
    scheme = scheme.lower()
    if scheme == "file":
        if sep and rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        path = os.path.normpath(os.path.abspath(os.path.expanduser(rest)))
        return "file", path, path
    if scheme == "s3":
        bucket, _, prefix = rest.strip("/").partition("/")
        if "@" in bucket:
            raise ConfigError("put S3 credentials in the settings or AWS variables, not in --root")
        if not bucket:
            raise ConfigError(f"storage root {url!r} names no bucket")
        prefix = prefix.strip("/")
        try:
            check_key(prefix, allow_empty=True, allow_reserved=True)
        except DataContractError:
            raise ConfigError(f"storage root {url!r} has an invalid prefix") from None
        root = f"{bucket}/{prefix}" if prefix else bucket
        return "s3", root, f"s3://{root}"
    if scheme == "memory":
        name = rest.strip("/") or "bibev"
        return "memory", f"/{name}", f"memory://{name}"
    raise ConfigError(
        f"unsupported storage root {url!r}: use a directory, file://, s3://bucket/prefix or memory://"
    )
