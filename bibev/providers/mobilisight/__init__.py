"""Mobilisight adapter (Stellantis connected-fleet data): the car-state export, version 2.

Each line of the export is one car state (see ``bibev.providers.mobilisight.wire``). There is
no public documentation of the export, so the reader is tolerant: unknown fields are kept as
rows, missing ones are fine.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import SecretStr

from bibev.errors import DataContractError
from bibev.providers.base import Adapter, FlatRow, ProviderOptions, SignalMap
from bibev.providers.mobilisight.mapping import CHARGING_MODE, CHARGING_STATUS, MAPPING
from bibev.providers.mobilisight.wire import (
    CAR_STATE,
    DEFAULT_UNITS,
    encode_car_state,
    flatten_message,
)

__all__ = [
    "CHARGING_MODE",
    "CHARGING_STATUS",
    "DEFAULT_UNITS",
    "MAPPING",
    "MobilisightAdapter",
    "MobilisightOptions",
    "encode_car_state",
]


class MobilisightOptions(ProviderOptions):
    """``[providers.mobilisight]`` in bibev.toml. Credentials are optional here because
    reading messages needs none; pulling from the API does."""

    email: str | None = None
    password: SecretStr | None = None
    base_url: str | None = None


class MobilisightAdapter(Adapter):
    name: ClassVar[str] = "mobilisight"
    formats: ClassVar[tuple[str, ...]] = (CAR_STATE,)
    description: ClassVar[str] = "Mobilisight (Stellantis) car-state export v2"
    mapping: ClassVar[tuple[SignalMap, ...]] = MAPPING
    Options: ClassVar[type[ProviderOptions]] = MobilisightOptions

    def flatten(self, payload: Any, *, received_at: datetime | None = None) -> list[FlatRow]:
        """Rows of one car state."""
        try:
            return flatten_message(payload, received_at=received_at)
        except RecursionError as exc:
            raise DataContractError("message is nested too deeply", source="mobilisight") from exc
