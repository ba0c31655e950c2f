"""Several keys feeding one column: preference among keys, and the charger-kind rules for
Tesla's AC/DC power and energy counters (with the real Tesla mapping)."""

from __future__ import annotations

import polars as pl
import pytest

from bibev.pipeline.clean import CHARGER_KIND_SOURCES, clean_frame
from bibev.providers.base import SignalMap
from bibev.providers.tesla.mapping import MAPPING as TESLA
from tests.pipeline.test_clean_frame import DAY, VIN, at, day_of, msg


def tesla(*messages: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int], int]:
    rows = day_of(*messages).with_columns(provider=pl.lit("tesla"))
    result = clean_frame(rows, {"tesla": TESLA}, day=DAY)
    [quality] = result.quality
    return result.frame.collect(), quality.dropped, quality.superseded


def values(frame: pl.DataFrame, name: str) -> list[object]:
    return frame[name].to_list()


def test_detailed_charge_state_is_preferred_over_charge_state() -> None:
    frame, dropped, superseded = tesla(
        msg(at(10), DetailedChargeState="DetailedChargeStateStopped", ChargeState="Charging"),
        msg(at(10, 10), ChargeState="ChargeStateCharging", OutsideTemp=4.0),  # preferred: current
        msg(at(11), ChargeState="Complete"),  # the preferred key has been silent for an hour
    )
    assert values(frame, "charging_state") == ["stopped", "stopped", "complete"]
    assert (dropped, superseded) == ({}, 2)


def test_bms_soc_is_preferred_over_the_displayed_level() -> None:
    frame, _, superseded = tesla(
        msg(at(10), Soc=71.4, **{"charge_state.battery_level": 70}),
        msg(at(10, 5), OutsideTemp=4.0, **{"charge_state.battery_level": 69}),
        msg(at(12), **{"charge_state.battery_level": 66}),
    )
    assert values(frame, "soc_pct") == [71.4, 71.4, 66.0]
    assert superseded == 2


def test_an_invalid_preferred_value_lets_the_fallback_speak() -> None:
    frame, _, _ = tesla(
        msg(at(10), Soc=None, invalid=("Soc",), **{"charge_state.battery_level": 70}),
    )
    assert values(frame, "soc_pct") == [70.0]


@pytest.mark.parametrize(
    ("sent", "state", "kind"),
    [
        ({"FastChargerPresent": False}, "DetailedChargeStateCharging", "ac"),
        ({"FastChargerPresent": False}, "DetailedChargeStateNoPower", "none"),
        ({"FastChargerPresent": True}, "DetailedChargeStateCharging", "dc"),
        ({"FastChargerPresent": False, "FastChargerType": "FastChargerSupercharger"}, None, "dc"),
        ({"FastChargerPresent": True}, "DetailedChargeStateDisconnected", "none"),
        ({"FastChargerType": "FastChargerACSingleWireCAN"}, "DetailedChargeStateCharging", "ac"),
        ({}, "DetailedChargeStateCharging", None),
    ],
)
def test_charger_kind(sent: dict[str, object], state: str | None, kind: str | None) -> None:
    extra = {"DetailedChargeState": state} if state else {}
    frame, _, _ = tesla(msg(at(10), Soc=50.0, **sent, **extra))
    assert values(frame, "charger_kind") == [kind]


@pytest.mark.parametrize(
    ("present", "ac", "dc", "power"),
    [
        (True, 0.0, 118.5, 118.5),  # DC: the DC key
        (False, 10.8, 0.0, 10.8),  # AC (charging, no fast charger): the AC key
        (None, 0.0, 95.0, 95.0),  # kind unknown: the larger
        (None, 7.2, 0.0, 7.2),
    ],
)
def test_power_follows_the_charger_kind(
    present: bool | None, ac: float, dc: float, power: float
) -> None:
    kind = {} if present is None else {"FastChargerPresent": present}
    frame, _, _ = tesla(
        msg(
            at(10),
            DetailedChargeState="DetailedChargeStateCharging",
            ACChargingPower=ac,
            DCChargingPower=dc,
            **kind,
        )
    )
    assert values(frame, "charging_power_kw") == [power]


def test_kind_is_inferred_from_power_when_nothing_says_it() -> None:
    frame, _, _ = tesla(msg(at(10), ACChargingPower=0.0, DCChargingPower=60.0))
    assert values(frame, "charger_kind") == ["dc"]


def test_ac_energy_counter_is_ignored_during_dc() -> None:
    frame, _, _ = tesla(
        msg(at(10), FastChargerPresent=True, DetailedChargeState="DetailedChargeStateCharging"),
        msg(at(10, 1), DCChargingEnergyIn=1.5, ACChargingEnergyIn=1.7),
        msg(at(10, 2), ACChargingEnergyIn=3.2),  # no DC counter at this instant: still not AC's
        msg(at(10, 3), DCChargingEnergyIn=4.5),
    )
    assert values(frame, "energy_added_kwh") == [None, 1.5, 1.5, 4.5]


def test_ac_session_energy_uses_the_ac_counter() -> None:
    frame, _, _ = tesla(
        msg(
            at(18),
            FastChargerPresent=False,
            DetailedChargeState="DetailedChargeStateCharging",
            ACChargingEnergyIn=2.25,
            DCChargingEnergyIn=31.0,  # last DC session's counter, still reported
        )
    )
    assert values(frame, "energy_added_kwh") == [2.25]


UNPLUGGED = {"DetailedChargeState": "DetailedChargeStateDisconnected"}


def test_after_a_dc_session_the_dc_counter_speaks_while_unplugged() -> None:
    charging = {"DetailedChargeState": "DetailedChargeStateCharging", "FastChargerPresent": True}
    frame, _, _ = tesla(
        msg(at(10), **charging, DCChargingEnergyIn=12.0, ACChargingEnergyIn=0.0),
        msg(at(10, 40), **charging, DCChargingEnergyIn=30.5, ACChargingEnergyIn=0.0),
        msg(at(10, 45), **UNPLUGGED),
        msg(at(11), **UNPLUGGED, ACChargingEnergyIn=0.0),  # the AC counter, idle since long
        msg(at(11, 10), **UNPLUGGED, DCChargingEnergyIn=30.5),
        msg(at(11, 20), **UNPLUGGED, ACChargingEnergyIn=0.0),
    )
    assert values(frame, "charger_kind") == ["dc", "dc", "none", "none", "none", "none"]
    assert values(frame, "energy_added_kwh") == [12.0, 30.5, 30.5, 30.5, 30.5, 30.5]


def test_after_an_ac_session_the_ac_counter_speaks_while_unplugged() -> None:
    charging = {"DetailedChargeState": "DetailedChargeStateCharging", "FastChargerPresent": False}
    frame, _, _ = tesla(
        msg(at(10), **charging, ACChargingEnergyIn=0.4, DCChargingEnergyIn=0.0),
        msg(at(10, 20), **charging, ACChargingEnergyIn=3.9, DCChargingEnergyIn=0.0),
        msg(at(10, 30), **UNPLUGGED),
        msg(at(11, 10), **UNPLUGGED, DCChargingEnergyIn=0.0),  # the AC counter is 50 min old
        msg(at(11, 20), **UNPLUGGED, ACChargingEnergyIn=3.9),
        msg(at(11, 40), **UNPLUGGED, DCChargingEnergyIn=0.0),
        msg(at(12, 0), **UNPLUGGED, DCChargingEnergyIn=0.0),  # 40 min old: silent again
    )
    assert values(frame, "energy_added_kwh") == [0.4, 3.9, 3.9, None, 3.9, 3.9, None]


def test_the_last_session_kind_is_each_vehicle_own() -> None:
    other = "5YJ3E1EA7KF000002"  # sorts after VIN
    rows = day_of(
        msg(at(10), FastChargerPresent=True, DCChargingPower=90.0, DCChargingEnergyIn=20.0),
        msg(at(10, 20), **UNPLUGGED, ACChargingEnergyIn=0.0),
        msg(at(10, 40), vin=other, **UNPLUGGED, ACChargingEnergyIn=1.5, DCChargingEnergyIn=7.0),
        msg(at(11), vin=other, **UNPLUGGED, DCChargingEnergyIn=7.0),
    ).with_columns(provider=pl.lit("tesla"))
    frame = clean_frame(rows, {"tesla": TESLA}, day=DAY).frame.collect()
    # the other car has no session kind yet: the AC counter, else the DC one
    assert values(frame, "vin") == [VIN, VIN, other, other]
    assert values(frame, "energy_added_kwh") == [20.0, 20.0, 1.5, 1.5]


def test_a_new_session_reads_its_own_counter() -> None:
    frame, _, _ = tesla(
        msg(at(9), FastChargerPresent=True, DCChargingPower=90.0, DCChargingEnergyIn=20.0),
        msg(at(9, 20), **UNPLUGGED, ACChargingEnergyIn=0.0),
        msg(
            at(18),
            FastChargerPresent=False,
            DetailedChargeState="DetailedChargeStateCharging",
            ACChargingEnergyIn=1.1,
            DCChargingEnergyIn=20.0,
        ),
        msg(at(19), **UNPLUGGED, ACChargingEnergyIn=6.6, DCChargingEnergyIn=20.0),
    )
    assert values(frame, "energy_added_kwh") == [20.0, 20.0, 1.1, 6.6]


def test_fleet_api_power_fills_in_where_telemetry_is_silent() -> None:
    frame, _, _ = tesla(
        msg(
            at(9), **{"charge_state.charger_power": 11, "charge_state.fast_charger_present": False}
        ),
    )
    assert values(frame, "charging_power_kw") == [11.0]


def test_kind_keys_are_those_of_the_tesla_mapping() -> None:
    keys = {m.key for m in TESLA}
    for column, sources in CHARGER_KIND_SOURCES.items():
        assert set(sources) <= keys
        assert {m.column for m in TESLA if m.key in sources} == {column}


def test_preference_follows_the_mapping_order() -> None:
    rows = day_of(msg(at(10), a=1.0, b=2.0), msg(at(10, 1), b=3.0, soc=50.0))
    first_a = (SignalMap("a", "range_km"), SignalMap("b", "range_km"), SignalMap("soc", "soc_pct"))
    first_b = (first_a[1], first_a[0], first_a[2])
    a_wins = clean_frame(rows, first_a, day=DAY).frame.collect()
    b_wins = clean_frame(rows, first_b, day=DAY).frame.collect()
    assert values(a_wins, "range_km") == [1.0, 1.0]
    assert values(b_wins, "range_km") == [2.0, 3.0]


def test_an_instant_with_only_superseded_values_is_not_a_row() -> None:
    frame, _, superseded = tesla(
        msg(at(10), Soc=60.0), msg(at(10, 5), **{"charge_state.battery_level": 59})
    )
    assert (values(frame, "ts"), superseded) == ([at(10)], 1)
