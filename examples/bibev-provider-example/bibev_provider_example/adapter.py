"""Adapter for the "FleetLogger" OBD dongle, an imaginary fleet logger.

Each dongle posts one JSON message per sample::

    {"device": "FL-0042", "vin": "5YJ3E1EA7KF000001", "t": 1740823200,
     "readings": {"soc": 71.5, "odo_mi": 12034.2, "hv_v": 398.2}}

``t`` is epoch seconds (UTC). ``readings`` is flat; a reading is ``null`` when the dongle could
not read that sensor. Its cloud keeps every message and serves them, oldest first, from
``GET {base_url}/messages?after=CURSOR&limit=N`` as ``{"messages": [...], "next": CURSOR}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr

from bibev.errors import (
    ConfigError,
    DataContractError,
    ProviderAuthError,
    ProviderError,
    ProviderTransientError,
)
from bibev.providers import Adapter, FetchBatch, FlatRow, ProviderOptions, SignalMap

MILE_KM = 1.609344

# The dongle sends no units; these are the ones its manual documents.
UNITS: dict[str, str] = {
    "soc": "%",
    "odo_mi": "mi",
    "spd_mph": "mph",
    "hv_v": "V",
    "hv_a": "A",
    "pwr_kw": "kW",
    "amb_f": "degF",
}

CHARGE_STATES = {
    "off": "disconnected",
    "plug": "plugged",
    "ac": "charging",
    "dc": "charging",
    "done": "complete",
    "fault": "error",
}


class ExampleLoggerOptions(ProviderOptions):
    """``[providers.example-logger]`` in bibev.toml."""

    api_key: SecretStr | None = Field(None, description="API key of the fleet account")
    base_url: str = Field("https://api.fleetlogger.example/v1", description="API root")
    page_size: int = Field(500, ge=1, le=5000, description="Messages per request")


class ExampleLoggerAdapter(Adapter):
    """FleetLogger OBD dongles (JSON over HTTPS)."""

    name: ClassVar[str] = "example-logger"
    formats: ClassVar[tuple[str, ...]] = ("json",)
    description: ClassVar[str] = "FleetLogger OBD dongles: JSON messages, pull API"
    Options: ClassVar[type[ProviderOptions]] = ExampleLoggerOptions
    mapping: ClassVar[Sequence[SignalMap]] = (
        SignalMap("soc", "soc_pct"),
        SignalMap("odo_mi", "odometer_km", scale=MILE_KM, note="miles"),
        SignalMap("spd_mph", "speed_kmh", scale=MILE_KM, note="mph"),
        SignalMap("hv_v", "pack_voltage_v"),
        SignalMap("hv_a", "pack_current_a", note="positive into the battery"),
        SignalMap("pwr_kw", "charging_power_kw"),
        SignalMap("amb_f", "outside_temp_c", scale=5 / 9, offset=-160 / 9, note="°F"),
        SignalMap("chg", "charging_state", enum=CHARGE_STATES, cast="str"),
        SignalMap("chg", "charger_kind", enum={"ac": "ac", "dc": "dc", "off": "none"}, cast="str"),
    )

    options: ExampleLoggerOptions

    def flatten(self, payload: Any, *, received_at: datetime | None = None) -> list[FlatRow]:
        """One row for the device id and one per reading; a ``null`` reading is ``invalid``."""
        if not isinstance(payload, dict):
            raise DataContractError("message is not a JSON object", source=self.name)
        vin, device = payload.get("vin"), payload.get("device")
        if not isinstance(vin, str) or not vin:
            raise DataContractError("message has no vin", value=vin, source=self.name)
        ts = _timestamp(payload.get("t"))
        readings = payload.get("readings")
        if not isinstance(readings, dict):
            raise DataContractError("readings is not an object", value=readings, source=self.name)
        message_id = f"{device}:{payload['t']}" if device else None
        rows = [FlatRow(vin, ts, "device", device, message_id=message_id)] if device else []
        for key, value in readings.items():
            if isinstance(value, dict | list):
                raise DataContractError(f"reading {key!r} is not a scalar", source=self.name)
            rows.append(
                FlatRow(vin, ts, key, value, UNITS.get(key), message_id, invalid=value is None)
            )
        return rows

    def fetch(
        self, client: httpx.Client, vins: Sequence[str], cursor: str | None
    ) -> Iterator[FetchBatch]:
        """Pages of messages after ``cursor``, oldest first. bibev stores each batch's cursor
        once the batch is durably written, so a crash re-fetches, never skips."""
        if self.options.api_key is None:
            raise ConfigError("provider 'example-logger' needs api_key to fetch")
        url = self.options.base_url.rstrip("/") + "/messages"
        headers = {"Authorization": f"Bearer {self.options.api_key.get_secret_value()}"}
        while True:
            params: dict[str, Any] = {"limit": self.options.page_size}
            if cursor:
                params["after"] = cursor
            if vins:
                params["vin"] = list(vins)
            body = _get_json(client, url, params, headers)
            messages, cursor = body.get("messages") or [], body.get("next")
            if not messages:
                return
            yield FetchBatch(messages=messages, cursor=cursor, source={"url": url})
            if not cursor:
                return


def _timestamp(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataContractError("t is not epoch seconds", value=value, source="example-logger")
    return datetime.fromtimestamp(value, tz=UTC)


def _get_json(
    client: httpx.Client, url: str, params: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    try:
        response = client.get(url, params=params, headers=headers)
    except httpx.TransportError as exc:
        raise ProviderTransientError(f"FleetLogger unreachable: {exc}") from exc
    if response.status_code in (401, 403):
        raise ProviderAuthError(f"FleetLogger rejected the API key (HTTP {response.status_code})")
    if response.status_code == 429 or response.status_code >= 500:
        retry_after = response.headers.get("Retry-After")
        raise ProviderTransientError(
            f"FleetLogger answered HTTP {response.status_code}",
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    if response.is_error:
        raise ProviderError(f"FleetLogger answered HTTP {response.status_code}: {response.text}")
    body = response.json()
    if not isinstance(body, dict):
        raise ProviderError("FleetLogger answered with something that is not a JSON object")
    return body
