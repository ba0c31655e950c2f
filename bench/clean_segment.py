"""Benchmark ``clean_segment``: bibev ``transform all`` against the original package's approach.

::

    uv run python -m bench clean_segment [--size small|medium|large] [--sizes small,medium]
                                         [--repeat 3] [--workers N] [--json [PATH]]

Both contenders start from the same ``compressed/`` tree (simulated Tesla Fleet Telemetry,
compacted by bibev once and cached), each in a fresh process, one (VIN, day) after the other:

- ``bibev``: ``run_clean`` then ``run_segment`` (what ``bibev transform all`` runs, without the
  database): every signal mapped, clocks fixed, glitches dropped, a clean file per (VIN, day),
  then sessions with features and a segments file per (VIN, day);
- ``pandas``: the original package's pipeline in pandas: read the day, map the provider's keys
  to canonical columns, pivot to one row per instant, carry values forward, then the phase
  rules (``bibev.pipeline.baselines`` describes them) and a phases file per (VIN, day).

Times are medians of ``--repeat`` runs measured inside each process (imports excluded), with
bibev's two stages also timed apart (``clean``, ``segment``); peak RSS is the process's own
``VmHWM`` or its largest worker's. rows/s counts compressed rows read per second; "time vs
bibev" is the contender's time over bibev's (above 1: bibev is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

SIZES: dict[str, tuple[int, int]] = {"small": (10, 2), "medium": (200, 1), "large": (1000, 7)}
CONTENDERS = ("bibev", "pandas")
SEED = 20250301
START = date(2025, 3, 1)
NOW = datetime(2025, 6, 1, tzinfo=UTC)
CACHE = Path(os.environ.get("BIBEV_BENCH_CACHE", Path(tempfile.gettempdir()) / "bibev-bench"))


# -- data -------------------------------------------------------------------------------------


def dataset(size: str) -> Path:
    """A storage root with the compressed days for ``size`` (made once, then cached)."""
    vehicles, days = SIZES[size]
    root = CACHE / f"clean-segment-{size}-{SEED}"
    done = root / ".complete"
    if done.exists():
        return root
    from bibev.pipeline.compact import run_compact
    from bibev.sim.run import SimConfig, simulate_fleet
    from bibev.storage import Storage

    shutil.rmtree(root, ignore_errors=True)
    storage = Storage(str(root))
    config = SimConfig(start=START, vehicles=vehicles, days=days, seed=SEED, provider="tesla")
    simulate_fleet(config, storage)
    summary = run_compact(storage, now=NOW)
    if summary.failures:
        raise RuntimeError(f"compact failed: {summary.failures[:3]}")
    shutil.rmtree(root / "temp", ignore_errors=True)
    done.write_text(json.dumps({"vehicles": vehicles, "days": days, "seed": SEED}))
    return root


def fresh_copy(source: Path, target: Path) -> None:
    """``target/compressed`` as hard links to the cached tree (instant; nobody writes there)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source / "compressed", target / "compressed", copy_function=os.link)


def compressed_files(root: Path) -> list[Path]:
    return sorted((root / "compressed").rglob("*.parquet"))


def input_rows(root: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in compressed_files(root))


# -- contenders (each runs in its own process) ------------------------------------------------


def run_bibev(root: Path, workers: int) -> int:
    from bibev.pipeline.clean import run_clean
    from bibev.pipeline.segment import run_segment
    from bibev.storage import Storage

    storage = Storage(str(root))
    started = time.perf_counter()
    cleaned = run_clean(storage, None, now=NOW, workers=workers)
    STAGES["clean"] = time.perf_counter() - started
    started = time.perf_counter()
    segmented = run_segment(storage, None, workers=workers)
    STAGES["segment"] = time.perf_counter() - started
    if cleaned.failures or segmented.failures:
        raise RuntimeError(f"bibev failed: {(cleaned.failures + segmented.failures)[:3]}")
    return int(segmented.totals()["sessions"])


def _pandas_mapping() -> tuple[dict[str, tuple[str, float, float]], set[str]]:
    """The Tesla mapping as the original package kept it: key → (column, scale, offset)."""
    from bibev.providers.registry import get_registry

    numeric = {}
    for entry in get_registry().get("tesla").mapping:
        if entry.enum is None and entry.column not in numeric.values():
            numeric[entry.key] = (entry.column, entry.scale, entry.offset)
    return numeric, {column for column, _, _ in numeric.values()}


def _pandas_phases(soc: Any) -> Any:
    """The original phase rules on one vehicle-day's SoC series (a pandas Series by time)."""
    import numpy as np
    import pandas as pd

    soc = soc.dropna()
    if soc.empty:
        return pd.DataFrame(columns=["kind", "start", "end", "soc_start", "soc_end", "n"])
    sign = np.sign(soc.diff()).replace(0, np.nan).ffill().bfill().fillna(0)
    gap = soc.index.to_series().diff() > pd.Timedelta(minutes=45)
    phase = ((sign != sign.shift()) | gap).cumsum()
    grouped = soc.groupby(phase.values)
    phases = pd.DataFrame(
        {
            "start": grouped.apply(lambda s: s.index[0]),
            "end": grouped.apply(lambda s: s.index[-1]),
            "soc_start": grouped.first(),
            "soc_end": grouped.last(),
            "n": grouped.size(),
            "after_gap": gap.groupby(phase.values).first(),
        }
    ).reset_index(drop=True)
    merged: list[dict[str, Any]] = []
    for row in phases.to_dict("records"):  # phases < 3 min join the previous one
        short = (row["end"] - row["start"]) < pd.Timedelta(minutes=3)
        if merged and short and not row["after_gap"]:
            last = merged[-1]
            last.update(end=row["end"], soc_end=row["soc_end"], n=last["n"] + row["n"])
        else:
            merged.append(row)
    out = pd.DataFrame(merged).drop(columns="after_gap")
    change = out["soc_end"] - out["soc_start"]
    out["kind"] = np.where(change > 0.5, "charging", np.where(change < -0.5, "discharging", "idle"))
    usable = (out["n"] > 1) & ((out["end"] - out["start"]) <= pd.Timedelta(hours=24))
    return out[usable]


def run_pandas(root: Path, workers: int) -> int:
    import pandas as pd

    numeric, columns = _pandas_mapping()
    sessions = 0
    for path in compressed_files(root):
        rows = pd.read_parquet(path)
        rows = rows[rows["key"].isin(numeric.keys()) & ~rows["invalid"].fillna(False)]
        text = pd.to_numeric(rows["value_str"], errors="coerce")
        value = rows["value_f64"].fillna(rows["value_i64"].astype("float64")).fillna(text)
        mapped = rows["key"].map(numeric)
        wide_rows = pd.DataFrame(
            {
                "ts": rows["ts"],
                "column": mapped.str[0],
                "value": value * mapped.str[1] + mapped.str[2],
            }
        )
        wide = wide_rows.pivot_table(index="ts", columns="column", values="value", aggfunc="first")
        wide = wide.reindex(columns=sorted(columns)).sort_index().ffill()
        phases = _pandas_phases(wide["soc_pct"])
        target = root / "phases" / path.relative_to(root / "compressed")
        target.parent.mkdir(parents=True, exist_ok=True)
        phases.to_parquet(target, compression="zstd")
        sessions += len(phases)
    return sessions


RUNNERS: dict[str, Callable[[Path, int], int]] = {"bibev": run_bibev, "pandas": run_pandas}
#: Seconds of each stage of the last bibev run in this process (``clean``, ``segment``).
STAGES: dict[str, float] = {}


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``; ``ru_maxrss`` would include the parent's
    peak, which Linux carries over ``fork`` and ``exec``)."""
    return _vm_hwm_mb("self") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _vm_hwm_mb(pid: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class WorkerPeaks:
    """The largest ``VmHWM`` of this process's child processes (the ``--workers`` pool), read
    every 50 ms while the contender runs: a child's ``ru_maxrss`` starts at its parent's."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> WorkerPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            for pid in _children():
                self.peak = max(self.peak, _vm_hwm_mb(pid))


def _children() -> list[str]:
    pids = []
    for task in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += task.read_text().split()
    return pids


def contender_process(name: str, source: Path, workers: int) -> dict[str, float]:
    """Run one contender once in this process on a fresh copy of ``source``."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=CACHE))
    try:
        root = work / "root"
        fresh_copy(source, root)
        import fsspec.implementations.local  # noqa: F401  (imports are not part of the time)
        import pandas  # noqa: F401
        import polars  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        import bibev.pipeline.clean
        import bibev.pipeline.segment  # noqa: F401
        from bibev.providers.registry import get_registry

        get_registry().entries()
        with WorkerPeaks() as workers_peak:
            started = time.perf_counter()
            sessions = RUNNERS[name](root, workers)
            seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak = max(peak_rss_mb(), workers_peak.peak)
    return {"seconds": seconds, "peak_rss_mb": peak, "sessions": sessions, **STAGES}


# -- the table --------------------------------------------------------------------------------


@dataclass
class Measure:
    size: str
    contender: str
    seconds: float
    runs: list[float]
    rows_per_s: float
    peak_rss_mb: float
    sessions: int
    bibev_speedup: float  # this contender's time / bibev's time
    stages: dict[str, float]  # bibev: median seconds of each stage


def measure_size(size: str, repeat: int, workers: int, contenders: list[str]) -> list[Measure]:
    source = dataset(size)
    rows = input_rows(source)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name in contenders:  # interleaved, so that machine noise hits every contender
            results[name].append(_spawn(name, source, workers))
    measures = []
    for name in contenders:
        runs = [r["seconds"] for r in results[name]]
        seconds = statistics.median(runs)
        measures.append(
            Measure(
                size=size,
                contender=name,
                seconds=seconds,
                runs=runs,
                rows_per_s=rows / seconds,
                peak_rss_mb=max(r["peak_rss_mb"] for r in results[name]),
                sessions=int(results[name][-1]["sessions"]),
                bibev_speedup=0.0,
                stages={
                    stage: statistics.median(r[stage] for r in results[name])
                    for stage in ("clean", "segment")
                    if all(stage in r for r in results[name])
                },
            )
        )
    if "bibev" in contenders:
        reference = next(m.seconds for m in measures if m.contender == "bibev")
        for m in measures:
            m.bibev_speedup = m.seconds / reference
    vehicles, days = SIZES[size]
    partitions = len(compressed_files(source))
    print(
        f"\n{size}: {vehicles} vehicles x {days} day(s), {partitions} (VIN, day) partitions, "
        f"{rows:,} compressed rows",
        file=sys.stderr,
    )
    return measures


def _spawn(name: str, source: Path, workers: int) -> dict[str, float]:
    argv = [sys.executable, "-m", "bench.clean_segment", "--contender", name]
    argv += ["--source", str(source), "--workers", str(workers)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(measures: list[Measure]) -> str:
    lines = [
        "| size | contender | median s | rows/s | peak RSS MB | sessions | time vs bibev |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for m in measures:
        lines.append(
            f"| {m.size} | {m.contender} | {m.seconds:.2f} | {m.rows_per_s:,.0f} | "
            f"{m.peak_rss_mb:.0f} | {m.sessions:,} | {m.bibev_speedup:.2f}x |"
        )
    return "\n".join(lines)


def growth(measures: list[Measure]) -> str:
    """How each contender's cost per row grows from the smaller size to the larger one."""
    sizes = list(dict.fromkeys(m.size for m in measures))
    if len(sizes) < 2:
        return ""
    by = {(m.size, m.contender): m for m in measures}
    parts = []
    for name in dict.fromkeys(m.contender for m in measures):
        small, large = by[(sizes[0], name)], by[(sizes[-1], name)]
        parts.append(f"{name} {small.rows_per_s / large.rows_per_s:.2f}")
    return f"per-row cost, {sizes[-1]} / {sizes[0]}: " + ", ".join(parts)


def stages(measures: list[Measure]) -> str:
    """Where bibev's time goes: the median of each stage, per size."""
    parts = [
        f"{m.size} " + ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in m.stages.items())
        for m in measures
        if m.stages
    ]
    return "bibev stages (medians): " + "; ".join(parts) if parts else ""


def targets(measures: list[Measure]) -> list[str]:
    lines = []
    for size in dict.fromkeys(m.size for m in measures):
        by = {m.contender: m for m in measures if m.size == size}
        if "bibev" in by and "pandas" in by:
            got = by["pandas"].bibev_speedup
            lines.append(f"{size}: ≥ 20x pandas: {got:.2f} {'ok' if got >= 20 else 'MISSED'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench clean_segment", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=SIZES, default=None)
    parser.add_argument("--sizes", default=None, help="comma-separated sizes, e.g. small,medium")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=1, help="bibev --workers (default 1: one process)"
    )
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument(
        "--json", nargs="?", const="-", default=None, help="write JSON (to PATH, or stdout)"
    )
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.contender:
        print(json.dumps(contender_process(args.contender, args.source, args.workers)))
        return 0
    sizes = (args.sizes or args.size or "small").split(",")
    CACHE.mkdir(parents=True, exist_ok=True)
    contenders = [c for c in args.contenders.split(",") if c]
    measures = [
        m for size in sizes for m in measure_size(size, args.repeat, args.workers, contenders)
    ]
    document = {"benchmark": "clean_segment", "results": [asdict(m) for m in measures]}
    if args.json == "-":
        print(json.dumps(document, indent=2))
        return 0
    print(table(measures))
    for line in [stages(measures), growth(measures), *targets(measures)]:
        if line:
            print(line)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"({machine}; medians of {args.repeat} runs; bibev with --workers {args.workers})")
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
