"""How a wire format samples the car's signals: one ``Field`` per provider key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

FLOAT, INT, BOOL, ENUM, LOCATION = "f", "i", "b", "e", "loc"


@dataclass(frozen=True)
class Field:
    """One provider key, read from one signal.

    ``scale`` turns the canonical unit into the wire unit (km → miles: 1/1.609344); values are
    rounded to ``decimals`` on the wire and sent only when the rounded value changes, at most
    every ``interval`` seconds (an int, or the name of a per-vehicle interval: ``speed``,
    ``odometer``). An enum sends ``names[code]`` (a ``None`` name: not sent).
    """

    key: str
    signal: str
    kind: str = FLOAT
    decimals: int = 2
    scale: float = 1.0
    names: tuple[str | None, ...] = ()
    interval: int | str = 30
    unit: str | None = None
    stringable: bool = True  # may arrive as a string (old firmware, REST APIs)
    invalidable: bool = False  # may arrive flagged unavailable
    path: tuple[str, ...] = ()  # nesting inside the message body (nested formats)


@dataclass(frozen=True)
class WireFormat:
    """A provider message format the simulator writes."""

    provider: str
    name: str
    fields: tuple[Field, ...]
    mode: str  # "stream": on change, per field; "poll": a snapshot of every field
    render: Callable[[RenderInput], tuple[pl.Series, pl.Series, pl.Series]]
    poll_awake_only: bool = False  # a poll of a sleeping car gets no answer (Tesla 408)
    poll_interval_s: int | None = None  # fixed poll interval; None: the vehicle's own
    strings: str = "mess"  # "mess": some values as strings; "always": all (REST); "never"
    topic: str | None = None  # source of stream formats: {topic, partition, offset}
    url: str | None = None  # source of polled formats: {url}, with {vin}
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class RenderInput:
    """What a renderer gets: messages and their datums, both in final file order.

    ``messages``: ``vin, payload_us`` (the message's own time, skew included), ``sample_us``
    (when the values were measured), ``received_us``, ``copy`` (0 original, 1 resend, 2
    truncated, 3 missing VIN, 4 bad timestamp), ``is_resend``, ``offset``, ``message_id``.
    ``datums``: ``msg`` (row of ``messages``), ``field`` (index into ``fmt.fields``),
    ``value``, ``value2`` (longitude of a location), ``as_string``, ``invalid``, ``first``,
    ``last`` (first/last datum of its message).
    """

    fmt: WireFormat
    messages: pl.DataFrame
    datums: pl.DataFrame
    seed: int
