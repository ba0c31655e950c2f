"""The ``sim`` provider adapter: bibev's own format, mapped by identity."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from bibev.errors import DataContractError
from bibev.pipeline.mapping import apply_mapping
from bibev.providers.registry import get_registry
from bibev.providers.sim import UNITS, SimAdapter
from bibev.schema import SIGNAL_COLUMNS, rows_to_frame

VIN = "5YJ3E1EA7KF000001"
MESSAGE = {
    "vin": VIN,
    "ts": "2025-03-01T10:00:00.250Z",
    "signals": {
        "soc_pct": 71.25,
        "odometer_km": "12345.6",
        "gear": "D",
        "charging_state": "charging",
        "charger_kind": "dc",
        "charge_limit_pct": 80,
        "brand_new_key": True,
    },
}


def test_registered_through_the_entry_point():
    entry = get_registry().entry("sim")
    assert entry.status == "ok"
    assert entry.formats == ("sim-json",)
    assert get_registry().get("sim") is SimAdapter


def test_knows_every_canonical_column():
    assert tuple(UNITS) == SIGNAL_COLUMNS


def test_flatten_keeps_every_value_as_sent():
    rows = SimAdapter().flatten(MESSAGE)
    by_key = {r.key: r for r in rows}
    assert len(rows) == 7
    assert by_key["soc_pct"].value == 71.25
    assert by_key["soc_pct"].unit == "%"
    assert by_key["odometer_km"].value == "12345.6"
    assert by_key["brand_new_key"].value is True
    assert by_key["brand_new_key"].unit is None
    assert {r.ts for r in rows} == {datetime(2025, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)}
    assert {r.vin for r in rows} == {VIN}
    assert len({r.message_id for r in rows}) == 1


def test_mapping_is_the_identity():
    frame = rows_to_frame(SimAdapter().flatten(MESSAGE), provider="sim")
    mapped = apply_mapping(frame, SimAdapter.mapping).collect()
    values = {
        r["column"]: r["value_f64"] if r["value_str"] is None else r["value_str"]
        for r in mapped.iter_rows(named=True)
    }
    assert values == {
        "soc_pct": 71.25,
        "odometer_km": 12345.6,
        "gear": "D",
        "charging_state": "charging",
        "charger_kind": "dc",
        "charge_limit_pct": 80.0,
    }
    assert mapped.filter(pl.col("key") == "brand_new_key").height == 0


@pytest.mark.parametrize(
    "message",
    [
        {**MESSAGE, "vin": ""},
        {**MESSAGE, "ts": "2025-02-30T25:61:00Z"},
        {k: v for k, v in MESSAGE.items() if k != "signals"},
        ["not", "an", "object"],
    ],
)
def test_unreadable_messages_are_data_contract_errors(message):
    with pytest.raises(DataContractError):
        SimAdapter().flatten(message)
