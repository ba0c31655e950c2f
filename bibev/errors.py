"""The bibev error tree.

Every error bibev raises on purpose is a ``BibevError``. Only the CLI maps errors to exit codes::

    BibevError                      exit 1 (unexpected: a bug or an unknown failure)
    ├── ConfigError                 exit 2 (usage or configuration: fix the command or bibev.toml)
    │   └── NotAvailableError       exit 2 (a subcommand that is not built yet)
    ├── DataContractError           exit 2 (input breaks the data contract: bad VIN, bad message)
    ├── ProviderError               exit 3 (the provider refused or failed)
    │   ├── ProviderAuthError       exit 3 (credentials rejected or expired)
    │   └── ProviderTransientError  exit 3 (timeouts, 5xx, rate limits: worth retrying)
    ├── StorageError                exit 4 (the storage root cannot be read or written)
    │   └── LockedError             exit 4 (another run holds the lock for this stage and day)
    └── PartialFailure              exit 5 (some partitions failed; the rest are done)

Lower-level errors (fsspec, botocore, httpx, SQLAlchemy) are translated where they happen, with
``raise ... from exc``, so that the message says what bibev was doing.
"""

from __future__ import annotations

from collections.abc import Sequence


class BibevError(Exception):
    """Base of every error bibev raises on purpose."""

    exit_code = 1


class ConfigError(BibevError):
    """Bad usage or configuration."""

    exit_code = 2


class NotAvailableError(ConfigError):
    """A subcommand that a later release fills in."""


class DataContractError(BibevError):
    """Input that breaks the data contract (bad VIN, unreadable message, wrong type)."""

    exit_code = 2

    def __init__(self, reason: str, *, value: object = None, source: str | None = None) -> None:
        self.reason = reason
        self.value = value
        self.source = source
        parts = [reason]
        if value is not None:
            parts.append(f"value={value!r}")
        if source:
            parts.append(f"in {source}")
        super().__init__(
            ": ".join(parts[:1]) + (" (" + ", ".join(parts[1:]) + ")" if parts[1:] else "")
        )


class ProviderError(BibevError):
    """A provider refused or failed."""

    exit_code = 3


class ProviderAuthError(ProviderError):
    """Credentials were rejected or have expired."""


class ProviderTransientError(ProviderError):
    """A failure worth retrying: timeout, 5xx, rate limit."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageError(BibevError):
    """The storage root cannot be read or written."""

    exit_code = 4


class LockedError(StorageError):
    """Another run holds the lock for this stage and partition."""


class PartialFailure(BibevError):
    """Some partitions failed; the others are complete."""

    exit_code = 5

    def __init__(self, message: str, failures: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)
