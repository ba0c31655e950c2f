"""The provider wire formats the simulator writes, by provider and format name."""

from __future__ import annotations

from bibev.errors import ConfigError
from bibev.sim.wire import tesla
from bibev.sim.wire.fields import Field, RenderInput, WireFormat

_ALL: tuple[WireFormat, ...] = (*tesla.FORMATS,)


def _load_others() -> tuple[WireFormat, ...]:
    from bibev.sim.wire import bmw, high_mobility, mobilisight, simjson

    return (*bmw.FORMATS, *high_mobility.FORMATS, *mobilisight.FORMATS, *simjson.FORMATS)


FORMATS: dict[tuple[str, str], WireFormat] = {
    (f.provider, f.name): f for f in (*_ALL, *_load_others())
}
DEFAULT_FORMAT: dict[str, str] = {
    "tesla": "fleet-telemetry-json",
    "bmw": "cardata-stream",
    "high-mobility": "push-v2",
    "mobilisight": "car-state-v2",
    "sim": "sim-json",
}


def formats_of(provider: str) -> list[str]:
    return [name for (p, name) in FORMATS if p == provider]


def get_format(provider: str, name: str | None = None) -> WireFormat:
    """The wire format ``name`` of ``provider`` (its default when ``name`` is None)."""
    if provider not in DEFAULT_FORMAT:
        raise ConfigError(f"unknown provider {provider!r} (one of {', '.join(DEFAULT_FORMAT)})")
    name = name or DEFAULT_FORMAT[provider]
    if (provider, name) not in FORMATS:
        raise ConfigError(
            f"provider {provider!r} has no simulated format {name!r} "
            f"(one of {', '.join(formats_of(provider))})"
        )
    return FORMATS[(provider, name)]


__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "Field",
    "RenderInput",
    "WireFormat",
    "formats_of",
    "get_format",
]
