"""The daily pipeline from the command line on an S3 root (the moto server), with a SQLite and
a PostgreSQL database: sim → compact → transform all → report quality leave the same files,
byte for byte, and report the same, as on a local root; running them again changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bibev.cli.app import run

pytestmark = [pytest.mark.s3, pytest.mark.timeout(300)]

SIM = ["sim", "--vehicles", "3", "--days", "2", "--start", "2025-03-01", "--seed", "5"]
LAYERS = ("compressed", "clean", "segments", "quarantine")


def pipeline(capsys: pytest.CaptureFixture[str], *base: str) -> dict[str, Any]:
    """Run the day's commands; the JSON summaries of ``transform all`` and ``report quality``."""
    options = ("--workers", "1")
    assert run(["--no-progress", *base, *SIM]) == 0
    assert run(["--no-progress", *base, "compact", *options]) == 0
    capsys.readouterr()
    assert run(["--no-progress", *base, "transform", "all", *options, "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert run(["--no-progress", *base, "report", "quality", "--format", "json"]) == 0
    return {"transform": totals, "quality": json.loads(capsys.readouterr().out)}


def files(fs: Any, prefix: str) -> dict[str, bytes]:
    """Key under the root → bytes, for every file of ``LAYERS``."""
    found = {}
    for layer in LAYERS:
        for path in fs.find(f"{prefix}/{layer}"):
            found[path.removeprefix(f"{prefix}/")] = fs.cat_file(path)
    return found


def test_the_daily_pipeline_on_s3_leaves_what_it_leaves_on_a_local_root(
    database_url, isolated, capsys, monkeypatch, s3_endpoint, s3_bucket, s3_filesystem
) -> None:
    # database_url first: isolated removes BIBEV_TEST_DATABASE_URL with the other BIBEV_*
    import fsspec

    monkeypatch.setenv("BIBEV_S3_ENDPOINT_URL", s3_endpoint)
    on_s3 = ["--root", f"s3://{s3_bucket}/root", "--database-url", database_url]
    s3_report = pipeline(capsys, *on_s3)
    local = ["--root", str(isolated / "root"), "--database-url", f"sqlite:///{isolated / 'l.db'}"]
    local_report = pipeline(capsys, *local)

    s3_files = files(s3_filesystem, f"{s3_bucket}/root")
    local_files = files(fsspec.filesystem("file"), str(isolated / "root"))
    assert sorted(s3_files) == sorted(local_files)
    assert {key.split("/")[0] for key in s3_files} >= {"compressed", "clean", "segments"}
    assert s3_files == local_files
    assert s3_filesystem.find(f"{s3_bucket}/root/temp") == []  # compacted, then deleted
    for report in (s3_report, local_report):
        for stage in ("clean", "segment"):
            report["transform"][stage].pop("seconds")
    assert s3_report == local_report
    assert len(s3_report["quality"]["records"]) == 6  # 3 vehicles x 2 days
    assert s3_report["transform"]["segment"]["partitions"] == 6
    assert s3_report["transform"]["segment"]["sessions"] > 20

    # Again: nothing to compact, the same files rewritten by nobody.
    assert run(["--no-progress", *on_s3, "compact", "--workers", "1"]) == 0
    capsys.readouterr()
    assert run(["--no-progress", *on_s3, "transform", "all", "--workers", "1", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [again[stage]["files_unchanged"] for stage in ("clean", "segment")] == [6, 6]
    assert files(s3_filesystem, f"{s3_bucket}/root") == s3_files
