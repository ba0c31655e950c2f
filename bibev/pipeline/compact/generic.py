"""The generic flattening path: one line at a time through the provider's adapter.

Every provider goes through here; Tesla Fleet Telemetry JSON has a faster vectorised path
(``tesla_json``) that hands the lines it cannot read exactly back to this one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from bibev.errors import ConfigError, DataContractError
from bibev.providers.base import Adapter, FlatRow
from bibev.providers.registry import Registry
from bibev.schema import COMPRESSED_SCHEMA, rows_to_frame

from .envelope import parse_envelope

logger = logging.getLogger(__name__)

# Flattened rows carry two helper columns until they are routed to their day.
LINE_SCHEMA: dict[str, pl.DataType] = {"line": pl.UInt32(), "rows_of_day": pl.Date()}
FLAT_SCHEMA: dict[str, pl.DataType] = {**COMPRESSED_SCHEMA, **LINE_SCHEMA}

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Quarantined:
    """A line that could not be used: its index in the file (0-based) and why."""

    line: int
    reason: str


class Adapters:
    """Adapter instances by provider name, built once per partition.

    An unknown provider name is a property of the line (``DataContractError``: the line is
    quarantined); a provider that is installed but broken or disabled is a property of this
    installation (``ConfigError``: the partition fails and its files stay in temp/).
    """

    def __init__(
        self, registry: Registry, options: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.registry = registry
        self.options = dict(options or {})
        self._known = {entry.name for entry in registry.entries()}
        self._adapters: dict[str, Adapter] = {}

    def get(self, name: str) -> Adapter:
        adapter = self._adapters.get(name)
        if adapter is None:
            if name not in self._known:
                raise DataContractError("unknown provider", value=name)
            adapter = self.registry.adapter(name, self.options.get(name))
            self._adapters[name] = adapter
        return adapter

    def adapter_class(self, name: str) -> type[Adapter] | None:
        """The class behind ``name`` when it is usable, else ``None``."""
        try:
            return type(self.get(name))
        except (ConfigError, DataContractError):
            return None


def _checked(row: FlatRow, vin: str) -> FlatRow:
    if row.vin != vin:
        raise DataContractError(f"message is for VIN {row.vin!r}, not for this folder's {vin}")
    if not isinstance(row.ts, datetime):
        raise DataContractError("row without a timestamp", value=row.key)
    value = row.value
    if value is not None and not isinstance(value, bool | int | float | str):
        raise DataContractError(f"adapter returned a {type(value).__name__} value", value=row.key)
    if isinstance(value, int) and not isinstance(value, bool) and not _I64_MIN <= value <= _I64_MAX:
        raise DataContractError("integer value out of the int64 range", value=row.key)
    if row.ts.tzinfo is None:
        return row._replace(ts=row.ts.replace(tzinfo=UTC))
    return row


def flatten_line(
    raw: bytes, *, vin: str, adapters: Adapters
) -> tuple[str, datetime | None, date | None, list[FlatRow]]:
    """One line → (provider, received_at, rows_of_day, rows); ``DataContractError`` when it is
    unreadable. Adapter bugs on odd input count as unreadable input, never as a crash."""
    envelope = parse_envelope(raw)
    adapter = adapters.get(envelope.provider)
    try:
        rows = adapter.flatten(envelope.payload, received_at=envelope.received_at)
    except (DataContractError, ConfigError):
        raise
    except Exception as exc:
        logger.warning("provider %s failed on a message: %r", envelope.provider, exc)
        raise DataContractError(
            f"provider {envelope.provider} failed: {type(exc).__name__}: {exc}"
        ) from None
    checked = [_checked(row, vin) for row in rows]
    return envelope.provider, envelope.received_at, envelope.rows_of_day, checked


def flatten_lines(
    lines: Sequence[bytes], vins: Sequence[str], indices: Iterable[int], *, adapters: Adapters
) -> tuple[pl.DataFrame, list[Quarantined]]:
    """Rows (``FLAT_SCHEMA``) of the lines at ``indices`` and the lines that had to be
    quarantined; ``vins[i]`` is the VIN of the folder ``lines[i]`` comes from."""
    rows: list[FlatRow] = []
    providers: list[str] = []
    received: list[datetime | None] = []
    line_numbers: list[int] = []
    only_days: list[date | None] = []
    quarantined: list[Quarantined] = []
    for index in indices:
        try:
            provider, received_at, only_day, found = flatten_line(
                lines[index], vin=vins[index], adapters=adapters
            )
        except DataContractError as exc:
            quarantined.append(Quarantined(index, str(exc)))
            continue
        rows.extend(found)
        providers.extend([provider] * len(found))
        received.extend([received_at] * len(found))
        line_numbers.extend([index] * len(found))
        only_days.extend([only_day] * len(found))
    frame = rows_to_frame(rows, provider="").with_columns(
        pl.Series("provider", providers, dtype=pl.String),
        pl.Series("received_at", received, dtype=COMPRESSED_SCHEMA["received_at"]),
        pl.Series("line", line_numbers, dtype=pl.UInt32),
        pl.Series("rows_of_day", only_days, dtype=pl.Date),
    )
    return frame, quarantined
