"""``simulate_fleet``: the temp/ layout, the truth files, the mess catalogue, determinism."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from bibev.errors import ConfigError, DataContractError
from bibev.providers.tesla import TeslaAdapter
from bibev.sim import SimConfig, simulate_fleet
from bibev.sim.truth import CAPACITY_SCHEMA, SESSION_SCHEMA
from bibev.storage import Storage

from .conftest import START, simulate

NAME = re.compile(r"^\d{12}-[0-9a-f]{32}\.jsonl$")


def _files(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = _files(simulate(tmp_path / "a", vehicles=3, days=2).root)
    again = _files(simulate(tmp_path / "b", vehicles=3, days=2).root)
    other = _files(simulate(tmp_path / "c", vehicles=3, days=2, seed=4).root)
    assert first == again
    assert any(k.startswith("temp/") for k in first)
    assert {"truth/sessions.parquet", "truth/capacity.parquet", "truth/manifest.json"} <= set(first)
    assert first["truth/sessions.parquet"] != other["truth/sessions.parquet"]
    assert set(first) != set(other)


def test_adding_vehicles_leaves_the_others_unchanged(tmp_path):
    small = _files(simulate(tmp_path / "a", vehicles=2, days=1).root)
    large = _files(simulate(tmp_path / "b", vehicles=5, days=1).root)
    temp = {k: v for k, v in small.items() if k.startswith("temp/")}
    assert temp
    assert all(large[k] == v for k, v in temp.items())


def test_clean_and_messy_runs_share_the_truth(tmp_path):
    clean = simulate(tmp_path / "a", vehicles=3, days=2, mess=False).root
    messy = simulate(tmp_path / "b", vehicles=3, days=2).root
    drop = ["offline"]
    a = pl.read_parquet(clean / "truth/sessions.parquet").drop(drop)
    b = pl.read_parquet(messy / "truth/sessions.parquet").drop(drop)
    assert a.equals(b)


def test_temp_layout_is_vin_then_utc_date_of_the_message(messy):
    adapter = TeslaAdapter()
    checked = 0
    for key, _, envelope in messy.payloads():
        _, vin, day, name = key.split("/")
        assert NAME.match(name)
        assert envelope["vin"] == vin
        try:
            rows = adapter.flatten(envelope["payload"])
        except DataContractError:
            continue
        assert {r.ts.date().isoformat() for r in rows} == {day}
        assert envelope["source"]["topic"] == "tesla_V"
        checked += 1
    assert checked > 1000


def test_sessions_truth_has_the_documented_columns_and_tiles_time(messy):
    sessions = pl.read_parquet(messy.root / "truth/sessions.parquet")
    assert sessions.schema == pl.Schema(SESSION_SCHEMA)
    assert set(sessions["kind"].unique()) == {"charging", "driving", "idle"}
    assert set(sessions["charger_kind"].unique()) <= {"ac", "dc", "none"}
    start = datetime(START.year, START.month, START.day, tzinfo=UTC)
    for _, part in sessions.group_by("vin"):
        part = part.sort("start")
        assert part["start"][0] == start
        assert part["end"][-1] == start + timedelta(days=2)
        assert (part["start"][1:] == part["end"][:-1]).all()
        assert part["soc_start"].min() >= 0
        assert part["soc_end"].max() <= 100
    assert sessions.filter(pl.col("offline")).height > 0


def test_capacity_truth_is_daily_per_vehicle(messy):
    capacity = pl.read_parquet(messy.root / "truth/capacity.parquet")
    vehicles = pl.read_parquet(messy.root / "truth/vehicles.parquet")
    assert capacity.schema == pl.Schema(CAPACITY_SCHEMA)
    assert capacity.height == 12 * 2
    assert set(capacity["vin"]) == set(vehicles["vin"])
    joined = capacity.join(vehicles, on="vin")
    ratio = joined["capacity_kwh"] / joined["nominal_capacity_kwh"] * 100
    assert np.allclose(ratio.to_numpy(), joined["soh_pct"].to_numpy())
    assert 75 < joined["soh_pct"].min() <= joined["soh_pct"].max() <= 100
    for _, part in capacity.group_by("vin"):
        assert part.sort("ts")["odometer_km"].is_sorted()


def test_garbage_lines_are_exactly_those_listed_in_the_truth(messy):
    adapter = TeslaAdapter()
    broken = set()
    for key, number, text in messy.lines():
        try:
            adapter.flatten(json.loads(text)["payload"])
        except (ValueError, DataContractError):
            broken.add((key, number))
    garbage = pl.read_parquet(messy.root / "truth/garbage.parquet")
    listed = set(zip(garbage["key"].to_list(), garbage["line"].to_list(), strict=True))
    assert sorted(broken - listed) == []
    assert sorted(listed - broken) == []
    assert len(set(garbage["kind"])) >= 2
    assert set(garbage["kind"]) <= {"truncated", "missing_vin", "bad_timestamp"}
    manifest = json.loads((messy.root / "truth/manifest.json").read_text())
    assert sum(v for k, v in manifest["mess"].items() if k.startswith("garbage_")) == garbage.height


def test_mess_rates_are_as_documented(messy):
    mess = messy.summary.mess
    assert 0.15 <= mess["repeated_records"] / mess["datums"] <= 0.25
    assert 0.005 <= mess["resends"] / messy.summary.messages <= 0.02
    assert mess["out_of_order_lines"] > 0
    assert mess["skewed"] > 0
    assert mess["string_values"] > 0
    assert mess["invalid_values"] > 0


def test_resends_repeat_an_earlier_message(messy):
    payloads = [env["payload"] for _, _, env in messy.payloads()]
    originals = {
        json.dumps({**p, "isResend": False}, sort_keys=True)
        for p in payloads
        if not p.get("isResend")
    }
    resends = [p for p in payloads if p.get("isResend") is True]
    assert resends
    assert all(json.dumps({**p, "isResend": False}, sort_keys=True) in originals for p in resends)


def test_clock_skew_is_at_most_five_minutes_ahead(messy):
    ahead = []
    for _, _, env in messy.payloads():
        created = env["payload"].get("createdAt")
        if isinstance(created, str) and not created.startswith("2025-02-30"):
            ahead.append((_ts(created) - _ts(env["received_at"])).total_seconds())
    ahead = np.array(ahead)
    skewed = messy.summary.mess["skewed"]
    assert skewed > 0
    assert 0.5 * skewed <= (ahead > 0).sum() <= 2 * skewed
    assert ahead.max() <= 300


def test_offline_charges_left_no_telemetry(tmp_path):
    messy = simulate(tmp_path, vehicles=25, days=2, seed=12)
    sessions = pl.read_parquet(messy.root / "truth/sessions.parquet")
    hidden = sessions.filter(pl.col("offline") & (pl.col("kind") == "charging"))
    assert hidden.height > 0
    times: dict[str, list[datetime]] = {}
    for _, _, env in messy.payloads():
        created = env["payload"].get("createdAt")
        if isinstance(created, str) and not created.startswith("2025-02-30"):
            times.setdefault(env["vin"], []).append(_ts(created))
    for row in hidden.iter_rows(named=True):
        inside = [t for t in times.get(row["vin"], []) if row["start"] <= t < row["end"]]
        assert inside == []


def test_a_day_the_whole_fleet_sleeps_through_leaves_no_files(tmp_path):
    """Seed 4's two Teslas sleep through 2025-03-03. The Fleet API poll run writes no file for
    that day and goes on with the next two (it used to stop there with an IndexError)."""
    run = simulate(tmp_path, vehicles=2, days=5, seed=4, format="fleet-api-json")
    sessions = pl.read_parquet(run.root / "truth/sessions.parquet")
    day, next_day = datetime(2025, 3, 3, tzinfo=UTC), datetime(2025, 3, 4, tzinfo=UTC)
    that_day = sessions.filter((pl.col("start") < next_day) & (pl.col("end") > day))
    assert that_day["kind"].to_list() == ["idle", "idle"]
    folders = {tuple(key.split("/")[1:3]) for key, _, _ in run.lines()}
    written = ["2025-03-01", "2025-03-02", "2025-03-04", "2025-03-05"]
    assert folders == {(vin, d) for vin in run.summary.vins for d in written}


@pytest.mark.parametrize(
    "options",
    [
        {"vehicles": 0},
        {"days": 0},
        {"seed": -1},
        {"provider": "ford"},
        {"provider": "bmw", "format": "push-v2"},
    ],
)
def test_bad_configuration_is_a_config_error(options):
    with pytest.raises(ConfigError):
        SimConfig(start=START, **options)


def test_worker_processes_write_the_same_files(tmp_path):
    config = SimConfig(start=START, vehicles=3, days=2, seed=3, batch_size=1)
    one = simulate_fleet(config, Storage(str(tmp_path / "a")))
    two = simulate_fleet(config, Storage(str(tmp_path / "b")), workers=2)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert one.as_dict() == two.as_dict()
