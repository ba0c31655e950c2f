"""Benchmark ``bibev sim``: how long simulating a fleet takes, and what it writes.

::

    uv run python -m bench sim [--size small|medium|target|large|all] [--repeat N]
                               [--workers N] [--json [PATH]]

Each run is a fresh process (imports excluded from the time) writing the default format (Tesla
Fleet Telemetry JSON, mess on, seed fixed) to a new local temporary root, which is removed
afterwards. The target is 1,000 vehicles × 1 day in under 30 seconds. Reported: median wall
time of ``--repeat`` runs (the small size runs 3 times by default, the others once) and CPU
time (steadier than wall time on a shared machine), messages and lines written, messages/s, MB
written and MB/s, and the peak RSS of the process (sampled with psutil). The last lines compare
the cost per message at the largest size with the smallest, and the 1,000 × 1 run with the
target.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import psutil

SIZES: dict[str, tuple[int, int]] = {
    "small": (20, 1),
    "medium": (200, 1),
    "target": (1000, 1),
    "large": (1000, 7),
}
DEFAULT_SIZES = ("small", "target")
SEED = 20250301
START = date(2025, 3, 1)
TARGET_S = 30.0


def child(vehicles: int, days: int, root: str, workers: int) -> dict[str, Any]:
    """One simulation in this process (and ``workers`` worker processes); returns its figures."""
    from bibev.sim import SimConfig, simulate_fleet
    from bibev.storage import Storage

    config = SimConfig(start=START, vehicles=vehicles, days=days, seed=SEED)
    cpu_before = _cpu_seconds()
    began = time.perf_counter()
    summary = simulate_fleet(config, Storage(root), workers=workers)
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu_before,
        "messages": summary.messages,
        "lines": summary.lines,
        "files": summary.files,
        "bytes": summary.bytes,
    }


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system): steadier than wall
    time on a shared machine."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_once(vehicles: int, days: int, workers: int) -> dict[str, Any]:
    """A fresh process simulating into a fresh root; the peak RSS of it and its workers
    together is sampled with psutil."""
    root = tempfile.mkdtemp(prefix="bibev-bench-sim-")
    argv = [sys.executable, "-m", "bench.sim", "--child", str(vehicles), str(days), root]
    argv += ["--workers", str(workers)]
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        peak = _watch_rss(proc.pid)
        stdout, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"simulation of {vehicles}×{days} failed ({proc.returncode})")
        figures = json.loads(stdout.strip().splitlines()[-1])
        figures["peak_rss_mb"] = peak() / 1e6
        return figures
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _watch_rss(pid: int) -> Callable[[], int]:
    process = psutil.Process(pid)
    peak = [0]

    def sample() -> None:
        while True:
            try:
                family = [process, *process.children(recursive=True)]
                rss = 0
                for member in family:
                    with contextlib.suppress(psutil.Error):
                        rss += member.memory_info().rss
                peak[0] = max(peak[0], rss)
                if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.Error:
                return
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()

    def result() -> int:
        thread.join(timeout=1.0)
        return peak[0]

    return result


def measure(size: str, repeat: int, workers: int) -> dict[str, Any]:
    vehicles, days = SIZES[size]
    runs = [run_once(vehicles, days, workers) for _ in range(repeat)]
    seconds = statistics.median(r["seconds"] for r in runs)
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    last = runs[-1]
    return {
        "size": size,
        "vehicles": vehicles,
        "days": days,
        "runs": repeat,
        "workers": workers,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "messages": last["messages"],
        "lines": last["lines"],
        "files": last["files"],
        "mb": last["bytes"] / 1e6,
        "messages_per_s": last["messages"] / seconds,
        "mb_per_s": last["bytes"] / 1e6 / seconds,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "all_seconds": [r["seconds"] for r in runs],
    }


def table(results: list[dict[str, Any]]) -> str:
    head = f"{'size':8} {'vehicles':>8} {'days':>4} {'workers':>7} {'runs':>4} {'messages':>10} "
    head += f"{'seconds':>8} {'cpu s':>7} {'msg/s':>9} {'MB':>8} {'MB/s':>6} {'peak RSS MB':>11}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['size']:8} {r['vehicles']:>8} {r['days']:>4} {r['workers']:>7} {r['runs']:>4} "
            f"{r['messages']:>10,} {r['seconds']:>8.2f} {r['cpu_seconds']:>7.2f} "
            f"{r['messages_per_s']:>9,.0f} {r['mb']:>8.1f} "
            f"{r['mb_per_s']:>6.1f} {r['peak_rss_mb']:>11.0f}"
        )
    if len(results) >= 2:
        small, big = results[0], results[-1]
        ratio = (big["seconds"] / big["messages"]) / (small["seconds"] / small["messages"])
        lines.append(f"cost per message, {big['size']} / {small['size']}: {ratio:.2f}×")
    for r in results:
        if (r["vehicles"], r["days"]) == SIZES["target"]:
            verdict = "meets" if r["seconds"] < TARGET_S else "MISSES"
            target = f"{verdict} the {TARGET_S:.0f} s target"
            lines.append(f"1,000 vehicles × 1 day: {r['seconds']:.1f} s ({target})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench sim", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--size",
        default=",".join(DEFAULT_SIZES),
        help="small, medium, target, large, all, or a list",
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per size (default: 3 for small, else 1)"
    )
    parser.add_argument(
        "--json", nargs="?", const="-", default=None, help="write JSON (to PATH, or stdout)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (default: 1, as bibev sim)"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("VEHICLES", "DAYS", "ROOT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        vehicles, days, root = args.child
        print(json.dumps(child(int(vehicles), int(days), root, args.workers)))
        return 0
    sizes = list(SIZES) if args.size == "all" else [s.strip() for s in args.size.split(",")]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {', '.join(unknown)} (one of {', '.join(SIZES)}, all)")
    results = [measure(s, args.repeat or (3 if s == "small" else 1), args.workers) for s in sizes]
    if args.json == "-":
        print(json.dumps({"benchmark": "sim", "results": results}, indent=2))
    else:
        print(table(results))
        if args.json:
            Path(args.json).write_text(
                json.dumps({"benchmark": "sim", "results": results}, indent=2)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
