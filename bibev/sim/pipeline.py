"""One batch of vehicles for one day: physics → sensors → sampling → delivery → wire text.

``simulate_batch`` is the shared core of the file writer (``bibev.sim.run``) and of the Kafka
feed (``bibev.sim.feed``): both get the batch's sampled and delivered messages from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
import pyarrow as pa

from bibev.sim.delivery import Delivered, deliver
from bibev.sim.physics import DayResult, VehicleSim
from bibev.sim.plan import day_start_utc
from bibev.sim.signals import Signals, VehicleDay
from bibev.sim.telemetry import Sampled, sample_poll, sample_stream
from bibev.sim.trace import Trace, empty_trace
from bibev.sim.wire.fields import RenderInput, WireFormat
from bibev.sim.wire.render import assemble

N_PARTITIONS = 4


@dataclass
class Batch:
    """Everything one batch produced for one day."""

    day: date
    sims: list[VehicleSim]
    results: list[DayResult]
    signals: Signals
    sampled: Sampled
    delivered: Delivered

    @property
    def vins(self) -> list[str]:
        return [s.v.vin for s in self.sims]


def simulate_batch(
    sims: list[VehicleSim],
    day: date,
    fmt: WireFormat,
    *,
    seed: int,
    mess: bool,
) -> Batch:
    """Step every vehicle through ``day`` and sample and deliver its messages (advancing each
    vehicle's stream offset)."""
    results = [sim.step(day) for sim in sims]
    trace = Trace.concat([r.trace for r in results])
    lengths = [len(r.trace) for r in results]
    start = day_start_utc(day)
    # Each vehicle is polled until the end of the day or of its own trace, if that runs past
    # midnight: never until another vehicle's (a batch-wide end answered the polls of the
    # others after midnight too, with the values of the day before, so the files depended on
    # how the fleet was cut into batches).
    poll_end = np.array(
        [max(start + 86400, int(r.trace["t"].max()) + 1 if len(r.trace) else 0) for r in results],
        dtype=np.int64,
    )
    for r in results:
        r.trace = empty_trace()  # the batch keeps one copy, the concatenated one
    pos = np.repeat(np.arange(len(sims), dtype=np.int32), lengths)
    days = [VehicleDay(s.v, r.capacity_kwh, r.soh_pct) for s, r in zip(sims, results, strict=True)]
    signals = Signals(trace, pos, days, seed=seed, mess=mess)
    rows = np.flatnonzero(trace["online"]) if mess else np.arange(len(trace))
    per_vehicle = {
        "speed": np.array([s.v.speed_interval_s for s in sims], dtype=np.int64),
        "odometer": np.array([s.v.odometer_interval_s for s in sims], dtype=np.int64),
        "poll": np.array([s.v.poll_interval_s for s in sims], dtype=np.int64),
    }
    if fmt.mode == "stream":
        sampled = sample_stream(fmt, signals, rows, per_vehicle, seed=seed, mess=mess)
    else:
        sampled = sample_poll(
            fmt, signals, rows, per_vehicle, (start, poll_end), seed=seed, mess=mess
        )
    offsets = np.array([sim.next_offset for sim in sims], dtype=np.int64)
    delivered = deliver(
        sampled, signals, seed=seed, mess=mess, stream=fmt.mode == "stream", offsets=offsets
    )
    for sim, offset in zip(sims, offsets.tolist(), strict=True):
        sim.next_offset = offset
    return Batch(day, sims, results, signals, sampled, delivered)


def render_input(batch: Batch, fmt: WireFormat, seed: int) -> RenderInput:
    """The batch's messages and datums as the renderers read them, in file order."""
    d, s = batch.delivered, batch.sampled
    index = np.array([sim.v.index for sim in batch.sims], dtype=np.int64)
    messages = d.messages.with_columns(
        vin=pl.lit(pl.Series(batch.vins, dtype=pl.String)).gather(pl.col("pos")),
        vehicle=pl.lit(pl.Series(index)).gather(pl.col("pos")),
        cut=(pl.col("message_key") % 23).cast(pl.Int64),
        message_id=pl.col("message_key").cast(pl.String),
    ).with_columns(
        partition=(pl.col("vehicle") % N_PARTITIONS).cast(pl.Int64),
        offset=pl.col("offset") + (pl.col("vehicle") // N_PARTITIONS) * 1_000_000_000,
    )
    i = d.datum_index
    datums = pl.DataFrame(
        {
            "msg": d.datum_msg,
            "field": s.field[i].astype(np.int64),
            "value": s.value[i],
            "value2": s.value2[i],
            "as_string": s.as_string[i],
            "invalid": s.invalid[i],
        }
    )
    return RenderInput(fmt, messages, datums, seed)


def render_batch(
    batch: Batch, fmt: WireFormat, seed: int
) -> tuple[pl.DataFrame, pa.Array, np.ndarray]:
    """The batch's file-ordered messages, and their text as pieces (see ``assemble``)."""
    inp = render_input(batch, fmt, seed)
    heads, frags, tails = fmt.render(inp)
    pieces, head_pos = assemble(heads, frags, tails, inp.datums["msg"].to_numpy())
    return inp.messages, pieces, head_pos
