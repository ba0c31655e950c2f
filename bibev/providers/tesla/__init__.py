"""Tesla: Fleet Telemetry (protobuf or protojson, streamed through Kafka) and the Fleet API
``vehicle_data`` JSON (REST polling).

``TeslaAdapter.flatten`` reads any of the three and tells them apart by shape:

- ``bytes`` – a Fleet Telemetry record as it sits on the topic: protobuf ``Payload`` or, when
  the server runs with ``transmit_decoded_records``, protojson text (``detect_encoding``);
- ``str`` – JSON text of either of the shapes below;
- ``dict`` with ``data`` or ``createdAt`` – a protojson ``Payload``;
- ``dict`` with ``response`` or a ``charge_state``/``drive_state``/… section – Fleet API.

Assumptions (documented in docs/providers/tesla.md): ranges, odometer and speed are miles and
mph whatever the car displays; a timestamp without an offset is UTC; Fleet API timestamps are
epoch milliseconds (numbers below 1e11 are read as seconds).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar

from pydantic import SecretStr

from bibev.errors import DataContractError
from bibev.providers.base import Adapter, FlatRow, ProviderOptions, SignalMap
from bibev.providers.tesla.codec import (
    TypedValue,
    decode_record,
    detect_encoding,
    encode_payload,
    payload_to_protojson,
    protojson_to_payload,
)
from bibev.providers.tesla.fleet_api import is_vehicle_data, rows_from_vehicle_data
from bibev.providers.tesla.mapping import MAPPING
from bibev.providers.tesla.telemetry import rows_from_protobuf, rows_from_protojson

__all__ = [
    "TeslaAdapter",
    "TeslaOptions",
    "TypedValue",
    "decode_record",
    "detect_encoding",
    "encode_payload",
    "flatten_tesla",
    "payload_to_protojson",
    "protojson_to_payload",
]


class TeslaOptions(ProviderOptions):
    """Fleet API credentials and where Fleet Telemetry arrives."""

    client_id: str | None = None
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None
    base_url: str = "https://fleet-api.prd.na.vn.cloud.tesla.com"
    telemetry_topic: str = "tesla_V"


def flatten_tesla(payload: Any) -> list[FlatRow]:
    """Any Tesla message → compressed rows (see the module docstring for the shapes)."""
    if isinstance(payload, bytes | bytearray | memoryview):
        raw = bytes(payload)
        if detect_encoding(raw) == "protobuf":
            return rows_from_protobuf(raw)
        payload = json.loads(raw)
    elif isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise DataContractError(
                "Tesla message is not JSON", value=payload[:40], source="tesla"
            ) from exc
    if not isinstance(payload, dict):
        raise DataContractError(
            "Tesla message is not an object", value=type(payload).__name__, source="tesla"
        )
    if any(name in payload for name in ("data", "createdAt", "created_at")):
        return rows_from_protojson(payload)
    if is_vehicle_data(payload):
        return rows_from_vehicle_data(payload)
    raise DataContractError(
        "not a Tesla message (expected Fleet Telemetry data/createdAt/vin or Fleet API response)",
        value=",".join(sorted(map(str, payload))[:6]),
        source="tesla",
    )


class TeslaAdapter(Adapter):
    """Tesla Fleet Telemetry and Fleet API."""

    name: ClassVar[str] = "tesla"
    formats: ClassVar[tuple[str, ...]] = (
        "fleet-telemetry-protobuf",
        "fleet-telemetry-json",
        "fleet-api-json",
    )
    description: ClassVar[str] = "Tesla Fleet Telemetry (protobuf/protojson) and Fleet API"
    mapping: ClassVar[tuple[SignalMap, ...]] = MAPPING
    Options: ClassVar[type[ProviderOptions]] = TeslaOptions

    def flatten(self, payload: Any, *, received_at: datetime | None = None) -> list[FlatRow]:
        """One message → rows. ``received_at`` is not needed: every Tesla message carries its
        own time (a message without one is a ``DataContractError``)."""
        return flatten_tesla(payload)
