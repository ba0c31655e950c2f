"""``bibev demo``: the whole pipeline on a simulated fleet, on embedded defaults.

One directory (``./bibev-demo`` by default) holds everything the demo makes: the storage root
(``temp/`` … ``segments/`` and the simulator's ``truth/``), a SQLite database ``bibev.db`` and
``report.html``. The stages are the library functions behind the commands a user runs every
day (``bibev sim``, ``compact``, ``transform clean``, ``transform segment``), one after the
other, recorded as one ``demo`` run in the database. The storage root and the database are the
demo's own, never the ``root`` and ``database_url`` settings: the demo runs the same way on
every machine (logging and progress settings still apply).

The directory is marked as the demo's own. Running the demo again empties a marked directory
and starts over; a directory that holds anything else is refused, so that a mistyped ``--root``
never deletes a user's data.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from bibev.errors import ConfigError

if TYPE_CHECKING:
    from bibev.storage import Storage

MARKER = ".bibev-demo"
REPORT = "report.html"
DATABASE = "bibev.db"

OnProgress = Callable[[int, int], None]
#: ``stage(description)`` opens a progress callback for one stage (the CLI draws a bar).
StageProgress = Callable[[str], AbstractContextManager[OnProgress]]


@dataclass(frozen=True)
class DemoConfig:
    """What the demo simulates; the simulated days end yesterday (UTC)."""

    root: Path
    vehicles: int = 10
    days: int = 7
    seed: int = 7
    provider: str = "tesla"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{(self.root / DATABASE).resolve()}"


@dataclass
class DemoResult:
    """What a demo run made: per-stage counts and the sessions' scores against truth."""

    config: DemoConfig
    start: date
    report: Path
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: pl.DataFrame = field(default_factory=pl.DataFrame)


def prepare_root(root: Path) -> None:
    """Make ``root`` an empty demo directory: new, empty, or an earlier demo's (emptied)."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root {root} is a file, not a directory")
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            raise ConfigError(
                f"--root {root} is not empty and was not made by bibev demo: "
                "choose a new or empty directory"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("made by bibev demo; bibev demo may empty this directory\n")


@contextmanager
def _no_progress(description: str) -> Iterator[OnProgress]:
    yield lambda done, total: None


def run_demo(
    config: DemoConfig, *, now: datetime | None = None, stage: StageProgress = _no_progress
) -> DemoResult:
    """Simulate, compact, clean, segment and report (see the module docstring)."""
    from bibev.db import open_database, record_run
    from bibev.storage import Storage

    now = now or datetime.now(UTC)
    prepare_root(config.root)
    start = now.date() - timedelta(days=config.days)
    result = DemoResult(config=config, start=start, report=config.root / REPORT)
    storage = Storage(str(config.root))
    engine = open_database(config.database_url)
    try:
        parameters = {
            "root": str(config.root),
            "vehicles": config.vehicles,
            "days": config.days,
            "seed": config.seed,
            "provider": config.provider,
        }
        with record_run(engine, "demo", parameters) as recorder:
            _pipeline(config, storage, start, now, engine, stage, result)
            with stage("writing the report") as on_progress:
                _report(config, storage, engine, result, now)
                on_progress(1, 1)
            recorder.counts = result.counts
    finally:
        engine.dispose()
    return result


def _pipeline(
    config: DemoConfig,
    storage: Storage,
    start: date,
    now: datetime,
    engine: Any,
    stage: StageProgress,
    result: DemoResult,
) -> None:
    from bibev.pipeline.clean import run_clean
    from bibev.pipeline.compact import run_compact
    from bibev.pipeline.partitions import raise_for_failures
    from bibev.pipeline.segment import run_segment
    from bibev.sim.run import SimConfig, simulate_fleet

    sim_config = SimConfig(
        start=start,
        vehicles=config.vehicles,
        days=config.days,
        seed=config.seed,
        provider=config.provider,
    )
    # one process: on a small fleet, worker processes cost more to start than they win
    with stage("simulating vehicle-days") as on_progress:
        simulated = simulate_fleet(sim_config, storage, on_progress=on_progress, workers=1)
    with stage("compacting") as on_progress:
        compacted = run_compact(storage, now=now, workers=1, on_progress=on_progress)
    with stage("cleaning") as on_progress:
        cleaned = run_clean(storage, engine, now=now, workers=1, on_progress=on_progress)
    with stage("segmenting") as on_progress:
        segmented = run_segment(storage, engine, workers=1, on_progress=on_progress)
    for summary in (compacted, cleaned, segmented):
        raise_for_failures(summary.failures, summary.totals()["partitions"])
    result.counts = {
        "sim": {
            "messages": simulated.messages,
            "files": simulated.files,
            "bytes": simulated.bytes,
            "true_sessions": dict(simulated.sessions),
        },
        "compact": compacted.totals(),
        "clean": cleaned.totals(),
        "segment": segmented.totals(),
    }


def _report(
    config: DemoConfig, storage: Storage, engine: Any, result: DemoResult, now: datetime
) -> None:
    from bibev.db.segments import load_segments
    from bibev.pipeline.accuracy import score_sessions
    from bibev.pipeline.feature_errors import feature_errors
    from bibev.pipeline.segment import SEGMENT_SCHEMA
    from bibev.report.html import FleetReport, render_fleet_report
    from bibev.report.quality import quality_report

    rows = load_segments(engine)
    # a fleet that sent nothing has no sessions: an empty frame still has the columns
    segments = (
        pl.DataFrame(rows, infer_schema_length=None)
        if rows
        else pl.DataFrame(schema=SEGMENT_SCHEMA)
    )
    truth = storage.read_parquet("truth/sessions.parquet")
    result.scores = score_sessions(segments, truth) if segments.height else pl.DataFrame()
    report = FleetReport(
        title="bibev demo: a simulated fleet",
        generated_at=now,
        period=(result.start, result.start + timedelta(days=config.days - 1)),
        segments=segments,
        quality=quality_report(engine),
        vehicles=storage.read_parquet("truth/vehicles.parquet"),
        scores=result.scores,
        feature_errors=feature_errors(segments, truth) if segments.height else pl.DataFrame(),
        notes=[
            f"{config.vehicles} simulated {config.provider} vehicles over {config.days} days "
            f"(seed {config.seed}), every real-world mess on: gaps, repeats, skewed clocks, "
            "garbage records.",
            "Sessions are scored against the simulator's true sessions: a match is the same kind "
            "with time overlap (IoU) of at least 0.5.",
        ],
    )
    storage.write_bytes(REPORT, render_fleet_report(report).encode())
