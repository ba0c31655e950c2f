"""The original package's phase rules (the baseline bibev is measured against)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from bibev.pipeline.baselines import PHASE_SCHEMA, PhaseParams, phase_sessions
from tests.pipeline.clean_series import Series, at

VIN = "5YJ3E1EA7KF000001"


def socs(*points: tuple[float, float | None], vin: str = VIN) -> pl.LazyFrame:
    """Rows at (minutes after 06:00, SoC)."""
    start = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
    return pl.LazyFrame(
        {
            "vin": [vin] * len(points),
            "ts": [start + timedelta(minutes=m) for m, _ in points],
            "soc_pct": [s for _, s in points],
        },
        schema={"vin": pl.String, "ts": pl.Datetime("us", "UTC"), "soc_pct": pl.Float64},
    )


def phases(
    frame: pl.LazyFrame, params: PhaseParams | None = None
) -> list[tuple[str, float, float]]:
    found = phase_sessions(frame, params).collect()
    assert found.schema == pl.Schema(PHASE_SCHEMA)
    t0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
    return [
        (kind, (start - t0).total_seconds() / 60, (end - t0).total_seconds() / 60)
        for kind, start, end in found.select("kind", "start", "end").iter_rows()
    ]


def test_the_sign_of_the_soc_change_makes_the_phases() -> None:
    frame = socs((0, 50), (10, 49), (20, 48), (30, 52), (40, 56), (50, 56.2), (60, 56.4))
    assert phases(frame) == [("driving", 0, 20), ("charging", 30, 60)]


def test_a_small_change_is_idle() -> None:
    assert phases(socs((0, 50), (10, 50.2), (20, 50.4))) == [("idle", 0, 20)]


def test_rows_without_soc_are_dropped() -> None:
    frame = socs((0, 50), (5, None), (10, 48), (20, 46))
    assert phases(frame) == [("driving", 0, 20)]


def test_a_short_phase_joins_the_one_before() -> None:
    # 2 minutes of rise inside a discharge: merged into the discharging phase.
    frame = socs((0, 60), (10, 58), (20, 56), (21, 56.3), (22, 56.6), (30, 54), (40, 52))
    assert phases(frame) == [("driving", 0, 22), ("driving", 30, 40)]


def test_a_long_gap_starts_a_new_phase_and_a_lone_point_is_dropped() -> None:
    frame = socs((0, 60), (10, 58), (20, 56), (80, 54))
    assert phases(frame) == [("driving", 0, 20)]


def test_phases_longer_than_a_day_are_dropped() -> None:
    frame = socs(*[(m, 80 - m / 60) for m in range(0, 26 * 60, 30)])
    assert phases(frame) == []
    assert phases(frame, PhaseParams(max_duration_s=30 * 3600)) == [("driving", 0, 25.5 * 60)]


def test_vehicles_are_kept_apart() -> None:
    frame = pl.concat([socs((0, 50), (10, 48)), socs((0, 50), (10, 52), vin="WBA71AW08NF118453")])
    found = phase_sessions(frame).collect()
    assert sorted(found.select("vin", "kind").iter_rows()) == [
        (VIN, "driving"),
        ("WBA71AW08NF118453", "charging"),
    ]


def test_on_a_clean_series_it_finds_charges_but_not_where_drives_start() -> None:
    series = Series().park(30).drive(20).park(30).charge(60).park(30)
    found = phase_sessions(series.lazy()).collect()
    charge = found.filter(pl.col("kind") == "charging")
    assert charge.height == 1
    assert charge["start"][0] == pytest.approx(at(80), abs=timedelta(minutes=1))
    drive = found.filter(pl.col("kind") == "driving")
    assert drive["start"][0] <= at(30)  # the idle drain before the drive counts as discharge
