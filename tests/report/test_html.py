"""The fleet figures, the session timeline and the HTML page, on sessions written by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from bibev.pipeline.segment import SEGMENT_SCHEMA
from bibev.report.fleet import dropped_by_reason, quality_summary, vehicle_summary
from bibev.report.html import FleetReport, render_fleet_report
from bibev.report.quality import REPORT_SCHEMA
from bibev.report.timeline import timeline_svg

DAY = datetime(2025, 3, 3, tzinfo=UTC)
A, B = "5YJ3E1EA7KF000001", "5YJ3E1EA7KF000002"


def session(vin: str, kind: str, start_h: float, end_h: float, **features) -> dict:
    row = {
        "vin": vin,
        "day": (DAY + timedelta(hours=start_h)).date(),
        "kind": kind,
        "start": DAY + timedelta(hours=start_h),
        "end": DAY + timedelta(hours=end_h),
        "duration_s": (end_h - start_h) * 3600,
        "soc_start": 50.0,
        "soc_end": 50.0,
        "distance_km": 0.0,
        "energy_added_kwh": 0.0,
        "charger_kind": "none",
        "offline": False,
    }
    return row | features


def segments() -> pl.DataFrame:
    return pl.DataFrame(
        [
            session(A, "idle", -2, 8),  # starts the day before the window
            session(A, "driving", 8, 8.5, distance_km=21.5, soc_end=45.0),
            session(A, "charging", 9, 10, energy_added_kwh=30.0, charger_kind="dc"),
            session(A, "charging", 20, 22, energy_added_kwh=7.5, charger_kind="ac", offline=True),
            session(B, "driving", 23, 25, distance_km=100.0),  # ends the next day
        ]
    )


def quality() -> pl.DataFrame:
    rows = [
        {"vin": A, "rows_in": 100, "rows_out": 90, "dropped_total": 3, "gaps": 2},
        {"vin": A, "rows_in": 50, "rows_out": 40, "dropped_total": 1, "gaps": 1},
        {"vin": B, "rows_in": 10, "rows_out": 10, "dropped_total": 0, "gaps": 0},
    ]
    frame = pl.DataFrame(rows).with_columns(
        dropped_soc_range=pl.Series([2, 0, 0]),
        dropped_odometer_back=pl.Series([1, 1, 0]),
        dropped_duplicate=pl.Series([0, 0, 0]),
        longest_gap_s=pl.Series([3600.0, 7200.0, None]),
    )
    return frame


def test_vehicle_summary_adds_up_each_vehicle() -> None:
    rows = {row["vin"]: row for row in vehicle_summary(segments()).to_dicts()}
    assert rows[A] == {
        "vin": A,
        "days": 2,
        "drives": 1,
        "distance_km": 21.5,
        "charges": 2,
        "dc_charges": 1,
        "energy_added_kwh": 37.5,
        "idle_h": 10.0,
        "offline_sessions": 1,
    }
    assert (rows[B]["drives"], rows[B]["distance_km"], rows[B]["charges"]) == (1, 100.0, 0)


def test_quality_summary_and_reasons() -> None:
    rows = quality_summary(quality()).to_dicts()
    assert rows[0] == {
        "vin": A,
        "rows_in": 150,
        "rows_out": 130,
        "dropped_total": 4,
        "gaps": 3,
        "longest_gap_h": 2.0,
    }
    assert dropped_by_reason(quality()) == {"soc_range": 2, "odometer_back": 2}


def test_timeline_draws_each_session_cut_to_the_window() -> None:
    svg = timeline_svg(segments(), DAY, 1)
    assert svg.count("<title>") == 5
    assert svg.count('fill="url(#gap)"') == 1  # the offline charge is hatched
    # the idle session from the day before starts at the window's left edge (x = 140);
    # the drive into the next day ends at its right edge (140 + 940 = 1080)
    assert '<rect x="140.0" y="22" width="313.3"' in svg
    assert '<rect x="1040.8" y="40" width="39.2"' in svg
    assert "driving 2025-03-03 23:00 → 2025-03-04 01:00 UTC" in svg
    assert "charging 2025-03-03 09:00 → 10:00 UTC, SoC 50 → 50 %, 30.0 kWh (dc)" in svg


def test_page_escapes_what_comes_from_data() -> None:
    vehicles = pl.DataFrame(
        {"vin": [A, B], "model": ["<script>x</script>", "S"], "nominal_capacity_kwh": [75.0, 95.0]}
    )
    page = render_fleet_report(
        FleetReport(
            title="fleet & co",
            generated_at=DAY,
            period=(date(2025, 3, 3), date(2025, 3, 3)),
            segments=segments(),
            quality=quality(),
            vehicles=vehicles,
            notes=["a < b"],
        )
    )
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<title>fleet &amp; co</title>" in page
    assert "<p>a &lt; b</p>" in page
    assert "Sessions against the truth" not in page  # no scores given: no such section
    assert "Rows dropped by cleaning, by reason: soc_range 2, odometer_back 2." in page
    assert '<div class="figure"><b>38</b>kWh charged</div>' in page


def test_a_fleet_without_sessions_still_gets_a_page() -> None:
    page = render_fleet_report(
        FleetReport(
            title="quiet fleet",
            generated_at=DAY,
            period=(date(2025, 3, 3), date(2025, 3, 3)),
            segments=pl.DataFrame(schema=SEGMENT_SCHEMA),
            quality=pl.DataFrame(schema=REPORT_SCHEMA),
        )
    )
    assert '<div class="figure"><b>0</b>vehicles</div>' in page
    assert page.count("<tr>") == 2  # the two tables' header rows, no vehicle rows


def test_quality_report_schema_has_what_the_summary_reads() -> None:
    assert {"vin", "rows_in", "rows_out", "dropped_total", "gaps", "longest_gap_s"} <= set(
        REPORT_SCHEMA
    )
