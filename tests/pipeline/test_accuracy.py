"""Session scores (matching by IoU, precision/recall/F1 per kind, boundary errors), and the
accuracy suite: bibev and the original phase rules against the simulator's truth, for every
provider format, with every mess on. The table is printed in the test output."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from bibev.pipeline.accuracy import (
    format_scores,
    match_sessions,
    midnight_recall,
    overlapping,
    score_sessions,
)
from bibev.pipeline.baselines import phase_sessions
from bibev.pipeline.clean import run_clean
from bibev.pipeline.compact import run_compact
from bibev.pipeline.feature_errors import feature_errors
from bibev.pipeline.segment import run_segment, segment_series
from bibev.sim.run import SimConfig, simulate_fleet
from bibev.storage import Storage

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
VIN = "5YJ3E1EA7KF000001"


def sessions(*rows: tuple[str, float, float], vin: str = VIN) -> pl.DataFrame:
    """(kind, start minute, end minute) rows."""
    return pl.DataFrame(
        {
            "vin": [vin] * len(rows),
            "kind": [k for k, _, _ in rows],
            "start": [T0 + timedelta(minutes=s) for _, s, _ in rows],
            "end": [T0 + timedelta(minutes=e) for _, _, e in rows],
        },
        schema={
            "vin": pl.String,
            "kind": pl.String,
            "start": pl.Datetime("us", "UTC"),
            "end": pl.Datetime("us", "UTC"),
        },
    )


def test_a_match_needs_the_same_kind_and_half_the_union() -> None:
    truth = sessions(("driving", 0, 60), ("charging", 60, 120), ("driving", 200, 210))
    predicted = sessions(("driving", 5, 62), ("driving", 60, 120), ("driving", 206, 216))
    pairs = match_sessions(predicted, truth)
    assert pairs.select("true_id", "pred_id").rows() == [(0, 0)]
    assert pairs["iou"][0] == pytest.approx(55 / 62)
    assert pairs.select("start_error_s", "end_error_s").row(0) == (300.0, 120.0)


def test_one_truth_matches_one_prediction() -> None:
    truth = sessions(("driving", 0, 60))
    predicted = sessions(("driving", 0, 30), ("driving", 30, 60), ("driving", 0, 59))
    assert match_sessions(predicted, truth).select("pred_id").to_series().to_list() == [2]


def test_vehicles_are_never_matched_across() -> None:
    truth = sessions(("driving", 0, 60))
    predicted = sessions(("driving", 0, 60), vin="WBA71AW08NF118453")
    assert match_sessions(predicted, truth).height == 0


def test_scores_per_kind() -> None:
    truth = sessions(("driving", 0, 60), ("driving", 100, 160), ("charging", 200, 300))
    predicted = sessions(("driving", 1, 61), ("charging", 90, 160), ("charging", 210, 300))
    scores = {row["kind"]: row for row in score_sessions(predicted, truth).to_dicts()}
    assert scores["driving"] == {
        "kind": "driving",
        "n_true": 2,
        "n_predicted": 1,
        "matched": 1,
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "median_start_error_s": 60.0,
        "median_end_error_s": 60.0,
    }
    assert (scores["charging"]["precision"], scores["charging"]["recall"]) == (0.5, 1.0)
    assert scores["idle"]["f1"] == 0.0
    assert scores["idle"]["median_start_error_s"] is None


def test_midnight_recall_counts_the_sessions_that_cross() -> None:
    truth = sessions(
        ("charging", 17 * 60, 20 * 60), ("driving", 60, 90), ("idle", 17 * 60, 20 * 60)
    )
    assert midnight_recall(sessions(("charging", 17 * 60 + 5, 20 * 60)), truth) == (1, 1)
    assert midnight_recall(sessions(("charging", 17 * 60, 18 * 60 - 1)), truth) == (1, 0)


def test_overlapping_finds_duplicates() -> None:
    clean = sessions(("driving", 0, 60), ("idle", 60, 90))
    assert overlapping(clean).height == 0
    doubled = sessions(("driving", 0, 60), ("driving", 30, 90))
    assert overlapping(doubled).select("start").to_series().to_list() == [
        T0 + timedelta(minutes=30)
    ]


def test_the_table_prints_as_markdown() -> None:
    truth = sessions(("driving", 0, 60))
    table = format_scores(score_sessions(truth, truth, kinds=["driving"]), title="t")
    assert table.splitlines() == [
        "**t**",
        "",
        "| kind | n_true | n_predicted | matched | precision | recall | f1 | median_start_error_s"
        " | median_end_error_s |",
        "|---|---|---|---|---|---|---|---|---|",
        "| driving | 1 | 1 | 1 | 1.000 | 1.000 | 1.000 | 0.000 | 0.000 |",
    ]


# -- the accuracy suite: simulator truth → sim → compact → clean → segment ---------------------

FIRST_DAY = date(2025, 3, 3)
SEED = 7
NOW = datetime(2025, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Fleet:
    provider: str
    format: str
    streamed: bool
    vehicles: int
    days: int

    @property
    def name(self) -> str:
        return f"{self.provider} {self.format}"


#: Every format the simulator writes. Streamed formats report every few seconds and carry the
#: targets; polled ones (an answer every 5 to 30 minutes) are measured and reported.
FLEETS = (
    Fleet("tesla", "fleet-telemetry-json", True, 16, 6),
    Fleet("bmw", "cardata-stream", True, 16, 6),
    Fleet("high-mobility", "push-v2", True, 16, 6),
    Fleet("sim", "sim-json", True, 16, 6),
    Fleet("tesla", "fleet-api-json", False, 8, 4),
    Fleet("bmw", "cardata-rest", False, 8, 4),
    Fleet("high-mobility", "auto-api-rest", False, 8, 4),
    Fleet("mobilisight", "car-state-v2", False, 8, 4),
)
TARGET_F1 = 0.97
TARGET_BOUNDARY_S = 120.0


@dataclass
class Measured:
    fleet: Fleet
    bibev: pl.DataFrame
    baseline: pl.DataFrame
    midnight: tuple[int, int]  # true charges and drives seen online that cross midnight, matched
    midnight_offline: tuple[int, int]  # the same for those hidden in a telemetry gap
    overlaps: int
    partitioned_differently: int
    sessions: int
    features: pl.DataFrame  # feature errors of the matched sessions (feature_errors)


def whole_series(clean: pl.DataFrame) -> pl.DataFrame:
    """Each vehicle's whole series segmented at once (no day partitions)."""
    frames = [segment_series(part.lazy()).collect() for _, part in clean.group_by("vin")]
    return pl.concat(frames)


def differences(by_day: pl.DataFrame, whole: pl.DataFrame, first: date, days: int) -> int:
    """Sessions (idle ones too) that the day partitions cut differently from the whole series
    (away from the first and last day, where both lack context in the same way)."""
    lo = datetime.combine(first + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    hi = datetime.combine(first + timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC)

    def keyed(frame: pl.DataFrame) -> pl.DataFrame:
        inside = pl.col("start").is_between(lo, hi, closed="left")
        return frame.filter(inside).select("vin", pl.col("kind").cast(pl.String), "start", "end")

    return keyed(by_day).join(keyed(whole), on=["vin", "kind", "start", "end"], how="anti").height


def measure(fleet: Fleet, root: Path) -> Measured:
    storage = Storage(str(root))
    config = SimConfig(
        start=FIRST_DAY,
        vehicles=fleet.vehicles,
        days=fleet.days,
        seed=SEED,
        provider=fleet.provider,
        format=fleet.format,
    )
    simulate_fleet(config, storage)
    run_compact(storage, now=NOW, workers=2)
    cleaned = run_clean(storage, None, now=NOW, workers=2)
    segmented = run_segment(storage, None, workers=2)
    assert cleaned.failures == segmented.failures == []
    predicted = pl.concat([storage.read_parquet(key) for key in storage.list("segments")])
    truth = storage.read_parquet("truth/sessions.parquet")
    clean = pl.concat([storage.read_parquet(key) for key in storage.list("clean")])
    baseline = phase_sessions(clean.lazy()).collect()
    return Measured(
        fleet,
        score_sessions(predicted, truth),
        score_sessions(baseline, truth),
        midnight_recall(predicted, truth.filter(~pl.col("offline"))),
        midnight_recall(predicted, truth.filter(pl.col("offline"))),
        overlapping(predicted).height,
        differences(predicted, whole_series(clean), FIRST_DAY, fleet.days),
        truth.height,
        feature_errors(predicted, truth),
    )


def features_table(results: list[Measured]) -> str:
    frames = [r.features.select(pl.lit(r.fleet.name).alias("format"), pl.all()) for r in results]
    return format_scores(pl.concat(frames))


def accuracy_table(results: list[Measured]) -> str:
    rows = []
    for result in results:
        for method, scores in (("bibev", result.bibev), ("baseline", result.baseline)):
            for row in scores.filter(pl.col("kind") != "idle").to_dicts():
                rows.append({"format": result.fleet.name, "method": method, **row})
    return format_scores(pl.DataFrame(rows))


@pytest.fixture(scope="module")
def measured(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, Measured]:
    results = [measure(fleet, tmp_path_factory.mktemp(fleet.format)) for fleet in FLEETS]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None:
        # outside output capture, so the table is in every CI log, not only on failure
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            write_accuracy(reporter, results)
    return {result.fleet.name: result for result in results}


def write_accuracy(reporter: Any, results: list[Measured]) -> None:
    """The accuracy table and the midnight figures, in the test session's output."""
    reporter.ensure_newline()
    reporter.write_line("")
    reporter.write_line(
        f"segmentation accuracy vs simulator truth (seed {SEED}, every mess on; "
        "a match is the same kind with time IoU >= 0.5; errors in seconds):"
    )
    for line in accuracy_table(results).splitlines():
        reporter.write_line(line)
    reporter.write_line("")
    reporter.write_line(
        "session features vs simulator truth, over the matched sessions (absolute errors; "
        "SoC errors include the cars' BMS bias):"
    )
    for line in features_table(results).splitlines():
        reporter.write_line(line)
    for result in results:
        (crossing, matched), (hidden, found) = result.midnight, result.midnight_offline
        reporter.write_line(
            f"{result.fleet.name}: {result.fleet.vehicles} vehicles x {result.fleet.days} "
            f"days, {result.sessions} true sessions; across midnight {matched}/{crossing} "
            f"matched (offline: {found}/{hidden}); overlapping sessions {result.overlaps}; "
            f"cut differently by day partitions {result.partitioned_differently}"
        )


def scores_of(measured: dict[str, Measured], fleet: Fleet, method: str) -> dict[str, dict]:
    frame = getattr(measured[fleet.name], method)
    return {row["kind"]: row for row in frame.to_dicts()}


STREAMED = [fleet for fleet in FLEETS if fleet.streamed]


#: Where a target is not met yet (seed 7), and why. These stay asserted, as strict expected
#: failures: the day a change meets one, the suite fails until it is removed from here.
SHORTFALLS: dict[tuple[str, str], str] = {
    ("tesla fleet-telemetry-json", "charging"): (
        "F1 0.925: the 3 missed charges were hidden in telemetry gaps, and the data after "
        "them does not time them: 21 kWh at 3.2 kW where the car was never seen charging "
        "(laid at offline_charge_kw: IoU 0.465), one after a car asleep since the morning drove "
        "off unseen (laid from the gap's start: 64 min early), one of 1.5 kWh whose SoC rise "
        "with the hidden driving added back is 1.99 points (under soc_jump_pct)"
    ),
    ("sim sim-json", "charging"): (
        "F1 0.967: the 2 missed charges were hidden in gaps: the asleep car's (as for Tesla) "
        "and one of 0.9 kWh whose SoC rise with the hidden driving is 1.31 points"
    ),
}


def _target_cases() -> list[Any]:
    cases = []
    for fleet in STREAMED:
        for kind in ("charging", "driving"):
            reason = SHORTFALLS.get((fleet.name, kind))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(fleet, kind, marks=marks, id=f"{kind}-{fleet.name}"))
    return cases


@pytest.mark.parametrize(("fleet", "kind"), _target_cases())
def test_streamed_formats_meet_the_f1_target(
    measured: dict[str, Measured], fleet: Fleet, kind: str
) -> None:
    score = scores_of(measured, fleet, "bibev")[kind]
    assert score["n_true"] >= 30
    assert score["f1"] >= TARGET_F1


@pytest.mark.parametrize("fleet", STREAMED, ids=lambda f: f.name)
@pytest.mark.parametrize("kind", ["charging", "driving"])
def test_streamed_formats_meet_the_boundary_target(
    measured: dict[str, Measured], fleet: Fleet, kind: str
) -> None:
    score = scores_of(measured, fleet, "bibev")[kind]
    assert score["median_start_error_s"] <= TARGET_BOUNDARY_S
    assert score["median_end_error_s"] <= TARGET_BOUNDARY_S


@pytest.mark.parametrize("fleet", FLEETS, ids=lambda f: f.name)
def test_no_session_is_lost_cut_or_doubled_across_midnight(
    measured: dict[str, Measured], fleet: Fleet
) -> None:
    result = measured[fleet.name]
    crossing, matched = result.midnight
    assert result.overlaps == 0
    assert result.partitioned_differently == 0
    if fleet.streamed:
        assert crossing > 0
        assert matched == crossing


@pytest.mark.parametrize("fleet", FLEETS, ids=lambda f: f.name)
def test_bibev_beats_the_baseline(measured: dict[str, Measured], fleet: Fleet) -> None:
    ours, theirs = scores_of(measured, fleet, "bibev"), scores_of(measured, fleet, "baseline")
    assert ours["driving"]["f1"] > theirs["driving"]["f1"]
    if fleet.streamed:
        for kind in ("charging", "driving"):
            assert ours[kind]["median_start_error_s"] < theirs[kind]["median_start_error_s"]
