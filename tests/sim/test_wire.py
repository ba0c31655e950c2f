"""Round trips: simulated signals → wire format → adapter ``flatten`` → mapping → the same
signals (within the wire's rounding), for every provider format; and every format's shape is
exactly what the provider's own encoder builds."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from bibev.errors import DataContractError
from bibev.pipeline.mapping import apply_mapping
from bibev.providers.bmw import encode_rest as bmw_rest
from bibev.providers.bmw import encode_stream
from bibev.providers.high_mobility import Failure, encode_push
from bibev.providers.high_mobility import encode_rest as hm_rest
from bibev.providers.mobilisight import encode_car_state
from bibev.providers.registry import get_registry
from bibev.schema import rows_to_frame
from bibev.sim.fleet import make_fleet
from bibev.sim.physics import VehicleSim
from bibev.sim.pipeline import render_batch, simulate_batch
from bibev.sim.plan import day_start_utc
from bibev.sim.trace import GEARS
from bibev.sim.wire import FORMATS, WireFormat
from bibev.sim.wire.fields import BOOL, INT, LOCATION
from bibev.sim.wire.render import piece_bytes

from .conftest import START

SEED = 21
T_BITS = 36

# Canonical charging state of each charge phase (Disconnected, NoPower, Starting, Charging,
# Complete, Stopped) once a provider's vocabulary has gone through its adapter's mapping.
CHARGING_STATE = {
    "tesla": ("disconnected", "plugged", "charging", "charging", "complete", "stopped"),
    "bmw": ("unknown", "unknown", "charging", "charging", "complete", "stopped"),
    "high-mobility": ("disconnected", "plugged", "charging", "charging", "complete", "stopped"),
    "mobilisight": ("disconnected", "stopped", "charging", "charging", "complete", "stopped"),
    "sim": ("disconnected", "plugged", "charging", "charging", "complete", "stopped"),
}
KIND_BY_PLUG = ("none", "ac", "dc")
FAST_CHARGER = ("none", "dc")  # a fast-charger flag: false, true
ENUM_EXPECTED = {
    "charging_state": lambda provider, f: CHARGING_STATE[provider],
    "gear": lambda provider, f: GEARS,
    "charger_kind": lambda provider, f: FAST_CHARGER if f.kind == BOOL else KIND_BY_PLUG,
}


def flat_keys(fmt: WireFormat) -> dict[str, tuple[str, int, float]]:
    """Flattened row key → (signal, decimals, scale) of each field."""
    keys = {}
    for f in fmt.fields:
        base = ".".join((*f.path, f.key))
        decimals = 0 if f.kind == INT else f.decimals
        if f.kind == LOCATION:
            keys[f"{base}.latitude"] = ("latitude", 6, 1.0)
            keys[f"{base}.longitude"] = ("longitude", 6, 1.0)
        else:
            keys[base] = (f.signal, decimals, f.scale)
    return keys


def simulate_clean(fmt: WireFormat, vehicles: int = 5, days: int = 2):
    """(batch, lines) of each simulated day, mess off."""
    fleet = make_fleet(SEED, vehicles, fmt.provider, START)
    end = day_start_utc(START + timedelta(days=days))
    sims = [VehicleSim(SEED, v, START, end) for v in fleet]
    out = []
    for k in range(days):
        batch = simulate_batch(sims, START + timedelta(days=k), fmt, seed=SEED, mess=False)
        _messages, pieces, head_pos = render_batch(batch, fmt, SEED)
        text = piece_bytes(pieces, 0, int(head_pos[-1])).decode()
        out.append((batch, text.splitlines()))
    return out


def recovered(fmt: WireFormat, lines: list[str]) -> pl.DataFrame:
    """The lines as the pipeline reads them: flatten, then the adapter's mapping."""
    adapter = get_registry().adapter(fmt.provider)
    rows = []
    for line in lines:
        envelope = json.loads(line)
        assert envelope["provider"] == fmt.provider
        assert envelope["format"] == fmt.name
        received = datetime.fromisoformat(envelope["received_at"].replace("Z", "+00:00"))
        rows.extend(adapter.flatten(envelope["payload"], received_at=received))
    frame = rows_to_frame(rows, provider=fmt.provider)
    return apply_mapping(frame, adapter.mapping).collect()


def expected_rows(batch, mapped: pl.DataFrame) -> np.ndarray:
    """The trace row of each mapped row (same vehicle, same second)."""
    signals = batch.signals
    trace_keys = (signals.pos.astype(np.int64) << T_BITS) | signals.trace["t"]
    vins = {sim.v.vin: i for i, sim in enumerate(batch.sims)}
    pos = np.array([vins[v] for v in mapped["vin"].to_list()], dtype=np.int64)
    second = mapped["ts"].dt.epoch("s").to_numpy()
    rows = np.searchsorted(trace_keys, (pos << T_BITS) | second)
    assert np.all(trace_keys[np.minimum(rows, trace_keys.size - 1)] == (pos << T_BITS) | second)
    return rows


@pytest.fixture(scope="module", params=sorted(FORMATS), ids=lambda k: f"{k[0]}:{k[1]}")
def round_trip(request):
    fmt = FORMATS[request.param]
    days = simulate_clean(fmt)
    return fmt, [(batch, lines, recovered(fmt, lines)) for batch, lines in days]


def test_every_line_reads_and_maps(round_trip):
    fmt, days = round_trip
    columns = set()
    for _, lines, mapped in days:
        assert lines
        columns |= set(mapped["column"].unique().to_list())
    assert {"soc_pct", "odometer_km", "charging_state"} <= columns
    if any(f.signal == "speed_kmh" for f in fmt.fields):
        assert "speed_kmh" in columns


def test_numbers_come_back_within_the_wire_rounding(round_trip):
    fmt, days = round_trip
    keys = flat_keys(fmt)
    checked = set()
    for batch, _, mapped in days:
        numbers = mapped.filter(pl.col("value_f64").is_not_null())
        rows = expected_rows(batch, numbers)
        for key, part in numbers.with_row_index("i").group_by("key"):
            signal, decimals, scale = keys[key[0]]
            index = part["i"].to_numpy()
            truth = batch.signals.at(signal, rows[index]).astype(float)
            tolerance = 0.5 * 10.0**-decimals / abs(scale) * 1.0001 + 1e-9
            error = np.abs(part["value_f64"].to_numpy() - truth)
            assert error.max() <= tolerance, (key[0], error.max(), tolerance)
            checked.add(key[0])
    assert len(checked) >= 4


def test_states_come_back_in_the_canonical_vocabulary(round_trip):
    fmt, days = round_trip
    fields = {".".join((*f.path, f.key)): f for f in fmt.fields}
    seen: dict[str, set[str]] = {}
    for batch, _, mapped in days:
        words = mapped.filter(
            pl.col("column").is_in(list(ENUM_EXPECTED)) & pl.col("value_str").is_not_null()
        )
        rows = expected_rows(batch, words)
        for (key, column), part in words.with_row_index("i").group_by("key", "column"):
            f = fields[key]
            table = ENUM_EXPECTED[column](fmt.provider, f)
            codes = batch.signals.at(f.signal, rows[part["i"].to_numpy()]).astype(int)
            assert part["value_str"].to_list() == [table[c] for c in codes], key
            seen.setdefault(column, set()).update(part["value_str"].to_list())
    assert {"charging", "complete"} & seen["charging_state"]
    assert "charging" in seen["charging_state"]


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _encoded(fmt: WireFormat, payload: dict) -> dict:
    """The same message built by the provider's own encoder from the payload's values."""
    if fmt.name == "cardata-stream":
        values = {k: {**e, "timestamp": _ts(e["timestamp"])} for k, e in payload["data"].items()}
        gcid = payload["topic"].split("/")[0]
        return encode_stream(
            payload["vin"],
            _ts(payload["timestamp"]),
            values,
            gcid=gcid,
            entity_id=payload["entityId"],
        )
    if fmt.name == "cardata-rest":
        values = {
            k: {**e, "timestamp": _ts(e["timestamp"])} for k, e in payload["telematicData"].items()
        }
        return bmw_rest(payload["vin"], datetime.now(), values)
    if fmt.name in ("push-v2", "auto-api-rest"):
        body = payload["data"] if fmt.name == "push-v2" else payload
        values, stamp = {}, None
        for capability, properties in body.items():
            if not isinstance(properties, dict):
                continue
            for prop, points in properties.items():
                point = points[0] if isinstance(points, list) else points
                stamp = _ts(point["timestamp"])
                data = point.get("data")
                if "failure" in point:
                    values[f"{capability}.{prop}"] = Failure(**point["failure"])
                elif isinstance(data, dict) and "unit" in data:
                    values[f"{capability}.{prop}"] = (data["value"], data["unit"])
                else:
                    values[f"{capability}.{prop}"] = data
        if fmt.name == "push-v2":
            return encode_push(
                payload["vin"],
                stamp,
                values,
                message_id=payload["message_id"],
                application_id=payload["application_id"],
            )
        return hm_rest(payload["vin"], stamp, values, request_id=payload["request_id"])
    assert fmt.name == "car-state-v2"
    values = {}
    for top in ("odometer", "electricity"):
        for path, value in _leaves(payload[top], top):
            values[path] = value
    return encode_car_state(
        payload["vin"], _ts(payload["datetime"]), values, sent_at=_ts(payload["datetimeSending"])
    )


def _leaves(node: dict, prefix: str):
    for name, child in node.items():
        if isinstance(child, dict):
            yield from _leaves(child, f"{prefix}.{name}")
        else:
            yield f"{prefix}.{name}", child


ENCODED = ["cardata-stream", "cardata-rest", "push-v2", "auto-api-rest", "car-state-v2"]


@pytest.mark.parametrize("name", ENCODED)
def test_messages_equal_the_provider_encoder(name, tmp_path):
    from .conftest import simulate

    fmt = next(f for f in FORMATS.values() if f.name == name)
    written = simulate(tmp_path, vehicles=4, days=1, seed=SEED, provider=fmt.provider, format=name)
    payloads = [
        env["payload"] for _, _, env in written.payloads() if isinstance(env.get("payload"), dict)
    ]
    checked = 0
    for payload in payloads[::7]:
        if "vin" not in payload or "2025-02-30" in json.dumps(payload):
            continue  # garbage copies
        assert _encoded(fmt, payload) == payload
        checked += 1
    assert checked > 10


@pytest.mark.parametrize("key", sorted(FORMATS), ids=lambda k: f"{k[0]}:{k[1]}")
def test_only_the_listed_garbage_lines_are_unreadable(key, tmp_path):
    from .conftest import simulate

    fmt = FORMATS[key]
    written = simulate(
        tmp_path, vehicles=10, days=1, seed=8, provider=fmt.provider, format=fmt.name
    )
    adapter = get_registry().adapter(fmt.provider)
    broken = set()
    for file_key, number, text in written.lines():
        try:
            envelope = json.loads(text)
            adapter.flatten(envelope["payload"], received_at=_ts(envelope["received_at"]))
        except (ValueError, DataContractError):
            broken.add((file_key, number))
    garbage = pl.read_parquet(written.root / "truth/garbage.parquet")
    assert broken == set(zip(garbage["key"].to_list(), garbage["line"].to_list(), strict=True))
    assert garbage.height == sum(
        v for k, v in written.summary.mess.items() if k.startswith("garbage_")
    )
