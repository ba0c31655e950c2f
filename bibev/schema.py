"""Column schemas of the compressed and clean layers (see docs/data-model.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from bibev.providers.base import FlatRow

UTC_US = pl.Datetime("us", "UTC")

COMPRESSED_SCHEMA: dict[str, pl.DataType] = {
    "vin": pl.String(),
    "provider": pl.String(),
    "ts": UTC_US,
    "received_at": UTC_US,
    "key": pl.String(),
    "value_f64": pl.Float64(),
    "value_i64": pl.Int64(),
    "value_str": pl.String(),
    "value_bool": pl.Boolean(),
    "unit": pl.String(),
    "message_id": pl.String(),
    "invalid": pl.Boolean(),
}

CHARGING_STATES = ("disconnected", "plugged", "charging", "complete", "stopped", "error", "unknown")
CHARGER_KINDS = ("ac", "dc", "none")
GEARS = ("P", "R", "N", "D")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType
    unit: str
    description: str


CLEAN_COLUMNS: tuple[Column, ...] = (
    Column("vin", pl.String(), "", "ISO 3779 vehicle identification number"),
    Column("ts", UTC_US, "UTC", "instant of the observation (from the message)"),
    Column("soc_pct", pl.Float64(), "%", "battery state of charge as reported by the BMS, 0–100"),
    Column("odometer_km", pl.Float64(), "km", "odometer"),
    Column("speed_kmh", pl.Float64(), "km/h", "vehicle speed"),
    Column("gear", pl.Enum(GEARS), "", "P, R, N or D"),
    Column("charging_state", pl.Enum(CHARGING_STATES), "", "canonical charging state"),
    Column("charger_kind", pl.Enum(CHARGER_KINDS), "", "ac, dc or none"),
    Column("charging_power_kw", pl.Float64(), "kW", "charging power (positive into the battery)"),
    Column("energy_added_kwh", pl.Float64(), "kWh", "battery-side energy added this session"),
    Column("pack_voltage_v", pl.Float64(), "V", "high-voltage pack voltage"),
    Column("pack_current_a", pl.Float64(), "A", "pack current"),
    Column("energy_remaining_kwh", pl.Float64(), "kWh", "energy left in the pack"),
    Column("battery_temp_min_c", pl.Float64(), "°C", "lowest module temperature"),
    Column("battery_temp_max_c", pl.Float64(), "°C", "highest module temperature"),
    Column("outside_temp_c", pl.Float64(), "°C", "outside air temperature"),
    Column("range_km", pl.Float64(), "km", "estimated remaining range"),
    Column("latitude", pl.Float64(), "°", "WGS84 latitude"),
    Column("longitude", pl.Float64(), "°", "WGS84 longitude"),
    Column("charge_limit_pct", pl.Float64(), "%", "charge limit set by the driver"),
    Column("oem_soh_pct", pl.Float64(), "%", "state of health as reported by the manufacturer"),
)

CLEAN_SCHEMA: dict[str, pl.DataType] = {c.name: c.dtype for c in CLEAN_COLUMNS}
SIGNAL_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in CLEAN_COLUMNS if c.name not in ("vin", "ts")
)


def rows_to_frame(
    rows: Iterable[FlatRow], *, provider: str, received_at: datetime | None = None
) -> pl.DataFrame:
    """Spread adapter rows over the typed compressed columns.

    A value keeps its type: ``True`` goes to ``value_bool``, an ``int`` to ``value_i64``, a
    ``float`` to ``value_f64`` and a string to ``value_str`` (string-typed numbers are parsed
    later, by the mapping, so the compressed layer keeps exactly what was sent).
    """
    cols: dict[str, list] = {name: [] for name in COMPRESSED_SCHEMA}
    for row in rows:
        value = row.value
        cols["vin"].append(row.vin)
        cols["provider"].append(provider)
        cols["ts"].append(row.ts)
        cols["received_at"].append(received_at)
        cols["key"].append(row.key)
        cols["value_bool"].append(value if isinstance(value, bool) else None)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        cols["value_i64"].append(value if is_int else None)
        cols["value_f64"].append(value if isinstance(value, float) else None)
        cols["value_str"].append(value if isinstance(value, str) else None)
        cols["unit"].append(row.unit)
        cols["message_id"].append(row.message_id)
        cols["invalid"].append(row.invalid)
    return pl.DataFrame(cols, schema=COMPRESSED_SCHEMA)
