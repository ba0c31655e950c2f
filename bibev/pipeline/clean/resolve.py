"""Which source wins when several provider keys feed one canonical column.

Two rules, both driven by tables rather than provider code:

1. **Preference.** A mapping lists the keys of a column in order of preference (Tesla: ``Soc``
   before ``charge_state.battery_level``, ``DetailedChargeState`` before ``ChargeState``,
   ``FastChargerType`` before ``FastChargerPresent``). An observation of a less preferred key
   is ``superseded`` while a more preferred key has a known value that is still current (at
   most the column's ``max_age`` old): the fallback only fills in where the preferred key is
   silent. At one instant one observation per column is kept, known values first, then by
   preference.
2. **Charger kind.** Some keys speak for one kind of charger only, and the idle one reads 0
   (``CHARGER_KIND_SOURCES``). Each becomes its own sub-column (``charging_power_kw:dc``) and
   ``resolve_rows`` picks per instant, once the charger kind is known: the key of that kind;
   for power the larger of the two when the kind is unknown or none. Energy counters are per
   session: each holds its last session's total until a new session starts it from zero, so
   the counter that speaks is that of the session's kind: DC during DC sessions (so
   ``ACChargingEnergyIn`` is ignored then), the AC key, else the DC key, during AC sessions,
   and, while no session is known to run (kind none or unknown), the counter of the vehicle's
   last session kind seen (``ac``/``dc`` carried forward), silent when that counter is; before
   any session kind is seen, the AC key, else the DC key. Keys of no particular kind (Fleet
   API ``charger_power``) fill in where the kind keys are silent.

The charger kind itself is completed per instant: a disconnected car has kind ``none``;
``none`` while charging means AC (Tesla ``FastChargerPresent`` false); an unknown kind while
one kind's power is above zero is that kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import polars as pl

from bibev.schema import SIGNAL_COLUMNS

from .reasons import SUPERSEDED, not_first_in_run, reject

#: Keys that speak for one charger kind only, per canonical column.
CHARGER_KIND_SOURCES: dict[str, dict[str, str]] = {
    "charging_power_kw": {"DCChargingPower": "dc", "ACChargingPower": "ac"},
    "energy_added_kwh": {"DCChargingEnergyIn": "dc", "ACChargingEnergyIn": "ac"},
}
KIND_SUBS: tuple[str, ...] = tuple(
    f"{column}:{kind}" for column in CHARGER_KIND_SOURCES for kind in ("ac", "dc")
)
#: Every sub-column of the wide frame: the canonical signals, then the per-kind ones.
SUBS: tuple[str, ...] = (*SIGNAL_COLUMNS, *KIND_SUBS)


def sub_column(column: str, key: str) -> str:
    """The sub-column an observation of ``key`` goes to (``column`` or ``column:kind``)."""
    kind = CHARGER_KIND_SOURCES.get(column, {}).get(key)
    return f"{column}:{kind}" if kind else column


def column_of(sub: str) -> str:
    return sub.split(":", 1)[0]


def _micros(ages: Mapping[str, timedelta]) -> pl.Expr:
    table = {column: age // timedelta(microseconds=1) for column, age in ages.items()}
    return pl.col("column").replace_strict(table, default=None, return_dtype=pl.Int64)


def supersede(
    frame: pl.LazyFrame, *, levels: int, max_age: Mapping[str, timedelta]
) -> pl.LazyFrame:
    """Mark ``superseded`` the observations of less preferred keys (rule 1 of the module doc).

    ``frame`` must be sorted by ``sub, vin, ts`` then known values first, then ``priority``
    (``ORDER``); ``levels`` is the largest number of keys feeding one column.
    """
    usable = pl.col("reason").is_null() & ~pl.col("missing")
    age_limit = _micros(max_age)
    signal = pl.col("_signal")
    newer: pl.Expr = pl.lit(False)
    for level in range(max(levels - 1, 0)):
        # A forward fill within each signal, without grouping: the frame holds each signal in
        # one run of rows, so the last value seen is the signal's own when it was seen on a
        # row of the same run (``_signal`` carried along with it), else there is none yet.
        seen = usable & (pl.col("priority") == level)
        last_seen = pl.when(seen).then(pl.col("ts")).forward_fill()
        own = pl.when(seen).then(signal).forward_fill() == signal
        current = (pl.col("ts") - last_seen).dt.total_microseconds() <= age_limit
        newer = newer | ((pl.col("priority") > level) & (own & current).fill_null(False))
    runs = pl.struct("sub", "vin").rle_id().alias("_signal")
    frame = frame.with_columns(runs).with_columns(reject(SUPERSEDED, newer)).drop("_signal")
    instant = pl.struct("sub", "vin", "ts").rle_id()
    return frame.with_columns(reject(SUPERSEDED, not_first_in_run(instant)))


def _charger_kind() -> pl.Expr:
    state, kind = pl.col("charging_state"), pl.col("charger_kind").cast(pl.String)
    from_power = (
        pl.when(pl.col("charging_power_kw:dc") > 0)
        .then(pl.lit("dc"))
        .when(pl.col("charging_power_kw:ac") > 0)
        .then(pl.lit("ac"))
    )
    kind = pl.coalesce(kind, from_power)
    return (
        pl.when(state == "disconnected")
        .then(pl.lit("none"))
        .when((kind == "none") & (state == "charging"))
        .then(pl.lit("ac"))
        .otherwise(kind)
        .alias("charger_kind")
    )


def _last_session_kind() -> pl.Expr:
    """``_session``: the last ``ac``/``dc`` charger kind of each vehicle at or before each row
    (rows sorted by ``vin, ts``), the kind of the session whose counter holds its total."""
    kind = pl.col("charger_kind")
    session = pl.when(kind.is_in(["ac", "dc"])).then(kind)
    return session.forward_fill().over("vin").alias("_session")


def resolve_rows(wide: pl.LazyFrame) -> pl.LazyFrame:
    """Complete ``charger_kind`` and pick power and energy per instant (rule 2 of the module
    doc); the per-kind sub-columns are dropped. ``wide`` holds every column of ``SUBS`` with
    values already carried forward."""
    wide = wide.with_columns(_charger_kind())
    kind = pl.col("charger_kind")
    power_ac, power_dc = pl.col("charging_power_kw:ac"), pl.col("charging_power_kw:dc")
    power = (
        pl.when(kind == "dc")
        .then(power_dc)
        .when(kind == "ac")
        .then(power_ac)
        .otherwise(pl.max_horizontal(power_ac, power_dc))
    )
    energy_ac, energy_dc = pl.col("energy_added_kwh:ac"), pl.col("energy_added_kwh:dc")
    session = pl.col("_session")
    energy = (
        pl.when(kind == "dc")
        .then(energy_dc)
        .when(kind == "ac")
        .then(pl.coalesce(energy_ac, energy_dc))
        .when(session == "dc")
        .then(energy_dc)
        .when(session == "ac")
        .then(energy_ac)
        .otherwise(pl.coalesce(energy_ac, energy_dc))
    )
    return (
        wide.with_columns(_last_session_kind())
        .with_columns(
            charging_power_kw=pl.coalesce(power, pl.col("charging_power_kw")),
            energy_added_kwh=pl.coalesce(energy, pl.col("energy_added_kwh")),
        )
        .drop([*KIND_SUBS, "_session"])
    )
