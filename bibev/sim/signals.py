"""What the car's sensors report, derived from the true trace (canonical units).

``Signals.at(name, rows)`` computes a signal at some samples of a batch of vehicles (only the
rows a format samples, which is a small share of the awake seconds). With ``mess`` on, the BMS
SoC carries its drifting bias and voltage, current, power and temperatures carry noise; with
it off, every signal is the true value (rounding happens on the wire). Noise is hashed from
(vehicle, second, signal), so it does not depend on how the fleet was cut into batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bibev.sim.fleet import Vehicle
from bibev.sim.rng import Purpose, normal
from bibev.sim.trace import CHARGING, DRIVE, Trace

#: Standard deviations of sensor noise (mess on).
NOISE_SD = {
    "pack_voltage_v": 0.4,
    "pack_current_a": 0.6,
    "power": 0.01,  # relative
    "t_min": 0.25,
    "t_max": 0.25,
    "outside": 0.3,
    "mains": 1.0,
}
_NOISE_KEYS = {name: i for i, name in enumerate(NOISE_SD)}
R_PACK_OHM = 0.09
CAR_TYPES = ("Unknown", "ModelS", "ModelX", "Model3", "ModelY")


@dataclass(frozen=True)
class VehicleDay:
    """Per-vehicle constants of one simulated day."""

    vehicle: Vehicle
    capacity_kwh: float
    soh_pct: float


def open_circuit_v(soc: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Pack open-circuit voltage of an NMC pack: about 3.26 V/cell empty, 4.18 V full."""
    s = np.clip(soc, 0, 100) / 100.0
    return (3.35 + 0.62 * s + 0.21 * s**3 - 0.09 * np.exp(-s * 12.0)) * cells


class Signals:
    """Sensor signals of a batch: ``signals.at("soc_pct", rows)``."""

    def __init__(
        self,
        trace: Trace,
        vehicle_pos: np.ndarray,
        days: Sequence[VehicleDay],
        *,
        seed: int,
        mess: bool,
    ) -> None:
        self.trace, self.pos, self.days, self.seed, self.mess = trace, vehicle_pos, days, seed, mess
        self.vehicle_index = np.array([d.vehicle.index for d in days], dtype=np.int64)
        v = [d.vehicle for d in days]
        self._const = {
            "capacity_kwh": np.array([d.capacity_kwh for d in days]),
            "nominal_kwh": np.array([x.model.nominal_kwh for x in v]),
            "rated_wh_km": np.array([0.95 * x.model.base_wh_km for x in v]),
            "oem_soh_pct": np.array([d.soh_pct + d.vehicle.oem_soh_offset for d in days]),
            "cells": np.array([x.model.cells_series for x in v], dtype=float),
            "mains_v": np.array([230.0 if x.city.utc_offset_h >= 0 else 240.0 for x in v]),
            "car_type": np.array([CAR_TYPES.index(x.model.car_type) for x in v], dtype=float),
            "string_values": np.array([x.string_values for x in v], dtype=bool),
            **{f"bias_{i}": np.array([x.bms_bias[i] for x in v], dtype=float) for i in range(4)},
        }

    def index_at(self, rows: np.ndarray) -> np.ndarray:
        """Global vehicle index of each row."""
        return self.vehicle_index[self.pos[rows]]

    def const(self, name: str, rows: np.ndarray) -> np.ndarray:
        return self._const[name][self.pos[rows]]

    def at(self, name: str, rows: np.ndarray) -> np.ndarray:
        if name in self.trace.columns:
            return self.trace[name][rows]
        return getattr(self, f"_{name}")(rows)  # type: ignore[no-any-return]

    def _noise(self, what: str, rows: np.ndarray) -> np.ndarray | float:
        if not self.mess:
            return 0.0
        sd = NOISE_SD[what]
        return sd * normal(
            self.seed, Purpose.NOISE, self.index_at(rows), self.trace["t"][rows], _NOISE_KEYS[what]
        )

    # -- state of charge ----------------------------------------------------------------

    def _soc_pct(self, r: np.ndarray) -> np.ndarray:
        soc = self.trace["soc"][r]
        if not self.mess:
            return soc
        t = self.trace["t"][r]
        offset, amplitude, period_days, phase = (self.const(f"bias_{i}", r) for i in range(4))
        bias = offset + amplitude * np.sin(2 * np.pi * t / (period_days * 86400.0) + phase)
        return np.clip(soc + bias, 0.0, 100.0)

    def _displayed_soc_pct(self, r: np.ndarray) -> np.ndarray:
        return np.round(self._soc_pct(r))

    def _capacity_kwh(self, r: np.ndarray) -> np.ndarray:
        return self.const("capacity_kwh", r)

    def _energy_remaining_kwh(self, r: np.ndarray) -> np.ndarray:
        return self._soc_pct(r) / 100.0 * self.const("capacity_kwh", r)

    def _range_km(self, r: np.ndarray) -> np.ndarray:
        return self._energy_remaining_kwh(r) * 1000.0 / self.const("rated_wh_km", r)

    def _oem_soh_pct(self, r: np.ndarray) -> np.ndarray:
        return self.const("oem_soh_pct", r)

    # -- charging -----------------------------------------------------------------------

    def _charging(self, r: np.ndarray) -> np.ndarray:
        return self.trace["phase"][r] == CHARGING

    def _charging_power_kw(self, r: np.ndarray) -> np.ndarray:
        power = np.where(self._charging(r), self.trace["wall_kw"][r], 0.0)
        return np.maximum(0.0, power * (1.0 + self._noise("power", r)))

    def _ac_power_kw(self, r: np.ndarray) -> np.ndarray:
        return np.where(self.trace["plug"][r] == 1, self._charging_power_kw(r), 0.0)

    def _dc_power_kw(self, r: np.ndarray) -> np.ndarray:
        return np.where(self.trace["plug"][r] == 2, self._charging_power_kw(r), 0.0)

    def _energy_added_kwh(self, r: np.ndarray) -> np.ndarray:
        tr = self.trace
        return np.where(tr["plug"][r] == 2, tr["energy_dc_kwh"][r], tr["energy_ac_kwh"][r])

    def _charger_kind(self, r: np.ndarray) -> np.ndarray:
        return self.trace["plug"][r]

    def _fast_charger_present(self, r: np.ndarray) -> np.ndarray:
        return (self.trace["plug"][r] == 2).astype(np.int8)

    def _plugged(self, r: np.ndarray) -> np.ndarray:
        return (self.trace["plug"][r] > 0).astype(np.int8)

    def _charger_phases(self, r: np.ndarray) -> np.ndarray:
        ac = self.trace["plug"][r] == 1
        return np.where(ac & (self.trace["wall_kw"][r] > 7.5), 3, np.where(ac, 1, 0))

    def _charger_voltage_v(self, r: np.ndarray) -> np.ndarray:
        plug, charging = self.trace["plug"][r], self._charging(r)
        mains = self.const("mains_v", r) + self._noise("mains", r)
        return np.where(
            charging & (plug == 1), mains, np.where(charging, self._pack_voltage_v(r), 0.0)
        )

    # -- pack ---------------------------------------------------------------------------

    def _pack_voltage_v(self, r: np.ndarray) -> np.ndarray:
        ocv = open_circuit_v(self.trace["soc"][r], self.const("cells", r))
        current = self.trace["battery_kw"][r] * 1000.0 / ocv
        return ocv + current * R_PACK_OHM + self._noise("pack_voltage_v", r)

    def _pack_current_a(self, r: np.ndarray) -> np.ndarray:
        current = self.trace["battery_kw"][r] * 1000.0 / self._pack_voltage_v(r)
        return current + self._noise("pack_current_a", r)

    def _battery_temp_min_c(self, r: np.ndarray) -> np.ndarray:
        load = np.abs(self.trace["battery_kw"][r])
        return self.trace["pack_c"][r] - 0.8 - 0.01 * load + self._noise("t_min", r)

    def _battery_temp_max_c(self, r: np.ndarray) -> np.ndarray:
        load = np.abs(self.trace["battery_kw"][r])
        return self.trace["pack_c"][r] + 1.2 + 0.03 * load + self._noise("t_max", r)

    def _outside_temp_c(self, r: np.ndarray) -> np.ndarray:
        return self.trace["outside_c"][r] + self._noise("outside", r)

    def _bms_state(self, r: np.ndarray) -> np.ndarray:
        return np.where(self.trace["gear"][r] == DRIVE, 1, np.where(self._charging(r), 2, 0))

    # -- misc ---------------------------------------------------------------------------

    def _epoch_ms(self, r: np.ndarray) -> np.ndarray:
        return self.trace["t"][r].astype(np.float64) * 1000.0

    def _drive_power_kw(self, r: np.ndarray) -> np.ndarray:
        return -self.trace["battery_kw"][r]

    def _car_type(self, r: np.ndarray) -> np.ndarray:
        return self.const("car_type", r)

    def _charging_state(self, r: np.ndarray) -> np.ndarray:
        return self.trace["phase"][r]

    def _pack_temp_c(self, r: np.ndarray) -> np.ndarray:
        return self.trace["pack_c"][r] + self._noise("t_max", r)

    def _nominal_wh(self, r: np.ndarray) -> np.ndarray:
        return self.const("nominal_kwh", r) * 1000.0

    def _usable_kwh(self, r: np.ndarray) -> np.ndarray:
        """The BMS's own estimate of the usable energy at 100 % (close to the truth)."""
        return self.const("capacity_kwh", r) * (1.0 + 0.01 * self.const("bias_0", r) / 2.0)

    def _charge_rate_kmh(self, r: np.ndarray) -> np.ndarray:
        """Range gained per hour of charging (Stellantis' charging rate)."""
        battery = np.where(self._charging(r), np.maximum(self.trace["battery_kw"][r], 0.0), 0.0)
        return battery * 1000.0 / self.const("rated_wh_km", r)
