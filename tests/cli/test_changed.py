"""`bibev transform all --changed`: the nightly job takes what compact wrote since its last run,
late data for a day done long ago included, and ends with what one run over every day
leaves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from bibev.cli.app import run
from bibev.db import open_database
from bibev.db.segments import load_segments
from tests.cli.scripts import EXAMPLES, run_script

pytestmark = pytest.mark.timeout(300)

SIM = ["sim", "--vehicles", "3", "--days", "3", "--start", "2025-03-01", "--seed", "5"]
QUIET = ["--no-progress", "-q"]


def layers(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for layer in ("compressed", "clean", "segments")
        for path in sorted((root / layer).rglob("*.parquet"))
    }


def sessions(url: str) -> list[dict]:
    engine = open_database(url)
    try:
        return load_segments(engine)
    finally:
        engine.dispose()


def transform_changed(capsys: pytest.CaptureFixture[str], *base: str) -> dict:
    capsys.readouterr()
    assert run([*QUIET, *base, "transform", "all", "--changed", "--workers", "1", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_late_data_for_a_day_done_before_flows_through(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nightly, at_once = isolated / "nightly", isolated / "at-once"
    db = f"sqlite:///{isolated / 'n.db'}"
    base = ["--root", str(nightly), "--database-url", db]
    assert run([*QUIET, "--root", str(nightly), *SIM]) == 0
    vin = sorted(p.name for p in (nightly / "temp").iterdir())[0]
    late = nightly / "temp" / vin / "2025-03-02"
    held = isolated / "held"
    shutil.move(late, held)  # one vehicle's 2 March arrives a few days late

    assert run([*QUIET, *base, "compact", "--workers", "1"]) == 0
    first = transform_changed(capsys, *base)
    # segment also has the held-back day, without rows until it arrives
    assert first["segment"]["partitions"] == first["clean"]["partitions"] + 1 > 1
    assert not (nightly / "changes").exists()  # every note done
    assert transform_changed(capsys, *base)["clean"]["partitions"] == 0  # nothing new
    assert run([*QUIET, *base, "transform", "all", "--changed", "--workers", "1"]) == 0
    said = capsys.readouterr().err
    assert "nothing to clean: nothing changed in compressed/ since the last --changed run" in said
    assert "nothing to segment: nothing changed in clean/ since the last --changed run" in said

    late.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(held, late)
    assert run([*QUIET, *base, "compact", "--workers", "1"]) == 0
    second = transform_changed(capsys, *base)
    # that vehicle's 1, 2 and 3 March: its clean day 3 read the end of day 2
    assert second["clean"]["partitions"] == 3
    assert second["clean"]["files_written"] >= 1
    assert second["segment"]["partitions"] >= 3
    assert not (nightly / "changes").exists()

    assert run([*QUIET, "--root", str(at_once), *SIM]) == 0
    once = ["--root", str(at_once), "--database-url", f"sqlite:///{isolated / 'a.db'}"]
    assert run([*QUIET, *once, "compact", "--workers", "1"]) == 0
    assert run([*QUIET, *once, "transform", "all", "--workers", "1"]) == 0
    assert layers(nightly) == layers(at_once)
    assert sessions(db) == sessions(f"sqlite:///{isolated / 'a.db'}")


def test_changed_picks_its_own_days(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = ["--root", str(isolated / "root")]
    for stage in ("clean", "segment", "all"):
        code = run([*QUIET, *root, "transform", stage, "--changed", "--date", "2025-03-01"])
        assert code == 2
        assert "--changed picks its own days and vehicles" in capsys.readouterr().err


def test_a_dry_run_of_compact_leaves_no_note(isolated: Path) -> None:
    root = isolated / "root"
    assert run([*QUIET, "--root", str(root), *SIM]) == 0
    assert run([*QUIET, "--root", str(root), "compact", "--dry-run", "--workers", "1"]) == 0
    assert not (root / "changes").exists()
    assert run([*QUIET, "--root", str(root), "compact", "--workers", "1"]) == 0
    assert len(list((root / "changes" / "compressed").iterdir())) == 1


NIGHTLY = EXAMPLES / "cron" / "nightly.sh"


def nightly_script(isolated: Path, **more: str) -> subprocess.CompletedProcess[str]:
    env = {
        "BIBEV_ROOT": str(isolated / "root"),
        "BIBEV_DATABASE_URL": f"sqlite:///{isolated / 'bibev.db'}",
        **more,
    }
    return run_script(NIGHTLY, env, "--workers", "1")


def test_the_nightly_script_compacts_cleans_and_segments(isolated: Path) -> None:
    root = isolated / "root"
    assert run([*QUIET, "--root", str(root), *SIM]) == 0
    # BIBEV may be a command with arguments, as from a checkout
    result = nightly_script(isolated, BIBEV=f"{sys.executable} -m bibev")
    assert result.returncode == 0, result.stderr
    assert "nightly: done" in result.stderr
    assert not (root / "temp").exists()
    assert not (root / "changes").exists()
    compressed = sorted(p.name for p in (root / "compressed").rglob("*.parquet"))
    assert compressed == sorted(p.name for p in (root / "segments").rglob("*.parquet"))


def test_the_nightly_script_goes_on_after_a_partial_failure(isolated: Path) -> None:
    from bibev.pipeline.compact.locking import lock_name
    from bibev.storage import Storage

    root = isolated / "root"
    assert run([*QUIET, "--root", str(root), *SIM]) == 0
    vin = sorted(p.name for p in (root / "temp").iterdir())[0]
    storage = Storage(str(root))
    with storage.lock(lock_name(vin, date(2025, 3, 2))):
        result = nightly_script(isolated)
    assert result.returncode == 5, result.stderr
    assert "some partitions failed (exit code 5); cleaning and segmenting the rest" in result.stderr
    assert "cleaning and segmenting what changed" in result.stderr
    assert storage.exists(storage.day_key("segments", date(2025, 3, 1), vin))
    assert not storage.exists(storage.day_key("compressed", date(2025, 3, 2), vin))
    again = nightly_script(isolated)  # the next night does the rest
    assert again.returncode == 0, again.stderr
    assert storage.exists(storage.day_key("segments", date(2025, 3, 2), vin))
