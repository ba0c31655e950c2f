"""``bibev demo`` as a user runs it: the whole pipeline into one directory, the report, the
database, starting over on its own directory and refusing anyone else's."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from bibev.cli.app import run
from bibev.db import open_database, recent_runs
from bibev.db.segments import load_segments
from bibev.pipeline.accuracy import score_sessions
from bibev.pipeline.feature_errors import feature_errors
from bibev.storage import Storage


def demo(capsys: pytest.CaptureFixture[str], root: Path) -> dict:
    argv = ["--no-progress", "demo", "--root", str(root), "--vehicles", "3", "--days", "2"]
    assert run([*argv, "--seed", "11", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_demo_runs_every_stage_and_reports_against_truth(isolated, capsys) -> None:
    root = isolated / "bibev-demo"
    summary = demo(capsys, root)
    storage = Storage(str(root))
    files = pl.concat([storage.read_parquet(key) for key in storage.list("segments")])
    engine = open_database(summary["database_url"])
    try:
        stored = load_segments(engine)
        runs = recent_runs(engine, limit=5)
    finally:
        engine.dispose()
    # every stage ran on the same data, and the table holds what the files hold
    assert summary["counts"]["compact"]["days"] == 2
    assert summary["counts"]["clean"]["partitions"] == summary["counts"]["segment"]["partitions"]
    assert summary["counts"]["segment"]["sessions"] == files.height == len(stored) > 0
    assert sorted(r["segment_id"] for r in stored) == sorted(files["segment_id"])
    assert [(r.command, r.status) for r in runs] == [("demo", "ok")]
    # the accuracy shown is the score of these sessions against the simulator's truth
    truth = storage.read_parquet("truth/sessions.parquet")
    expected = score_sessions(files, truth).to_dicts()
    assert summary["accuracy"] == expected
    report = Path(summary["report"]).read_text()
    assert report == (root / "report.html").read_text()
    for vin in storage.read_parquet("truth/vehicles.parquet")["vin"]:
        assert report.count(vin) >= 2  # the vehicles table and its timeline lane
    assert report.count("<title>") == 1 + files.height  # the page's, then one per session
    driving = next(row for row in expected if row["kind"] == "driving")
    assert f"<td>{driving['f1']:.3f}</td>" in report
    errors = (
        feature_errors(files, truth).filter(pl.col("feature") == "distance km").row(0, named=True)
    )
    text = '<td class="text">'
    shown = f"{text}driving</td>{text}distance km</td><td>{errors['n']}</td>"
    assert shown + f"<td>{errors['median_abs_error']:.3f}</td>" in report
    assert "http://" not in report.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_demo_again_starts_over_with_the_same_result(isolated, capsys) -> None:
    root = isolated / "bibev-demo"
    first = demo(capsys, root)
    (root / "temp" / "left-over.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (root / "temp" / "left-over.jsonl").write_text("{}\n")
    second = demo(capsys, root)
    assert not (root / "temp" / "left-over.jsonl").exists()
    assert second["counts"]["segment"]["sessions"] == first["counts"]["segment"]["sessions"]
    assert second["accuracy"] == first["accuracy"]


def test_demo_refuses_a_directory_it_did_not_make(isolated, capsys) -> None:
    root = isolated / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    assert run(["--no-progress", "demo", "--root", str(root), "--vehicles", "1"]) == 2
    assert "not empty and was not made by bibev demo" in capsys.readouterr().err
    assert [p.name for p in root.iterdir()] == ["notes.txt"]
    assert (root / "notes.txt").read_text() == "keep me"


def test_demo_help_has_an_example(isolated, capsys) -> None:
    assert run(["demo", "--help"]) == 0
    assert "Example: bibev demo --root ./bibev-demo" in capsys.readouterr().out
