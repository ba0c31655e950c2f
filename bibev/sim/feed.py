"""Tesla Fleet Telemetry payloads for a Kafka producer (the seam of ``bibev sim --kafka``).

``tesla_payloads`` runs the same simulation as ``simulate_fleet`` (same seed, same messages,
re-sends included) but yields each payload as plain values, vehicle by vehicle in delivery
order, one day and batch of vehicles at a time, ready for
``bibev.providers.tesla.encode_payload(vin, created_at, data, is_resend)``. Garbage copies are
not yielded: they are broken files, not broken Kafka records.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from bibev.sim.fleet import make_fleet
from bibev.sim.physics import VehicleSim
from bibev.sim.pipeline import Batch, simulate_batch
from bibev.sim.plan import day_start_utc
from bibev.sim.run import SimConfig, batches
from bibev.sim.wire.fields import BOOL, ENUM, INT, LOCATION, Field, WireFormat
from bibev.sim.wire.render import COPY_RESEND
from bibev.sim.wire.tesla import FLEET_TELEMETRY

_US = 1_000_000


class TeslaPayload(NamedTuple):
    """One Fleet Telemetry record: ``data`` holds (Field name, value) pairs where a value is a
    float, int, bool, enum name, ``(lat, lon)``, a string (old firmware) or None (invalid)."""

    vin: str
    created_at: datetime
    data: list[tuple[str, Any]]
    is_resend: bool
    received_at: datetime


def tesla_payloads(config: SimConfig) -> Iterator[TeslaPayload]:
    """Every Fleet Telemetry payload of the simulation, vehicle by vehicle in delivery order."""
    fleet = make_fleet(config.seed, config.vehicles, config.provider, config.start)
    end_t = day_start_utc(config.end)
    sims = [VehicleSim(config.seed, v, config.start, end_t) for v in fleet]
    for k in range(config.days):
        day = config.start + timedelta(days=k)
        for group in batches(sims, config.batch_size):
            batch = simulate_batch(group, day, FLEET_TELEMETRY, seed=config.seed, mess=config.mess)
            yield from _payloads(batch, FLEET_TELEMETRY)


def _payloads(batch: Batch, fmt: WireFormat) -> Iterator[TeslaPayload]:
    s, d = batch.sampled, batch.delivered
    messages = (
        d.messages.with_row_index("row")
        .filter(pl.col("copy") <= COPY_RESEND)
        .sort(["pos", "received_us", "copy"], maintain_order=True)  # as delivery numbers them
    )
    starts = np.concatenate([[0], np.cumsum(np.bincount(d.datum_msg, minlength=d.messages.height))])
    vins = batch.vins
    for row, pos, copy, payload_us, received_us in messages.select(
        "row", "pos", "copy", "payload_us", "received_us"
    ).iter_rows():
        index = d.datum_index[starts[row] : starts[row + 1]]
        columns = (
            s.field[index],
            s.value[index],
            s.value2[index],
            s.as_string[index],
            s.invalid[index],
        )
        data = [
            (fmt.fields[f].key, _value(fmt.fields[f], float(v), float(v2), bool(a), bool(i)))
            for f, v, v2, a, i in zip(*columns, strict=True)
        ]
        yield TeslaPayload(
            vins[pos],
            datetime.fromtimestamp(payload_us // _US, UTC)
            + timedelta(microseconds=payload_us % _US),
            data,
            copy == COPY_RESEND,
            datetime.fromtimestamp(received_us // _US, UTC)
            + timedelta(microseconds=received_us % _US),
        )


def _value(field: Field, value: float, value2: float, as_string: bool, invalid: bool) -> Any:
    """A datum as ``encode_payload`` takes it (the same value the file emitter writes)."""
    if invalid:
        return None
    if field.kind == LOCATION:
        return (value, value2)
    if field.kind == ENUM:
        return field.names[int(value)]
    typed: Any = bool(value) if field.kind == BOOL else int(value) if field.kind == INT else value
    if as_string:
        return ("true" if typed else "false") if field.kind == BOOL else str(typed)
    return typed
