"""``bibev.pipeline.compact``: whole runs on a local root and on S3 (moto server)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from bibev.errors import ConfigError, DataContractError
from bibev.pipeline.compact import lock_name, run_compact
from bibev.schema import COMPRESSED_SCHEMA
from bibev.storage import Storage

VIN = "5YJ3E1EA7KF000001"
VIN2 = "5YJ3E1EA7KF000002"
DAY = date(2025, 3, 1)
NEXT = date(2025, 3, 2)
# 01:00 UTC on 3 March: 1 and 2 March are complete, 3 March is today.
NOW = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
TODAY = date(2025, 3, 3)


def tesla_line(
    created_at: str,
    values: dict[str, Any],
    *,
    vin: str = VIN,
    received_at: str | None = None,
    resend: bool = False,
) -> str:
    """One temp line holding a Fleet Telemetry protojson message (a float is a doubleValue, a
    dict is the protojson value as given)."""
    data = [
        {"key": key, "value": value if isinstance(value, dict) else {"doubleValue": value}}
        for key, value in values.items()
    ]
    payload = {"data": data, "createdAt": created_at, "vin": vin, "isResend": resend}
    return json.dumps(
        {
            "provider": "tesla",
            "format": "fleet-telemetry-json",
            "vin": vin,
            "received_at": received_at or created_at,
            "source": {"topic": "tesla_V", "partition": 0, "offset": 1},
            "payload": payload,
        }
    )


def write_temp(storage: Storage, day: date, name: str, lines: list[str], vin: str = VIN) -> str:
    key = storage.temp_key(vin, day, name)
    storage.write_text(key, "".join(line + "\n" for line in lines))
    return key


def soc_lines(day: date, count: int, *, start: int = 0, vin: str = VIN) -> list[str]:
    return [
        tesla_line(f"{day}T10:{n // 60:02d}:{n % 60:02d}Z", {"Soc": 50.0 + n}, vin=vin)
        for n in range(start, start + count)
    ]


def compressed(storage: Storage, day: date = DAY, vin: str = VIN) -> pl.DataFrame:
    return storage.read_parquet(storage.day_key("compressed", day, vin))


def compact(storage: Storage, **kwargs: Any):
    return run_compact(
        storage, now=kwargs.pop("now", NOW), workers=kwargs.pop("workers", 1), **kwargs
    )


def test_a_day_becomes_one_sorted_zstd_parquet_and_its_temp_files_go(storage: Storage) -> None:
    write_temp(storage, DAY, "100000000000-a.jsonl", soc_lines(DAY, 5, start=5))
    write_temp(storage, DAY, "090000000000-b.jsonl", soc_lines(DAY, 5))
    summary = compact(storage)
    frame = compressed(storage)
    assert frame.schema == pl.Schema(COMPRESSED_SCHEMA)
    assert frame.get_column("value_f64").to_list() == [50.0 + n for n in range(10)]
    assert frame.get_column("ts").is_sorted()
    assert set(frame.get_column("unit")) == {"%"}
    assert storage.list("temp") == []
    totals = summary.totals()
    assert (totals["files"], totals["messages"], totals["rows_out"], totals["failed"]) == (
        2,
        10,
        10,
        0,
    )
    meta = pq.ParquetFile(storage.fs.open(storage.fs_path(storage.day_key("compressed", DAY, VIN))))
    column = meta.metadata.row_group(0).column(2)
    assert (column.path_in_schema, column.compression) == ("ts", "ZSTD")
    assert "DELTA_BINARY_PACKED" in column.encodings
    assert column.statistics.min == frame.get_column("ts").min()
    assert column.has_column_index


def test_rows_are_ordered_by_time_then_key(storage: Storage) -> None:
    lines = [
        tesla_line(f"{DAY}T10:00:02Z", {"Soc": 71.0, "Odometer": {"stringValue": "100.5"}}),
        tesla_line(f"{DAY}T10:00:01Z", {"Soc": 70.0, "VehicleSpeed": {"intValue": 30}}),
    ]
    write_temp(storage, DAY, "a.jsonl", lines)
    compact(storage)
    frame = compressed(storage).select("key", pl.col("ts").dt.second(), "value_f64")
    assert frame.rows() == [
        ("Soc", 1, 70.0),
        ("VehicleSpeed", 1, None),
        ("Odometer", 2, None),
        ("Soc", 2, 71.0),
    ]


def test_exact_duplicates_are_dropped_keeping_the_earliest_receipt(storage: Storage) -> None:
    first = tesla_line(f"{DAY}T10:00:00Z", {"Soc": 70.0}, received_at=f"{DAY}T10:00:05Z")
    again = tesla_line(f"{DAY}T10:00:00Z", {"Soc": 70.0}, received_at=f"{DAY}T10:00:01Z")
    changed = tesla_line(f"{DAY}T10:00:00Z", {"Soc": 70.5}, received_at=f"{DAY}T10:00:09Z")
    write_temp(storage, DAY, "a.jsonl", [first, again, changed, first])
    summary = compact(storage)
    frame = compressed(storage)
    assert frame.get_column("value_f64").to_list() == [70.0, 70.5]
    assert frame.get_column("received_at").dt.second().to_list() == [1, 9]
    assert summary.totals()["duplicates"] == 2


def test_late_data_is_merged_into_the_existing_day(storage: Storage) -> None:
    write_temp(storage, DAY, "a.jsonl", soc_lines(DAY, 3))
    compact(storage)
    write_temp(storage, DAY, "late.jsonl", soc_lines(DAY, 4, start=2))
    summary = compact(storage)
    frame = compressed(storage)
    assert frame.get_column("value_f64").to_list() == [50.0, 51.0, 52.0, 53.0, 54.0, 55.0]
    assert summary.totals()["duplicates"] == 1
    assert storage.list("temp") == []


def test_running_twice_gives_the_same_bytes(storage: Storage) -> None:
    lines = soc_lines(DAY, 20)
    write_temp(storage, DAY, "a.jsonl", lines)
    compact(storage)
    key = storage.day_key("compressed", DAY, VIN)
    before = storage.read_bytes(key)
    again = compact(storage)
    assert again.totals()["partitions"] == 0
    write_temp(storage, DAY, "resent.jsonl", lines[5:10])
    resent = compact(storage)
    assert storage.read_bytes(key) == before
    assert resent.totals()["duplicates"] == 5
    assert not resent.results[0].written


def test_messages_of_two_days_in_one_file_land_in_their_own_days(storage: Storage) -> None:
    lines = [
        tesla_line(f"{DAY}T23:59:59Z", {"Soc": 60.0}),
        tesla_line(f"{NEXT}T00:00:01Z", {"Soc": 61.0}),
    ]
    write_temp(storage, DAY, "a.jsonl", lines)
    summary = compact(storage)
    assert compressed(storage, DAY).get_column("value_f64").to_list() == [60.0]
    assert compressed(storage, NEXT).get_column("value_f64").to_list() == [61.0]
    assert storage.list("temp") == []
    assert summary.totals()["rerouted"] == 1


def test_a_message_for_today_is_moved_to_todays_folder_not_compacted(storage: Storage) -> None:
    lines = [
        tesla_line(f"{NEXT}T23:59:59Z", {"Soc": 60.0}),
        tesla_line(f"{TODAY}T00:00:02Z", {"Soc": 61.0}),
    ]
    write_temp(storage, NEXT, "a.jsonl", lines)
    compact(storage)
    assert compressed(storage, NEXT).get_column("value_f64").to_list() == [60.0]
    assert not storage.exists(storage.day_key("compressed", TODAY, VIN))
    moved = storage.temp_files(TODAY)[VIN]
    assert moved == [f"temp/{VIN}/{TODAY}/a.from-20250302.jsonl"]
    doc = json.loads(storage.read_bytes(moved[0]))
    assert doc["rows_of_day"] == str(TODAY)
    assert doc["rerouted_from"] == f"temp/{VIN}/{NEXT}/a.jsonl"
    compact(storage, include_today=True)
    assert compressed(storage, TODAY).get_column("value_f64").to_list() == [61.0]


def test_a_rerouted_message_keeps_only_its_days_rows(storage: Storage) -> None:
    # A rerouted line (here written by hand) whose other rows were compacted at its origin.
    line = json.loads(tesla_line(f"{DAY}T12:00:00Z", {"Soc": 60.0}))
    line["rows_of_day"] = str(NEXT)
    write_temp(storage, NEXT, "x.from-20250301.jsonl", [json.dumps(line)])
    summary = compact(storage)
    assert not storage.exists(storage.day_key("compressed", DAY, VIN))
    assert not storage.exists(storage.day_key("compressed", NEXT, VIN))
    assert summary.totals()["rerouted"] == 0
    assert storage.list("temp") == []


def test_unreadable_lines_are_quarantined_and_the_rest_is_compacted(storage: Storage) -> None:
    lines = [
        *soc_lines(DAY, 2),
        "not json at all",
        tesla_line(f"{DAY}T11:00:00Z", {"Soc": 1.0}, vin=VIN2),
        json.dumps({"provider": "nobody", "payload": {}}),
    ]
    write_temp(storage, DAY, "a.jsonl", lines)
    summary = compact(storage)
    assert compressed(storage).height == 2
    [key] = storage.list("quarantine")
    assert key == f"quarantine/compact/2025/03/01/{VIN}/a.jsonl"
    records = [json.loads(line) for line in storage.read_bytes(key).splitlines()]
    assert [r["line"] for r in records] == [3, 4, 5]
    assert records[0]["raw"] == "not json at all"
    assert records[0]["reason"].startswith("not JSON")
    assert VIN2 in records[1]["reason"]
    assert "unknown provider" in records[2]["reason"]
    assert summary.totals()["quarantined"] == 3


def test_a_line_nested_too_deeply_is_quarantined(storage: Storage) -> None:
    """A line deeper than the JSON reader's recursion limit goes to quarantine with its
    reason; it does not stop the run (a crash would leave the file in temp/ for ever)."""
    deep = '{"provider":"tesla","payload":' + "[" * 3000 + "]" * 3000 + "}"
    write_temp(storage, DAY, "a.jsonl", [*soc_lines(DAY, 2), deep])
    summary = compact(storage)
    assert compressed(storage).height == 2
    [key] = storage.list("quarantine")
    [record] = [json.loads(line) for line in storage.read_bytes(key).splitlines()]
    assert (record["line"], record["reason"]) == (3, "JSON nested too deeply to read")
    assert record["raw"] == deep
    assert summary.totals()["quarantined"] == 1


def test_today_is_untouched_unless_asked(storage: Storage) -> None:
    key = write_temp(storage, TODAY, "a.jsonl", soc_lines(TODAY, 2))
    summary = compact(storage)
    assert summary.totals()["partitions"] == 0
    assert storage.exists(key)
    with pytest.raises(ConfigError, match="include-today"):
        compact(storage, date_from=TODAY, date_to=TODAY)
    compact(storage, include_today=True)
    assert compressed(storage, TODAY).height == 2
    assert not storage.exists(key)


def test_days_and_vehicles_can_be_restricted(storage: Storage) -> None:
    write_temp(storage, DAY, "a.jsonl", soc_lines(DAY, 1))
    write_temp(storage, NEXT, "a.jsonl", soc_lines(NEXT, 1))
    write_temp(storage, DAY, "b.jsonl", soc_lines(DAY, 1, vin=VIN2), vin=VIN2)
    summary = compact(storage, date_from=DAY, date_to=DAY, vins=[VIN])
    assert [(r.vin, r.day) for r in summary.results] == [(VIN, DAY)]
    assert sorted(storage.list("temp")) == [
        f"temp/{VIN}/{NEXT}/a.jsonl",
        f"temp/{VIN2}/{DAY}/b.jsonl",
    ]
    with pytest.raises(DataContractError):
        compact(storage, vins=["not-a-vin"])


def test_dry_run_lists_partitions_and_changes_nothing(storage: Storage) -> None:
    write_temp(storage, DAY, "a.jsonl", soc_lines(DAY, 3))
    before = storage.list("")
    summary = compact(storage, dry_run=True)
    assert [(r.vin, r.day, r.files, r.dry_run) for r in summary.results] == [(VIN, DAY, 1, True)]
    assert summary.results[0].bytes_in == storage.size(storage.list("temp")[0])
    assert storage.list("") == before


def test_a_held_lock_blocks_the_partition_and_leaves_its_files(storage: Storage) -> None:
    key = write_temp(storage, DAY, "a.jsonl", soc_lines(DAY, 2))
    write_temp(storage, DAY, "b.jsonl", soc_lines(DAY, 2, vin=VIN2), vin=VIN2)
    with storage.lock(lock_name(VIN, DAY)):
        summary = compact(storage)
    assert [f[0] for f in summary.failures] == [f"{VIN} {DAY}"]
    assert "LockedError" in summary.failures[0][1]
    assert storage.exists(key)
    assert compressed(storage, DAY, VIN2).height == 2
    compact(storage)
    assert compressed(storage, DAY, VIN).height == 2


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path) -> None:
    storage = Storage(str(tmp_path / "root"))
    write_temp(storage, DAY, "a.jsonl", soc_lines(DAY, 2))
    script = textwrap.dedent(
        f"""
        import os
        from bibev.storage import Storage
        with Storage({storage.url!r}).lock({lock_name(VIN, DAY)!r}):
            os._exit(137)
        """
    )
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 137
    assert storage.list("") == [f"temp/{VIN}/{DAY}/a.jsonl"]  # the lock file is under _locks/
    summary = compact(storage)
    assert summary.failures == []
    assert compressed(storage).height == 2


def test_a_disabled_provider_fails_the_partition_without_losing_data(storage: Storage) -> None:
    key = write_temp(storage, DAY, "a.jsonl", soc_lines(DAY, 2))
    summary = compact(storage, plugins=["bmw"])
    assert "disabled" in summary.failures[0][1]
    assert storage.exists(key)
    assert storage.list("quarantine") == []


def test_vehicles_run_in_worker_processes(tmp_path) -> None:
    storage = Storage(str(tmp_path / "root"))
    for vin in (VIN, VIN2):
        write_temp(storage, DAY, "a.jsonl", soc_lines(DAY, 3, vin=vin), vin=vin)
    progress: list[tuple[int, int]] = []
    summary = compact(storage, workers=2, on_progress=lambda d, t: progress.append((d, t)))
    assert summary.failures == []
    assert [compressed(storage, DAY, vin).height for vin in (VIN, VIN2)] == [3, 3]
    assert progress[-1] == (2, 2)


def test_partitions_can_run_on_a_dask_cluster(tmp_path) -> None:
    from distributed import LocalCluster

    storage = Storage(str(tmp_path / "root"))
    for vin in (VIN, VIN2):
        write_temp(storage, DAY, "a.jsonl", soc_lines(DAY, 2, vin=vin), vin=vin)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster:
        summary = compact(storage, workers=None, dask_address=cluster.scheduler_address)
    assert summary.failures == []
    assert sorted(r.vin for r in summary.results) == [VIN, VIN2]
    assert storage.list("temp") == []
