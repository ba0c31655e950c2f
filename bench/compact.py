"""Benchmark ``compact``: bibev against three baselines on the same simulated temp/ files.

::

    uv run python -m bench compact [--size small|medium|large] [--sizes small,medium]
                                   [--repeat 3] [--workers N] [--json [PATH]]

Contenders, each run in a fresh process on a fresh copy (hard links) of the same ``temp/``
tree of simulated Tesla Fleet Telemetry JSON, one (VIN, day) after the other, every output a
zstd Parquet file per (VIN, day):

- ``bibev``: ``run_compact`` (flatten, route, deduplicate, merge, atomic write, verify, delete)
  in one process (``--workers 1``, the default here; every contender may use threads inside);
- ``floor``: bare ``polars.read_ndjson`` + ``write_parquet``, no flattening (just reading and
  writing these bytes with polars' defaults; a (VIN, day) with a broken line is read again
  without it);
- ``duckdb``: ``read_json`` → the same flattening in SQL (unnest data, typed value columns,
  locations split, units, message ids, duplicates removed, sorted) → ``COPY … TO parquet``;
- ``pandas``: the original package's approach, ``read_json(lines=True)`` and pyarrow
  ``write_table``, with the same flattening done in pandas (``json_normalize``, ``explode``).

Times are medians of ``--repeat`` runs measured inside each process (imports excluded); peak RSS
is the process's own high-water mark (``VmHWM``: ``ru_maxrss`` would include the bench's own
peak, which Linux carries over ``fork`` and ``exec``), or that of bibev's largest worker process
with ``--workers`` above 1. MB/s is input JSON per second, msgs/s input messages per second;
"time vs bibev" is the contender's time over bibev's (above 1: bibev is faster).
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.stream import peak_rss_mb

SIZES: dict[str, tuple[int, int]] = {"small": (10, 1), "medium": (200, 1), "large": (1000, 7)}
CONTENDERS = ("bibev", "floor", "duckdb", "pandas")
SEED = 20250301
START = date(2025, 3, 1)
CACHE = Path(os.environ.get("BIBEV_BENCH_CACHE", Path(tempfile.gettempdir()) / "bibev-bench"))

Partition = tuple[str, str, list[str]]  # vin, day, temp file paths


# -- data -------------------------------------------------------------------------------------


def dataset(size: str) -> Path:
    """A storage root with the simulated ``temp/`` for ``size`` (simulated once, then cached)."""
    vehicles, days = SIZES[size]
    root = CACHE / f"compact-{size}-{SEED}"
    done = root / ".complete"
    if done.exists():
        return root
    from bibev.sim.run import SimConfig, simulate_fleet
    from bibev.storage import Storage

    shutil.rmtree(root, ignore_errors=True)
    config = SimConfig(start=START, vehicles=vehicles, days=days, seed=SEED, provider="tesla")
    simulate_fleet(config, Storage(str(root)))
    done.write_text(json.dumps({"vehicles": vehicles, "days": days, "seed": SEED}))
    return root


def fresh_copy(source: Path, target: Path) -> None:
    """``target/temp`` as hard links to ``source/temp``: instant, and deleting them (as bibev
    does) leaves the source intact."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source / "temp", target / "temp", copy_function=os.link)


def partitions(root: Path) -> list[Partition]:
    found = []
    for vin_dir in sorted((root / "temp").iterdir()):
        for day_dir in sorted(vin_dir.iterdir()):
            files = sorted(str(p) for p in day_dir.iterdir() if p.is_file())
            if files:
                found.append((vin_dir.name, day_dir.name, files))
    return found


def input_size(root: Path) -> tuple[int, int]:
    """(bytes, lines) of every temp file."""
    total = lines = 0
    for _, _, files in partitions(root):
        for path in files:
            data = Path(path).read_bytes()
            total += len(data)
            lines += sum(1 for line in data.split(b"\n") if line.strip())
    return total, lines


# -- contenders (each runs in its own process) ------------------------------------------------


def run_bibev(root: Path, out: Path, workers: int) -> int:
    from bibev.pipeline.compact import run_compact
    from bibev.storage import Storage

    last = max(date.fromisoformat(day) for _, day, _ in partitions(root))
    now = datetime.combine(last + timedelta(days=2), datetime.min.time(), UTC)
    summary = run_compact(Storage(str(root)), now=now, workers=workers)
    if summary.failures:
        raise RuntimeError(f"bibev failed: {summary.failures}")
    return sum(p.stat().st_size for p in (root / "compressed").rglob("*.parquet"))


def _json_lines(data: bytes) -> bytes:
    good = []
    for line in data.split(b"\n"):
        try:
            if isinstance(json.loads(line), dict):
                good.append(line)
        except ValueError:
            continue
    return b"\n".join(good)


def run_floor(root: Path, out: Path, workers: int) -> int:
    import polars as pl

    written = 0
    for vin, day, files in partitions(root):
        data = b"".join(Path(path).read_bytes() for path in files)
        try:
            frame = pl.read_ndjson(data, infer_schema_length=None, ignore_errors=True)
        except pl.exceptions.ComputeError:  # a broken line: keep the lines that parse
            frame = pl.read_ndjson(_json_lines(data), infer_schema_length=None, ignore_errors=True)
        target = out / day / f"{vin}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(target, compression="zstd")
        written += target.stat().st_size
    return written


DUCKDB_COLUMNS = (
    "{provider: 'VARCHAR', received_at: 'VARCHAR', payload: 'STRUCT(vin VARCHAR, "
    "createdAt VARCHAR, isResend BOOLEAN, data STRUCT(key VARCHAR, value JSON)[])'}"
)
DUCKDB_SQL = """
COPY (
  WITH msgs AS (
    SELECT trim(payload.vin) AS vin, TRY_CAST(payload.createdAt AS TIMESTAMPTZ) AS ts,
           TRY_CAST(received_at AS TIMESTAMPTZ) AS received_at, payload.isResend AS resend,
           payload.data AS data
    FROM read_json($files, format='newline_delimited', columns={columns}, ignore_errors=true)
    WHERE provider = 'tesla'
  ), datums AS (
    SELECT vin, ts, received_at, d.key AS key, d.value AS v
    FROM (SELECT vin, ts, received_at, unnest(data) AS d FROM msgs WHERE ts IS NOT NULL)
  ), typed AS (
    SELECT vin, ts, received_at, key,
      COALESCE(TRY_CAST(j(v, '$.doubleValue') AS DOUBLE),
               TRY_CAST(CAST(TRY_CAST(j(v, '$.floatValue') AS FLOAT) AS VARCHAR) AS DOUBLE))
        AS value_f64,
      TRY_CAST(COALESCE(j(v, '$.intValue'), j(v, '$.longValue')) AS BIGINT) AS value_i64,
      COALESCE({string_fields}) AS value_str,
      TRY_CAST(j(v, '$.booleanValue') AS BOOLEAN) AS value_bool,
      COALESCE(TRY_CAST(j(v, '$.invalid') AS BOOLEAN), false) AS invalid
    FROM datums WHERE json_extract(v, '$.locationValue') IS NULL
    UNION ALL
    SELECT vin, ts, received_at, key || '.' || part,
           TRY_CAST(j(v, '$.locationValue.' || part) AS DOUBLE), NULL, NULL, NULL, false
    FROM datums, (VALUES ('latitude'), ('longitude')) AS p(part)
    WHERE json_extract(v, '$.locationValue') IS NOT NULL
    UNION ALL
    SELECT vin, ts, received_at, '_isResend', NULL, NULL, NULL, true, false
    FROM msgs WHERE resend AND ts IS NOT NULL
  )
  SELECT typed.vin, 'tesla' AS provider, ts, min(received_at) AS received_at, typed.key,
         value_f64, value_i64, value_str, value_bool, any_value(units.unit) AS unit,
         typed.vin || ':' || strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') AS message_id, invalid
  FROM typed LEFT JOIN units ON units.key = typed.key
  WHERE CAST(ts AS DATE) = CAST($day AS DATE)
  GROUP BY typed.vin, ts, typed.key, value_f64, value_i64, value_str, value_bool, invalid
  ORDER BY ts, typed.key
) TO '{target}' (FORMAT parquet, COMPRESSION zstd)
"""


def run_duckdb(root: Path, out: Path, workers: int) -> int:
    import duckdb

    from bibev.pipeline.compact.tesla_json import STRING_FIELDS
    from bibev.providers.tesla.mapping import TELEMETRY_UNITS

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE MACRO j(v, path) AS json_extract_string(v, path)")
    con.execute("CREATE TABLE units (key VARCHAR, unit VARCHAR)")
    con.executemany("INSERT INTO units VALUES (?, ?)", list(TELEMETRY_UNITS.items()))
    strings = ", ".join(f"j(v, '$.{name}')" for name in STRING_FIELDS)
    written = 0
    for vin, day, files in partitions(root):
        target = out / day / f"{vin}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        sql = DUCKDB_SQL.format(columns=DUCKDB_COLUMNS, string_fields=strings, target=target)
        con.execute(sql, {"files": files, "day": day})
        written += target.stat().st_size
    return written


def _read_lines_pandas(path: str) -> Any:
    """``read_json(lines=True)``; a file with a broken line is read line by line instead."""
    import pandas as pd

    try:
        return pd.read_json(path, lines=True, dtype=False)
    except ValueError:
        records = []
        for line in Path(path).read_bytes().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return pd.DataFrame.from_records(records)


def _flatten_pandas(frame: Any, vin: str, day: str) -> Any:
    import pandas as pd

    from bibev.pipeline.compact.tesla_json import STRING_FIELDS
    from bibev.providers.tesla.mapping import TELEMETRY_UNITS

    frame = frame[frame["provider"] == "tesla"]
    payload = pd.json_normalize(frame["payload"].tolist())
    payload["received_at"] = pd.to_datetime(
        frame["received_at"].to_numpy(), utc=True, errors="coerce"
    )
    payload["ts"] = pd.to_datetime(payload["createdAt"], utc=True, errors="coerce")
    payload = payload[payload["vin"].str.strip() == vin].dropna(subset=["ts"])
    datums = payload[["ts", "received_at", "data"]].explode("data").dropna(subset=["data"])
    values = pd.json_normalize(datums["data"].tolist())
    values.index = datums.index
    values = values.join(datums[["ts", "received_at"]])

    def column(name: str) -> Any:
        return values[name] if name in values else pd.Series(None, index=values.index, dtype=object)

    rows = pd.DataFrame(
        {
            "ts": values["ts"],
            "received_at": values["received_at"],
            "key": values["key"],
            "value_f64": pd.to_numeric(column("value.doubleValue"), errors="coerce").fillna(
                pd.to_numeric(column("value.floatValue"), errors="coerce")
            ),
            "value_i64": pd.to_numeric(
                column("value.intValue").fillna(column("value.longValue")), errors="coerce"
            ).astype("Int64"),
            "value_str": pd.concat([column(f"value.{name}") for name in STRING_FIELDS], axis=1)
            .bfill(axis=1)
            .iloc[:, 0],
            "value_bool": column("value.booleanValue").astype("boolean"),
            "invalid": column("value.invalid").fillna(False).astype(bool),
        }
    )
    located = values[column("value.locationValue.latitude").notna()]
    halves = [
        pd.DataFrame(
            {
                "ts": located["ts"],
                "received_at": located["received_at"],
                "key": located["key"] + f".{half}",
                "value_f64": located[f"value.locationValue.{half}"].astype(float),
                "invalid": False,
            }
        )
        for half in ("latitude", "longitude")
    ]
    rows = pd.concat([rows[column("value.locationValue.latitude").isna()], *halves])
    rows = rows[rows["ts"].dt.strftime("%Y-%m-%d") == day]
    rows.insert(0, "vin", vin)
    rows.insert(1, "provider", "tesla")
    rows["unit"] = rows["key"].map(TELEMETRY_UNITS)
    rows["message_id"] = vin + ":" + rows["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    identity = ["vin", "ts", "key", "value_f64", "value_i64", "value_str", "value_bool", "invalid"]
    rows = rows.sort_values([*identity, "received_at"]).drop_duplicates(subset=identity)
    return rows.sort_values(["ts", "key"])


def run_pandas(root: Path, out: Path, workers: int) -> int:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    written = 0
    for vin, day, files in partitions(root):
        frame = pd.concat([_read_lines_pandas(path) for path in files], ignore_index=True)
        rows = _flatten_pandas(frame, vin, day)
        target = out / day / f"{vin}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), target, compression="zstd")
        written += target.stat().st_size
    return written


RUNNERS: dict[str, Callable[[Path, Path, int], int]] = {
    "bibev": run_bibev,
    "floor": run_floor,
    "duckdb": run_duckdb,
    "pandas": run_pandas,
}


def contender_process(name: str, source: Path, workers: int) -> dict[str, float]:
    """Run one contender once in this process on a fresh copy of ``source``."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=CACHE))
    try:
        root, out = work / "root", work / "out"
        fresh_copy(source, root)
        if name == "pandas":
            import pandas  # noqa: F401  (imports are not part of the time)
            import pyarrow.parquet  # noqa: F401
        elif name == "duckdb":
            import duckdb  # noqa: F401
        import fsspec  # noqa: F401
        import polars  # noqa: F401

        import bibev.pipeline.compact  # noqa: F401
        from bibev.providers.registry import get_registry

        get_registry().entries()  # plugin discovery, once per process

        started = time.perf_counter()
        written = RUNNERS[name](root, out, workers)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # A worker process's ru_maxrss starts from this process's size when it was forked, which
    # is at most this process's own peak: the larger of the two is the largest process's peak.
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak = max(peak_rss_mb(), workers_peak)
    return {"seconds": seconds, "peak_rss_mb": peak, "bytes_out": written}


# -- the table --------------------------------------------------------------------------------


@dataclass
class Measure:
    size: str
    contender: str
    seconds: float
    runs: list[float]
    mb_per_s: float
    rows_per_s: float
    peak_rss_mb: float
    bytes_out: int
    out_vs_json: float
    bibev_speedup: float  # this contender's time / bibev's time


def measure_size(size: str, repeat: int, workers: int, contenders: list[str]) -> list[Measure]:
    source = dataset(size)
    bytes_in, lines = input_size(source)
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
                mb_per_s=bytes_in / 1e6 / seconds,
                rows_per_s=lines / seconds,
                peak_rss_mb=max(r["peak_rss_mb"] for r in results[name]),
                bytes_out=int(results[name][-1]["bytes_out"]),
                out_vs_json=results[name][-1]["bytes_out"] / bytes_in,
                bibev_speedup=0.0,
            )
        )
    if "bibev" in contenders:
        reference = next(m.seconds for m in measures if m.contender == "bibev")
        for m in measures:
            m.bibev_speedup = m.seconds / reference
    print(
        f"\n{size}: {SIZES[size][0]} vehicles x {SIZES[size][1]} day(s), "
        f"{bytes_in / 1e6:.1f} MB of JSON, {lines:,} messages",
        file=sys.stderr,
    )
    return measures


def _spawn(name: str, source: Path, workers: int) -> dict[str, float]:
    argv = [sys.executable, "-m", "bench.compact", "--contender", name, "--source", str(source)]
    argv += ["--workers", str(workers)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(measures: list[Measure]) -> str:
    header = (
        "| size | contender | median s | MB/s | msgs/s | peak RSS MB | out/JSON | time vs bibev |"
    )
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for m in measures:
        lines.append(
            f"| {m.size} | {m.contender} | {m.seconds:.2f} | {m.mb_per_s:.1f} | "
            f"{m.rows_per_s:,.0f} | {m.peak_rss_mb:.0f} | {m.out_vs_json:.1%} | "
            f"{m.bibev_speedup:.2f}x |"
        )
    return "\n".join(lines)


def growth(measures: list[Measure]) -> str:
    """How bibev's cost per message grows from the smaller size to the larger one."""
    sizes = list(dict.fromkeys(m.size for m in measures))
    if len(sizes) < 2:
        return ""
    by = {(m.size, m.contender): m for m in measures}
    parts = []
    for name in dict.fromkeys(m.contender for m in measures):
        small, large = by[(sizes[0], name)], by[(sizes[-1], name)]
        parts.append(f"{name} {small.rows_per_s / large.rows_per_s:.2f}")
    return f"per-message cost, {sizes[-1]} / {sizes[0]}: " + ", ".join(parts)


def targets(measures: list[Measure]) -> list[str]:
    lines = []
    for size in dict.fromkeys(m.size for m in measures):
        by = {m.contender: m for m in measures if m.size == size}
        if "bibev" not in by:
            continue
        checks = [
            ("pandas", 10.0, "≥ 10x pandas"),
            ("duckdb", 1.0, "≥ 1x DuckDB"),
            ("floor", 0.7, "≥ 70 % of the floor's throughput"),
        ]
        for name, wanted, label in checks:
            if name in by:
                got = by[name].bibev_speedup
                lines.append(f"{size}: {label}: {got:.2f} {'ok' if got >= wanted else 'MISSED'}")
        share = by["bibev"].out_vs_json
        lines.append(
            f"{size}: compressed ≤ 10 % of JSON: {share:.1%} {'ok' if share <= 0.1 else 'MISSED'}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench compact", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=SIZES, default=None)
    parser.add_argument("--sizes", default=None, help="comma-separated sizes, e.g. small,medium")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="bibev --workers (default 1: one process, like the baselines)",
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
    document = {"benchmark": "compact", "results": [asdict(m) for m in measures]}
    if args.json == "-":
        print(json.dumps(document, indent=2))
        return 0
    print(table(measures))
    for line in [growth(measures), *targets(measures)]:
        if line:
            print(line)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"({machine}; medians of {args.repeat} runs; bibev with --workers {args.workers})")
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
