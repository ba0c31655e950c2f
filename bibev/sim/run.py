"""``simulate_fleet``: the simulation written to a storage root (``temp/`` and ``truth/``)."""

from __future__ import annotations

import logging
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import polars as pl

from bibev.errors import ConfigError
from bibev.sim.fleet import PROVIDERS, make_fleet
from bibev.sim.physics import DayResult, VehicleSim
from bibev.sim.pipeline import render_batch, simulate_batch
from bibev.sim.plan import day_start_utc
from bibev.sim.truth import TruthCollector, garbage_rows
from bibev.sim.wire import get_format
from bibev.sim.writer import TempWriter, write_truth
from bibev.storage import Storage

logger = logging.getLogger(__name__)

OnProgress = Callable[[int, int], None]
MAX_VEHICLES = 1_000_000


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. ``start`` is the first UTC day; ``format`` defaults to the provider's
    main format; ``mess=False`` gives exact sensors and clean delivery (for debugging)."""

    start: date
    vehicles: int = 10
    days: int = 1
    seed: int = 0
    provider: str = "tesla"
    format: str | None = None
    mess: bool = True
    batch_size: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.vehicles <= MAX_VEHICLES:
            raise ConfigError(f"--vehicles must be between 1 and {MAX_VEHICLES}")
        if self.days < 1:
            raise ConfigError("--days must be at least 1")
        if self.seed < 0:
            raise ConfigError("--seed must not be negative")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        if self.provider not in PROVIDERS:
            raise ConfigError(f"unknown provider {self.provider!r} (one of {', '.join(PROVIDERS)})")
        get_format(self.provider, self.format)

    @property
    def format_name(self) -> str:
        return get_format(self.provider, self.format).name

    @property
    def end(self) -> date:
        """The day after the last simulated day."""
        return self.start + timedelta(days=self.days)


@dataclass
class SimSummary:
    """What a simulation wrote."""

    config: SimConfig
    vins: list[str]
    messages: int = 0
    lines: int = 0
    files: int = 0
    bytes: int = 0
    sessions: dict[str, int] = field(default_factory=dict)
    offline_sessions: int = 0
    mess: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["config"] = {**asdict(self.config), "format": self.config.format_name}
        return out


def default_start(days: int, today: date) -> date:
    """The start that makes the last simulated day yesterday (``today`` in UTC)."""
    return today - timedelta(days=days)


def batches(sims: list[VehicleSim], size: int) -> list[list[VehicleSim]]:
    return [sims[i : i + size] for i in range(0, len(sims), size)]


@dataclass
class BatchOutcome:
    """What one batch of vehicles produced for one day (small: the files are written)."""

    sims: list[VehicleSim]  # their state after the day
    results: list[DayResult]  # sessions and capacity (traces dropped)
    garbage: pl.DataFrame | None
    counts: Counter[str]
    lines: int


def run_batch(
    sims: list[VehicleSim],
    day: date,
    config: SimConfig,
    storage: Storage,
    writer: TempWriter | None = None,
) -> BatchOutcome:
    """Simulate, render and write one batch-day. Runs in this process (with the caller's
    ``writer``) or in a worker process (with its own, closed before returning)."""
    fmt = get_format(config.provider, config.format)
    own = writer is None
    out = writer or TempWriter(storage, seed=config.seed, fmt=fmt.name)
    try:
        batch = simulate_batch(sims, day, fmt, seed=config.seed, mess=config.mess)
        messages, pieces, head_pos = render_batch(batch, fmt, config.seed)
        keys = out.write_batch(messages, pieces, head_pos, batch.vins, day)
    finally:
        if own:
            out.close()
    s, d = batch.sampled, batch.delivered
    counts: Counter[str] = Counter(d.stats)
    counts.update(
        datums=int(s.msg.size),
        repeated_records=s.repeats,
        string_values=int(s.as_string.sum()),
        invalid_values=int(s.invalid.sum()),
        out_of_order_lines=out_of_order(messages),
    )
    if own:
        counts.update(files=len(out.files), bytes=sum(f.bytes for f in out.files))
    return BatchOutcome(sims, batch.results, garbage_rows(messages, keys), counts, messages.height)


def _run_task(task: tuple[list[VehicleSim], date, SimConfig, Storage]) -> BatchOutcome:
    return run_batch(*task)


def simulate_fleet(
    config: SimConfig,
    storage: Storage,
    *,
    on_progress: OnProgress | None = None,
    workers: int = 1,
) -> SimSummary:
    """Simulate the fleet and write ``temp/`` (raw messages) and ``truth/`` under ``storage``.

    Vehicles are simulated day by day in batches of ``config.batch_size`` (memory is bounded by
    a batch), the batches of a day in ``workers`` processes; the files do not depend on either.
    ``on_progress(done, total)`` counts vehicle-days."""
    fmt = get_format(config.provider, config.format)
    fleet = make_fleet(config.seed, config.vehicles, config.provider, config.start)
    end_t = day_start_utc(config.end)
    groups = batches(
        [VehicleSim(config.seed, v, config.start, end_t) for v in fleet], config.batch_size
    )
    truth = TruthCollector(fleet, fmt.name)
    summary = SimSummary(config, [v.vin for v in fleet])
    counts: Counter[str] = Counter()
    done, total = 0, config.days * len(fleet)
    writer = TempWriter(storage, seed=config.seed, fmt=fmt.name)
    pool = _pool(workers, len(groups))
    try:
        for k in range(config.days):
            day = config.start + timedelta(days=k)
            before = counts["messages"]
            for g, outcome in enumerate(_day_outcomes(pool, groups, day, config, storage, writer)):
                groups[g] = outcome.sims
                truth.add(day, outcome.sims, outcome.results, outcome.garbage)
                counts.update(outcome.counts)
                summary.lines += outcome.lines
                done += len(outcome.sims)
                if on_progress:
                    on_progress(done, total)
            logger.info(
                "simulated %s: %d vehicles, %d messages",
                day,
                len(fleet),
                counts["messages"] - before,
            )
    finally:
        writer.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    counts.update(files=len(writer.files), bytes=sum(f.bytes for f in writer.files))
    summary.messages = counts.pop("messages", 0)
    summary.files, summary.bytes = counts.pop("files", 0), counts.pop("bytes", 0)
    frames = truth.frames(mess=config.mess)
    summary.sessions = dict(Counter(frames["sessions"]["kind"].to_list()))
    summary.offline_sessions = int(frames["sessions"]["offline"].sum())
    summary.mess = dict(sorted(counts.items()))
    write_truth(storage, frames, summary.as_dict())
    return summary


def _pool(workers: int, n_groups: int) -> ProcessPoolExecutor | None:
    if workers <= 1 or n_groups <= 1:
        return None
    # spawn, not fork: polars' thread pool does not survive a fork
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=min(workers, n_groups), mp_context=context)


def _day_outcomes(
    pool: ProcessPoolExecutor | None,
    groups: list[list[VehicleSim]],
    day: date,
    config: SimConfig,
    storage: Storage,
    writer: TempWriter,
) -> Iterator[BatchOutcome]:
    if pool is None:
        for group in groups:
            yield run_batch(group, day, config, storage, writer)
        return
    yield from pool.map(_run_task, [(group, day, config, storage) for group in groups])


def out_of_order(messages: pl.DataFrame) -> int:
    """Lines whose message time is earlier than the line before it in the same file."""
    if messages.height < 2:
        return 0
    same = (
        (pl.col("pos") == pl.col("pos").shift())
        & (pl.col("day") == pl.col("day").shift())
        & (pl.col("chunk") == pl.col("chunk").shift())
    )
    earlier = pl.col("payload_us") < pl.col("payload_us").shift()
    return int(messages.select((same & earlier).sum()).item())


def run_sim(
    storage: Storage,
    *,
    start: date,
    vehicles: int = 10,
    days: int = 1,
    seed: int = 0,
    provider: str = "tesla",
    format: str | None = None,
    mess: bool = True,
    on_progress: OnProgress | None = None,
) -> SimSummary:
    """``simulate_fleet`` with keyword arguments instead of a ``SimConfig``."""
    config = SimConfig(
        start=start,
        vehicles=vehicles,
        days=days,
        seed=seed,
        provider=provider,
        format=format,
        mess=mess,
    )
    return simulate_fleet(config, storage, on_progress=on_progress)
