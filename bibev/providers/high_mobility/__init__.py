"""High Mobility adapter (Auto API, multi-brand): REST vehicle data and push v2 messages.

Reads both shapes (see ``bibev.providers.high_mobility.wire``): a message with ``data`` and a
``message_id`` or ``version`` is a push message, anything else the REST response. Push
delivery is at least once; rows carry ``message_id`` so duplicates can be dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import SecretStr

from bibev.errors import DataContractError
from bibev.providers.base import Adapter, FlatRow, ProviderOptions, SignalMap
from bibev.providers.high_mobility.mapping import CHARGING_STATUS, CURRENT_TYPE, MAPPING
from bibev.providers.high_mobility.wire import (
    DEFAULT_UNITS,
    PUSH,
    REST,
    Failure,
    detect_format,
    encode_push,
    encode_rest,
    flatten_message,
)

__all__ = [
    "CHARGING_STATUS",
    "CURRENT_TYPE",
    "DEFAULT_UNITS",
    "MAPPING",
    "Failure",
    "HighMobilityAdapter",
    "HighMobilityOptions",
    "detect_format",
    "encode_push",
    "encode_rest",
]


class HighMobilityOptions(ProviderOptions):
    """``[providers.high-mobility]`` in bibev.toml. Credentials are optional here because
    reading messages needs none; pulling from the API does."""

    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    base_url: str = "https://api.high-mobility.com"
    auto_api_version: str = "autoapi-13"


class HighMobilityAdapter(Adapter):
    name: ClassVar[str] = "high-mobility"
    formats: ClassVar[tuple[str, ...]] = (REST, PUSH)
    description: ClassVar[str] = "High Mobility Auto API: REST vehicle data and push v2"
    mapping: ClassVar[tuple[SignalMap, ...]] = MAPPING
    Options: ClassVar[type[ProviderOptions]] = HighMobilityOptions

    def flatten(self, payload: Any, *, received_at: datetime | None = None) -> list[FlatRow]:
        """Rows of one REST response or one push v2 message."""
        try:
            return flatten_message(payload, received_at=received_at)
        except RecursionError as exc:
            raise DataContractError("message is nested too deeply", source="high-mobility") from exc
