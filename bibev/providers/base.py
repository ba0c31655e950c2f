"""The provider adapter contract.

An adapter turns one provider's messages into compressed rows (``flatten``) and says how its
keys map to canonical columns (``mapping``). Pull providers also implement ``fetch``. Adapters
are found through the ``bibev.providers`` entry-point group (see ``bibev.providers.registry``);
bibev's own adapters register there exactly like third-party ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import httpx

Value = float | int | str | bool | None


class FlatRow(NamedTuple):
    """One leaf value of one provider message (a row of the compressed layer).

    ``value`` keeps the Python type the provider sent (a string stays a string); the core
    spreads it over the typed ``value_*`` columns. ``invalid`` marks a value the provider
    flagged as unavailable (Tesla ``invalid: true``, a High Mobility ``failure``); its
    ``value`` is then ``None`` or the failure reason as a string.
    """

    vin: str
    ts: datetime
    key: str
    value: Value
    unit: str | None = None
    message_id: str | None = None
    invalid: bool = False


@dataclass(frozen=True)
class SignalMap:
    """How one provider key becomes one canonical column.

    ``scale`` and ``offset`` convert the unit (``canonical = value * scale + offset``);
    ``enum`` maps provider vocabulary onto the canonical one (case-insensitive); ``cast``
    says how string-typed values are read (``float``, ``int``, ``bool`` or ``str``).
    """

    key: str
    column: str
    scale: float = 1.0
    offset: float = 0.0
    enum: Mapping[str, str] | None = None
    cast: str = "float"
    note: str = ""


@dataclass
class FetchBatch:
    """A batch of raw messages from ``fetch`` and the cursor to store once it is durable."""

    messages: list[Any]
    cursor: str | None = None
    vin: str | None = None
    source: dict[str, Any] = field(default_factory=dict)


class ProviderOptions(BaseModel):
    """Base for adapter options: strict, so a typo in bibev.toml is an error, not a silence."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class Adapter:
    """Base class of every provider adapter. Subclasses set the class attributes and implement
    ``flatten``; pull providers also implement ``fetch``."""

    name: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    mapping: ClassVar[Sequence[SignalMap]] = ()
    Options: ClassVar[type[ProviderOptions]] = ProviderOptions

    def __init__(self, options: Mapping[str, Any] | ProviderOptions | None = None) -> None:
        if isinstance(options, ProviderOptions):
            self.options = options
        else:
            self.options = self.Options.model_validate(dict(options or {}))

    def flatten(self, payload: Any, *, received_at: datetime | None = None) -> list[FlatRow]:
        """Turn one provider message into rows. Pure; raises ``DataContractError`` on
        a message it cannot read."""
        raise NotImplementedError

    def flatten_many(
        self, payloads: Iterable[tuple[Any, datetime | None]]
    ) -> Iterator[list[FlatRow]]:
        """Flatten a stream of (payload, received_at). Adapters may override with a faster path."""
        for payload, received_at in payloads:
            yield self.flatten(payload, received_at=received_at)

    @property
    def can_fetch(self) -> bool:
        return type(self).fetch is not Adapter.fetch

    def fetch(
        self, client: httpx.Client, vins: Sequence[str], cursor: str | None
    ) -> Iterator[FetchBatch]:
        """Pull messages newer than ``cursor``. The core stores the cursor after the batch is
        durably written, never the adapter."""
        raise NotImplementedError(f"provider {self.name!r} has no pull API")
