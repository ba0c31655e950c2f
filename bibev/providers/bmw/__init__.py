"""BMW CarData adapter (customer API, 2025+): REST ``telematicData`` and MQTT streaming.

Reads both shapes (see ``bibev.providers.bmw.wire``); ``flatten`` tells them apart by their
top-level key. The REST body has no VIN: the ingest core stores it wrapped as
``{"vin": VIN, "telematicData": {…}}``, and a message without a VIN is a ``DataContractError``.
The account allows 50 requests per day across all endpoints (``daily_quota``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from bibev.errors import DataContractError
from bibev.providers.base import Adapter, FlatRow, ProviderOptions, SignalMap
from bibev.providers.bmw.mapping import CHARGING_STATUS, MAPPING
from bibev.providers.bmw.wire import (
    DEFAULT_UNITS,
    REST,
    STREAM,
    detect_format,
    encode_rest,
    encode_stream,
    flatten_message,
)

__all__ = [
    "CHARGING_STATUS",
    "DEFAULT_UNITS",
    "MAPPING",
    "BmwAdapter",
    "BmwOptions",
    "detect_format",
    "encode_rest",
    "encode_stream",
]


class BmwOptions(ProviderOptions):
    """``[providers.bmw]`` in bibev.toml. Credentials are optional here because reading
    messages needs none; pulling from the API does."""

    client_id: SecretStr | None = None
    gcid: SecretStr | None = None
    refresh_token: SecretStr | None = None
    container_id: str | None = None
    daily_quota: int = Field(50, ge=1, description="requests per rolling 24 h across all endpoints")


class BmwAdapter(Adapter):
    name: ClassVar[str] = "bmw"
    formats: ClassVar[tuple[str, ...]] = (REST, STREAM)
    description: ClassVar[str] = "BMW CarData: telematicData REST and MQTT streaming"
    mapping: ClassVar[tuple[SignalMap, ...]] = MAPPING
    Options: ClassVar[type[ProviderOptions]] = BmwOptions

    def flatten(self, payload: Any, *, received_at: datetime | None = None) -> list[FlatRow]:
        """Rows of one REST body (wrapped with its VIN) or one streaming message."""
        try:
            return flatten_message(payload, received_at=received_at)
        except RecursionError as exc:
            raise DataContractError("message is nested too deeply", source="bmw") from exc
