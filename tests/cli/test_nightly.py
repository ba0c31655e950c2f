"""The nightly job from the command line, night after night (`compact --date D`, then
`transform all --date D`), leaves the same files and rows as one run over every day. The fleet
has a message sent just before midnight by a clock a few minutes ahead: it is compacted into
the next day and belongs to the day before, which the previous night already cleaned."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from bibev.cli.app import run
from bibev.db import open_database
from bibev.db.quality import clean_quality_rows
from bibev.db.segments import load_segments
from bibev.storage import Storage

pytestmark = pytest.mark.timeout(300)

# the last messages of 3 March, delivered late or sent by a clock ahead, are filed on 4 March
DAYS = [date(2025, 3, 1) + timedelta(days=n) for n in range(4)]
SIM = ["sim", "--vehicles", "4", "--days", "3", "--start", "2025-03-01", "--seed", "7"]


def layers(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for layer in ("compressed", "clean", "segments")
        for path in sorted((root / layer).rglob("*.parquet"))
    }


def stored(url: str) -> tuple[list[dict], list[dict]]:
    engine = open_database(url)
    try:
        quality = [
            {k: v for k, v in r.items() if k != "cleaned_at"} for r in clean_quality_rows(engine)
        ]
        return quality, load_segments(engine)
    finally:
        engine.dispose()


def ahead_across_midnight(root: Path) -> pl.DataFrame:
    """Compressed rows filed on a day after the one they were received on, by a clock ahead."""
    rows = pl.concat(
        pl.read_parquet(path, columns=["vin", "ts", "received_at"])
        for path in (root / "compressed").rglob("*.parquet")
    )
    return rows.filter(
        (pl.col("ts").dt.date() > pl.col("received_at").dt.date())
        & (pl.col("ts") - pl.col("received_at") < pl.duration(minutes=10))
    )


def test_night_after_night_ends_as_one_run_over_every_day(isolated: Path) -> None:
    nightly, at_once = isolated / "nightly", isolated / "at-once"
    options = ["--no-progress", "-q"]
    for root in (nightly, at_once):
        assert run([*options, "--root", str(root), *SIM]) == 0
    nightly_db, at_once_db = f"sqlite:///{isolated / 'n.db'}", f"sqlite:///{isolated / 'a.db'}"

    for day in DAYS:
        base = [*options, "--root", str(nightly), "--database-url", nightly_db]
        assert run([*base, "compact", "--date", f"{day}", "--workers", "1"]) == 0
        assert run([*base, "transform", "all", "--date", f"{day}", "--workers", "1"]) == 0
    base = [*options, "--root", str(at_once), "--database-url", at_once_db]
    assert run([*base, "compact", "--workers", "1"]) == 0
    assert run([*base, "transform", "all", "--workers", "1"]) == 0

    ahead = ahead_across_midnight(at_once)
    assert ahead.height > 0  # the case this test is about is in the fleet
    vin, ts = ahead.row(0)[:2]
    written = Storage(str(nightly)).read_parquet(
        f"clean/{ts - timedelta(days=1):%Y/%m/%d}/{vin}.parquet"
    )
    assert ahead["received_at"][0] in written["ts"].to_list()

    assert layers(nightly) == layers(at_once)
    assert stored(nightly_db) == stored(at_once_db)
    # each night's runs did what compact and clean noted: no note is left waiting
    assert not (nightly / "changes").exists()
