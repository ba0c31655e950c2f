"""The storage core, on a local directory and on a real S3 endpoint (moto server) alike."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import socket
import threading
import time
import uuid
from datetime import date

import polars as pl
import pyarrow.parquet as pq
import pytest

from bibev import _locks
from bibev.config import Settings
from bibev.errors import ConfigError, DataContractError, LockedError, StorageError
from bibev.storage import LAYERS, Storage, is_valid_vin, parse_root, validate_vin

VIN = "5YJ3E1EA7KF000001"
VIN2 = "WBA12345678901234"
DAY = date(2024, 5, 1)


def tmp_leftovers(storage: Storage) -> list[str]:
    return storage.fs.find(storage.fs_path("_tmp"))


# -- VINs and layout ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "../../etc",
        "5YJ3E1EA7KF00000",  # 16 characters
        "5YJ3E1EA7KF0000012",  # 18 characters
        "5YJ3E1EA/KF000001",
        "5YJ3E1EA7KF00000I",
        "5YJ3E1EA7KF00000O",
        "5YJ3E1EA7KF00000Q",
        "5yj3e1ea7kf000001",
        "5YJ3E1EA7KF 00001",
        "5YJ3E1EA7KF000001\n",
        "",
        None,
        12345678901234567,
    ],
)
def test_bad_vins_are_refused_naming_the_value(bad: object) -> None:
    with pytest.raises(DataContractError, match="invalid VIN") as caught:
        validate_vin(bad)
    assert caught.value.value == bad
    if bad:
        assert repr(bad) in str(caught.value)
    assert not is_valid_vin(bad)


@pytest.mark.parametrize("good", [VIN, VIN2, "1HGCM82633A004352", "00000000000000000"])
def test_good_vins_pass_unchanged(good: str) -> None:
    assert validate_vin(good) == good
    assert is_valid_vin(good)


def test_layout_keys(storage: Storage) -> None:
    assert storage.day_key("compressed", DAY, VIN) == f"compressed/2024/05/01/{VIN}.parquet"
    assert storage.day_key("segments", date(2024, 12, 31), VIN2) == (
        f"segments/2024/12/31/{VIN2}.parquet"
    )
    assert storage.temp_key(VIN, DAY, "a.jsonl") == f"temp/{VIN}/2024-05-01/a.jsonl"
    assert (
        storage.quarantine_key("compact", DAY, "x.jsonl") == "quarantine/compact/2024/05/01/x.jsonl"
    )
    assert storage.truth_key("soh.csv") == "truth/soh.csv"
    assert LAYERS == ("compressed", "clean", "segments")


def test_default_temp_name_is_time_then_uuid(storage: Storage) -> None:
    name = storage.temp_key(VIN, DAY).rsplit("/", 1)[1]
    stamp, rest = name.split("-", 1)
    assert len(stamp) == 12
    assert stamp.isdigit()
    assert len(rest) == len(uuid.uuid4().hex + ".jsonl")
    assert rest.endswith(".jsonl")
    assert storage.temp_key(VIN, DAY) != storage.temp_key(VIN, DAY)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.temp_key("../../etc", DAY),
        lambda s: s.day_key("clean", DAY, "5YJ3E1EA7KF00000"),
        lambda s: s.temp_files(DAY, ["5YJ3E1EA/KF000001"]),
        lambda s: s.day_key("raw", DAY, VIN),
        lambda s: s.temp_key(VIN, DAY, "a/b.jsonl"),
        lambda s: s.quarantine_key("../x", DAY, "a"),
    ],
)
def test_bad_layout_input_never_becomes_a_path(storage: Storage, call) -> None:
    with pytest.raises(DataContractError):
        call(storage)
    assert storage.list("") == []


@pytest.mark.parametrize(
    "key",
    ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/.", "a\\b", "", "_tmp/x", "_locks/x"],
)
def test_keys_that_escape_or_hit_reserved_folders_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(DataContractError):
        storage.write_bytes(key, b"x")
    with pytest.raises(DataContractError):
        storage.read_bytes(key)
    with pytest.raises(DataContractError):
        storage.delete(key)
    assert storage.list("") == []


# -- writing and reading --------------------------------------------------------------------


def test_bytes_and_text_round_trip(storage: Storage) -> None:
    storage.write_bytes("truth/a.bin", b"\x00\x01payload")
    storage.write_text("truth/b.txt", "état\n")
    assert storage.read_bytes("truth/a.bin") == b"\x00\x01payload"
    assert storage.read_bytes("truth/b.txt") == "état\n".encode()
    assert storage.size("truth/a.bin") == 9
    assert storage.exists("truth/a.bin")
    assert not storage.exists("truth/missing")
    with storage.open("truth/b.txt", "r") as fh:
        assert fh.read() == "état\n"
    assert tmp_leftovers(storage) == []


def test_a_reader_never_sees_a_half_written_file(storage: Storage) -> None:
    key = storage.day_key("compressed", DAY, VIN)
    with storage.writer(key) as fh:
        fh.write(b"first half ")
        assert not storage.exists(key)
        assert storage.list("compressed") == []
        fh.write(b"second half")
    assert storage.read_bytes(key) == b"first half second half"

    with storage.writer(key) as fh:
        fh.write(b"new")
        assert storage.read_bytes(key) == b"first half second half"
    assert storage.read_bytes(key) == b"new"
    assert tmp_leftovers(storage) == []


def test_a_failed_write_leaves_the_old_file_and_no_temp(storage: Storage) -> None:
    def write_then_fail() -> None:
        with storage.writer("truth/x") as fh:
            fh.write(b"partial")
            raise RuntimeError("boom")

    storage.write_bytes("truth/x", b"old")
    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert storage.read_bytes("truth/x") == b"old"
    assert tmp_leftovers(storage) == []


def test_parquet_round_trip_is_zstd_with_statistics(storage: Storage) -> None:
    df = pl.DataFrame({"vin": [VIN] * 3, "ts": [3, 1, 2], "value_f64": [0.5, None, 2.0]})
    key = storage.day_key("compressed", DAY, VIN)
    written = storage.write_parquet(key, df)
    assert written == storage.size(key) > 0
    assert storage.read_parquet(key).equals(df)
    assert storage.read_parquet(key, columns=["ts"]).to_series().to_list() == [3, 1, 2]
    with storage.open(key) as fh:
        column = pq.ParquetFile(fh).metadata.row_group(0).column(1)
        assert column.compression == "ZSTD"
        assert (column.statistics.min, column.statistics.max) == (1, 3)


def test_polars_and_pyarrow_read_the_same_paths(storage: Storage) -> None:
    for day, vin, soc in [(DAY, VIN, 50.0), (date(2024, 5, 2), VIN, 60.0), (DAY, VIN2, 70.0)]:
        frame = pl.DataFrame({"vin": [vin], "soc_pct": [soc]})
        storage.write_parquet(storage.day_key("clean", day, vin), frame)
    glob = "clean/2024/05/*/*.parquet"
    scanned = pl.scan_parquet(storage.uri(glob), storage_options=storage.polars_storage_options())
    assert sorted(scanned.collect()["soc_pct"].to_list()) == [50.0, 60.0, 70.0]
    assert storage.scan_parquet(glob).select(pl.col("soc_pct").sum()).collect().item() == 180.0
    table = pq.read_table(
        storage.fs_path(storage.day_key("clean", DAY, VIN2)),
        filesystem=storage.pyarrow_filesystem(),
    )
    assert table.column("soc_pct").to_pylist() == [70.0]


def test_failures_become_storage_errors_naming_key_and_operation(storage: Storage) -> None:
    with pytest.raises(StorageError, match=r"cannot read 'truth/missing'.*not found"):
        storage.read_bytes("truth/missing")
    with pytest.raises(StorageError, match=r"cannot read 'truth/missing\.parquet'"):
        storage.read_parquet("truth/missing.parquet")
    with pytest.raises(StorageError, match="cannot stat"):
        storage.size("truth/missing")
    storage.write_bytes("truth/not-parquet", b"definitely not parquet")
    with pytest.raises(StorageError, match="truth/not-parquet"):
        storage.read_parquet("truth/not-parquet")


# -- listing --------------------------------------------------------------------------------


def write_all(storage: Storage, keys: list[str]) -> None:
    for key in keys:
        storage.write_bytes(key, key.encode())


def test_list_by_prefix_is_recursive_sorted_and_hides_internals(storage: Storage) -> None:
    keys = [
        storage.temp_key(VIN2, DAY, "b.jsonl"),
        storage.temp_key(VIN, DAY, "a.jsonl"),
        storage.temp_key(VIN, date(2024, 5, 2), "c.jsonl"),
        storage.day_key("compressed", DAY, VIN),
    ]
    write_all(storage, keys)
    with storage.lock("compact/2024-05-01"):
        assert storage.list("") == sorted(keys)
    assert storage.list("temp") == sorted(keys[:3])
    assert storage.list(f"temp/{VIN}") == [keys[1], keys[2]]
    assert storage.list(keys[3]) == [keys[3]]
    assert storage.list("clean") == []
    assert storage.list("temp/5YJ3E1EA7KF") == []  # a folder, not a string prefix


def test_listing_by_date(storage: Storage) -> None:
    may2 = date(2024, 5, 2)
    write_all(
        storage,
        [
            storage.temp_key(VIN, DAY, "2.jsonl"),
            storage.temp_key(VIN, DAY, "1.jsonl"),
            storage.temp_key(VIN2, may2, "3.jsonl"),
            storage.day_key("compressed", DAY, VIN),
            storage.day_key("compressed", DAY, VIN2),
            storage.day_key("compressed", date(2023, 12, 31), VIN),
            storage.day_key("clean", may2, VIN2),
        ],
    )
    assert storage.temp_days() == [DAY, may2]
    assert storage.temp_files(DAY) == {
        VIN: [f"temp/{VIN}/2024-05-01/1.jsonl", f"temp/{VIN}/2024-05-01/2.jsonl"]
    }
    assert storage.temp_files(may2, [VIN, VIN2]) == {VIN2: [f"temp/{VIN2}/2024-05-02/3.jsonl"]}
    assert storage.day_keys("compressed", DAY) == {
        VIN: f"compressed/2024/05/01/{VIN}.parquet",
        VIN2: f"compressed/2024/05/01/{VIN2}.parquet",
    }
    assert storage.day_keys("segments", DAY) == {}
    assert storage.days("compressed") == [date(2023, 12, 31), DAY]
    assert storage.days("clean") == [may2]
    assert storage.days("segments") == []


def test_temp_days_skip_junk_folders_with_a_warning(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    write_all(
        storage,
        [
            "temp/NOT-A-VIN/2024-01-01/a.jsonl",
            f"temp/{VIN}/not-a-date/a.jsonl",
            f"temp/{VIN}/2024-02-30/a.jsonl",
            f"temp/{VIN}/2024-03-01/a.jsonl",
            "temp/stray.txt",
            "compressed/2024/13/01/x.parquet",
            f"compressed/2024/01/02/{VIN}.parquet",
            "compressed/2024/01/02/junk.parquet",
        ],
    )
    with caplog.at_level(logging.WARNING, logger="bibev.storage"):
        assert storage.temp_days() == [date(2024, 3, 1)]
        assert storage.days("compressed") == [date(2024, 1, 2)]
        assert storage.day_keys("compressed", date(2024, 1, 2)) == {
            VIN: f"compressed/2024/01/02/{VIN}.parquet"
        }
    warned = caplog.text
    for junk in ["NOT-A-VIN", "not-a-date", "2024-02-30", "stray.txt", "2024/13", "junk.parquet"]:
        assert junk in warned


def test_delete_and_delete_many(storage: Storage) -> None:
    keys = [storage.day_key("clean", DAY, VIN), storage.day_key("clean", DAY, VIN2), "truth/t"]
    write_all(storage, keys)
    storage.delete(keys[0])
    storage.delete(keys[0])  # missing is fine
    assert storage.list("") == sorted(keys[1:])
    storage.delete_many([keys[1], "truth/t", "truth/never-existed"])
    assert storage.list("") == []
    assert storage.days("clean") == []  # no empty day folders left behind


def test_sweep_tmp_removes_only_old_leftovers(storage: Storage) -> None:
    storage.fs.makedirs(storage.fs_path("_tmp"), exist_ok=True)
    storage.fs.pipe_file(storage.fs_path("_tmp/crashed-writer.parquet"), b"half")
    assert storage.sweep_tmp(older_than=3600) == 0
    time.sleep(0.05)
    assert storage.sweep_tmp(older_than=0) == 1
    assert tmp_leftovers(storage) == []


def test_check_writable_writes_and_removes_a_probe(storage: Storage) -> None:
    storage.check_writable()
    assert tmp_leftovers(storage) == []
    assert storage.list("") == []


def test_check_writable_fails_on_a_root_that_takes_no_write(tmp_path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StorageError, match=r"^cannot write '_tmp/' in .*/file: "):
        Storage(str(tmp_path / "file")).check_writable()


@pytest.mark.s3
def test_check_writable_fails_on_a_missing_bucket(s3_endpoint: str) -> None:
    options = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    storage = Storage("s3://bibev-no-such-bucket/root", s3_options=options)
    with pytest.raises(StorageError, match=r"^cannot write '_tmp/' in s3://bibev-no-such-bucket"):
        storage.check_writable()


# -- locks ----------------------------------------------------------------------------------


def test_a_held_lock_names_its_holder(storage: Storage) -> None:
    with storage.lock("compact/2024-05-01"):
        with pytest.raises(LockedError) as caught, storage.lock("compact/2024-05-01"):
            pass
        message = str(caught.value)
        assert "compact/2024-05-01" in message
        assert socket.gethostname() in message
        assert f"pid {os.getpid()}" in message
        assert "since 20" in message
        with storage.lock("compact/2024-05-02"):  # another day is another lock
            pass
    with storage.lock("compact/2024-05-01"):  # released on exit
        pass


def test_a_lock_is_released_when_the_block_fails(storage: Storage) -> None:
    with pytest.raises(ValueError, match="stage failed"), storage.lock("clean/2024-05-01"):
        raise ValueError("stage failed")
    with storage.lock("clean/2024-05-01"):
        pass
    assert storage.fs.find(storage.fs_path("_locks")) == []


def test_waiting_for_a_lock_until_its_holder_finishes(storage: Storage) -> None:
    taken = threading.Event()

    def hold_briefly() -> None:
        with storage.lock("segment/2024-05-01"):
            taken.set()
            time.sleep(0.4)

    holder = threading.Thread(target=hold_briefly)
    holder.start()
    assert taken.wait(10)
    started = time.monotonic()
    with storage.lock("segment/2024-05-01", wait=10):
        assert time.monotonic() - started >= 0.2
    holder.join()


def test_a_stale_lock_is_broken_with_a_warning(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    crashed = storage.lock("compact/2024-05-01")
    crashed.__enter__()  # a holder that dies without releasing
    time.sleep(1.1)
    with pytest.raises(LockedError):
        storage.lock("compact/2024-05-01", stale_after=60).__enter__()
    with (
        caplog.at_level(logging.WARNING, logger="bibev._locks"),
        storage.lock("compact/2024-05-01", stale_after=1),
    ):
        assert "breaking stale lock 'compact/2024-05-01'" in caplog.text
        # The crashed holder coming back must not release the new holder's lock.
        crashed.__exit__(None, None, None)
        assert "broken by another run" in caplog.text
        with pytest.raises(LockedError):
            storage.lock("compact/2024-05-01", stale_after=60).__enter__()
    assert storage.fs.find(storage.fs_path("_locks")) == []


def hold_lock_and_die(storage: Storage, name: str) -> None:
    held = storage.lock(name)  # keep a reference: a collected generator would release it
    held.__enter__()
    os._exit(0)  # dies holding the lock, as a killed run would


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over_at_once(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    child = multiprocessing.get_context("spawn").Process(
        target=hold_lock_and_die, args=(storage, "compact/2024-05-03")
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert len(storage.fs.find(storage.fs_path("_locks"))) == 1
    with (
        caplog.at_level(logging.WARNING, logger="bibev._locks"),
        storage.lock("compact/2024-05-03", stale_after=3600),
    ):
        assert "breaking a crashed process's lock 'compact/2024-05-03'" in caplog.text
        assert f"pid {child.pid}" in caplog.text
    assert storage.fs.find(storage.fs_path("_locks")) == []


def race_for_lock(storage: Storage, names: list[str], stale_after: float, barrier, results) -> None:
    for name in names:
        barrier.wait(60)
        try:
            with storage.lock(name, stale_after=stale_after):
                results.put((name, "won"))
                barrier.wait(60)  # hold until the other process has tried
        except LockedError:
            results.put((name, "lost"))
            barrier.wait(60)


def test_two_processes_racing_for_a_lock_exactly_one_wins(storage: Storage) -> None:
    names = [f"compact/2024-05-0{i}" for i in range(1, 6)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    racers = [
        context.Process(target=race_for_lock, args=(storage, names, 3600.0, barrier, results))
        for _ in range(2)
    ]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * len(names))]
    for racer in racers:
        racer.join(60)
        assert racer.exitcode == 0
    for name in names:
        assert sorted(o for n, o in outcomes if n == name) == ["lost", "won"]
    assert storage.fs.find(storage.fs_path("_locks")) == []


def lock_backend(storage: Storage) -> _locks.LockBackend:
    if storage.protocol == "s3":
        return _locks.S3Locks(storage.fs)
    return _locks.LocalLocks()


def test_of_two_breakers_of_a_stale_lock_only_one_replaces_it(storage: Storage) -> None:
    backend, path = lock_backend(storage), storage.fs_path("_locks/compact/2024-05-01.lock")
    assert backend.create(path, b"crashed holder")
    assert not backend.create(path, b"someone else")
    judged_stale = backend.read(path)  # both breakers read this version and judge it stale
    assert judged_stale is not None
    assert backend.replace(path, b"first breaker", judged_stale.version)
    assert not backend.replace(path, b"second breaker", judged_stale.version)
    current = backend.read(path)
    assert current is not None
    assert current.data == b"first breaker"
    backend.remove(path, judged_stale.version)  # an outdated version removes nothing
    assert backend.read(path) == current
    backend.remove(path, current.version)
    assert backend.read(path) is None


# -- roots, memory and S3 without a server --------------------------------------------------


@pytest.mark.parametrize(
    ("url", "protocol", "normalised"),
    [
        ("file:///srv/bibev/", "file", "/srv/bibev"),
        ("/srv/bibev/../data", "file", "/srv/data"),
        ("s3://bucket/prefix/", "s3", "s3://bucket/prefix"),
        ("s3://bucket", "s3", "s3://bucket"),
        ("memory://scratch", "memory", "memory://scratch"),
    ],
)
def test_root_urls_are_normalised(url: str, protocol: str, normalised: str) -> None:
    storage = Storage(url)
    assert (storage.protocol, storage.url) == (protocol, normalised)


def test_a_relative_root_is_made_absolute(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Storage("bibev-data").url == str(tmp_path / "bibev-data")


@pytest.mark.parametrize(
    "url", ["", "gs://bucket/x", "s3://", "s3://bucket/../x", "s3://k:s@bucket"]
)
def test_unusable_roots_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_root(url)


def test_memory_root_basics() -> None:
    storage = Storage(f"memory://bibev-test-{uuid.uuid4().hex}")
    try:
        key = storage.day_key("compressed", DAY, VIN)
        storage.write_parquet(key, pl.DataFrame({"a": [1, 2]}))
        assert storage.list("") == [key]
        assert storage.uri(key) == f"{storage.url}/{key}"
        assert storage.scan_parquet("compressed/*/*/*/*.parquet").collect()["a"].to_list() == [1, 2]
        assert storage.days("compressed") == [DAY]
        with storage.lock("compact/x"), pytest.raises(LockedError):
            storage.lock("compact/x").__enter__()
        storage.delete(key)
        assert storage.list("") == []
        assert storage.polars_storage_options() is None
    finally:
        with contextlib.suppress(FileNotFoundError):
            storage.fs.rm(storage.fs_path(""), recursive=True)


def test_an_s3_root_is_built_without_any_network() -> None:
    options = {
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"},
        "key": "AKIDEXAMPLE",
        "secret": "wJalrXUtnFEMI-SECRET",
    }
    storage = Storage("s3://nowhere/x", s3_options=options)
    assert storage.uri("clean/a.parquet") == "s3://nowhere/x/clean/a.parquet"
    assert "SECRET" not in repr(storage)
    assert storage.polars_storage_options() == {
        "aws_endpoint_url": "http://127.0.0.1:9",
        "aws_allow_http": "true",
        "aws_region": "us-east-1",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "wJalrXUtnFEMI-SECRET",
    }


def test_from_settings_uses_root_and_s3_settings() -> None:
    settings = Settings(
        root="s3://fleet/bibev",
        s3_endpoint_url="https://minio.example:9000",
        s3_region="eu-west-3",
        s3_access_key_id="AKIDEXAMPLE",
        s3_secret_access_key="wJalrXUtnFEMI-SECRET",
    )
    storage = Storage.from_settings(settings)
    assert storage.url == "s3://fleet/bibev"
    options = storage.polars_storage_options()
    assert options is not None
    assert options["aws_endpoint_url"] == "https://minio.example:9000"
    assert options["aws_region"] == "eu-west-3"
    assert "aws_allow_http" not in options
    assert "SECRET" not in repr(storage)


@pytest.mark.s3
def test_s3_errors_never_show_secrets(s3_endpoint: str, s3_bucket: str) -> None:
    secret = "wJalrXUtnFEMI-SECRET-VALUE"
    storage = Storage(
        f"s3://{s3_bucket}/root",
        s3_options={
            "client_kwargs": {"endpoint_url": s3_endpoint},
            "key": "AKID",
            "secret": secret,
        },
    )
    storage.write_bytes("truth/a", b"a")
    assert storage.read_bytes("truth/a") == b"a"
    with pytest.raises(StorageError) as caught:
        storage.read_bytes("truth/missing")
    assert secret not in str(caught.value)
    assert secret not in repr(storage)


def test_check_root_accepts_an_existing_root_even_when_empty(storage: Storage) -> None:
    storage.write_bytes("truth/a", b"a")  # makes the directory (the bucket exists already)
    storage.delete("truth/a")
    storage.check_root()
    Storage("memory://never-written").check_root()


def test_check_root_refuses_a_missing_directory(tmp_path) -> None:
    with pytest.raises(StorageError, match=r"^the storage root .*/typo does not exist \(no such"):
        Storage(str(tmp_path / "typo")).check_root()


@pytest.mark.s3
def test_check_root_refuses_a_missing_bucket(s3_endpoint: str, s3_bucket: str) -> None:
    options = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    Storage(f"s3://{s3_bucket}/no-object-here-yet", s3_options=options).check_root()
    with pytest.raises(StorageError, match=r"^the storage root s3://bibev-typo/root does not ex"):
        Storage("s3://bibev-typo/root", s3_options=options).check_root()
