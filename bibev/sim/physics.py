"""Physics of one vehicle, day by day: idle, driving and charging that tile its timeline.

``VehicleSim.step(day)`` plays the day's plan from where the vehicle stands (a charge or a
trip may run past midnight; the next step starts from its end) and returns the true sessions
it finished and the awake seconds as a ``Trace``. The vehicle sleeps (no samples) while idle,
except for a few minutes after arriving or charging, before leaving, and brief wake-ups.

Energy bookkeeping is exact: every session's battery energy equals ΔSoC × true capacity of the
day. The BMS error shapes when the car stops charging (it stops when *its* SoC reaches the
limit), so the truth is the same with or without the sensor mess.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np

from bibev.sim import environment as env
from bibev.sim.charge import Charger, charge_curve
from bibev.sim.drive import speed_profile, trip_power_kw
from bibev.sim.fleet import Vehicle, bms_bias_pct
from bibev.sim.plan import Outing, day_start_utc, local_time, plan_day
from bibev.sim.rng import Purpose, stream
from bibev.sim.session import DayResult, Session, State, merge_intervals
from bibev.sim.trace import (
    CHARGING,
    COMPLETE,
    DISCONNECTED,
    DRIVE,
    NO_POWER,
    PARK,
    STARTING,
    STOPPED,
    Trace,
    TraceBuilder,
)

AWAKE_KW = 0.25  # electronics while awake and parked
ASLEEP_KW = 0.02
RESERVE_PCT = 12.0  # a driver looks for a fast charger before the SoC falls below this
OFFLINE_CHARGE_P = 0.08  # a charge hidden in a connectivity gap
OFFLINE_TRIP_P = 0.01
TUNNEL_P = 0.04  # a trip with a short loss of network


class VehicleSim:
    """The state of one vehicle between days, and the rules that move it."""

    def __init__(self, seed: int, vehicle: Vehicle, start: date, end: int) -> None:
        self.seed, self.v, self.end = seed, vehicle, end
        t0 = day_start_utc(start)
        self.weather = env.Weather(seed, vehicle, t0 // 86400, end // 86400 + 1)
        temp = self.weather.at(t0)
        self.state = State(
            t0, vehicle.start_soc_pct, vehicle.odometer_km, vehicle.home, "home", temp
        )
        self.gaps: list[tuple[int, int]] = []
        self.next_offset = 0  # of this vehicle's next message on its stream
        self.capacity = vehicle.nominal_kwh
        self.done = False
        self._plans: dict[date, list[Outing]] = {}
        self.motorway_kmh = 110.0 if vehicle.city.utc_offset_h < 0 else 125.0

    # -- the day ------------------------------------------------------------------------

    def plan(self, day: date) -> list[Outing]:
        if day not in self._plans:
            self._plans[day] = plan_day(self.seed, self.v, day)
            self._plans.pop(day - timedelta(days=3), None)
        return self._plans[day]

    def step(self, day: date) -> DayResult:
        self.rng = stream(self.seed, self.v.index, Purpose.PHYSICS, day.toordinal())
        self.builder = TraceBuilder()
        self.sessions: list[Session] = []
        odometer = self.state.odometer_km
        self.capacity, soh = self.v.capacity_kwh(odometer, day)
        for outing in self.plan(day):
            if self.done or outing.depart >= self.end:
                break
            self._outing(outing)
        if not self.done and day_start_utc(day) + 86400 >= self.end:
            self._close_idle(self.end)
        self._flush_tail()
        trace = self.builder.build()
        self.builder = TraceBuilder()  # the day's samples belong to the result, not the vehicle
        self._mark_offline(trace)
        return DayResult(self.sessions, trace, odometer, self.capacity, soh)

    def _mark_offline(self, trace: Trace) -> None:
        first = int(trace["t"][0]) if len(trace) else self.state.t
        self.gaps = [g for g in self.gaps if g[1] > first - 86400]
        online = np.ones(len(trace), dtype=bool)
        for a, b in self.gaps:
            online &= ~((trace["t"] >= a) & (trace["t"] < b))
        trace.columns["online"] = online
        for s in self.sessions:
            s.offline = any(a <= s.start and s.end <= b for a, b in self.gaps)

    def _outing(self, o: Outing) -> None:
        st = self.state
        self._leave(max(o.depart, st.t + 120))
        self._drive(o.destination, o.distance_km, o.place)
        if self.done:
            return
        back = max(st.t + o.dwell_s, o.back_after) + int(self.rng.integers(0, 600))
        self._at_destination(o.place, back)
        if self.done:
            return
        self._leave(max(back, st.t + 60))
        self._drive(self.v.home, o.distance_km * float(self.rng.uniform(0.97, 1.05)), "home")
        if not self.done:
            self._at_home()

    def next_departure(self, after: int) -> int:
        day = date.fromordinal(date(1970, 1, 1).toordinal() + after // 86400) - timedelta(days=1)
        for k in range(9):
            for o in self.plan(day + timedelta(days=k)):
                if o.depart > after + 600:
                    return o.depart
        return after + 9 * 86400

    # -- idle ---------------------------------------------------------------------------

    def _close_idle(
        self,
        end: int,
        pre_s: int = 0,
        pre: tuple[int, int] | None = None,
        switch: tuple[int, int, int] | None = None,
    ) -> None:
        """End the open idle at ``end``. The car is awake ``pre_s`` seconds before, in
        charge phase and plug ``pre``; ``switch`` = (time, phase, plug) changes them before."""
        st, rng = self.state, self.rng
        end = min(end, self.end)
        start, duration = st.t, end - st.t
        if duration <= 0:
            return
        intervals = [(start, start + min(st.tail_s, duration)), (end - min(pre_s, duration), end)]
        if duration > 5 * 3600:
            for _ in range(int(rng.poisson(duration / (6 * 3600)))):
                a = start + int(rng.integers(st.tail_s, max(st.tail_s + 1, duration)))
                intervals.append((a, min(end, a + int(rng.integers(60, 240)))))
        awake = merge_intervals(intervals)
        awake_s = sum(b - a for a, b in awake)
        used_kwh = (awake_s * AWAKE_KW + (duration - awake_s) * ASLEEP_KW) / 3600
        before = 0
        for a, b in awake:
            first = max(a, start + st.tail_done)
            if first < b:
                self._idle_chunk(first, b, before + first - a, end, pre_s, pre, switch)
            before += b - a
        self._record("idle", end, st.soc - used_kwh / self.capacity * 100, -used_kwh)
        st.pack_c = float(
            env.relax(np.array([end]), start, st.pack_c, self._outside(end), 3 * 3600.0)[0]
        )
        st.soc, st.t, st.tail_s, st.tail_done = st.soc - used_kwh / self.capacity * 100, end, 0, 0
        if switch is not None:
            st.phase, st.plug = switch[1], switch[2]
        if pre is not None:
            st.phase, st.plug = pre
        self.done = end >= self.end

    def _idle_chunk(
        self,
        a: int,
        b: int,
        awake_before: int,
        end: int,
        pre_s: int,
        pre: tuple[int, int] | None,
        switch: tuple[int, int, int] | None,
    ) -> None:
        """Awake seconds ``a … b-1`` of the open idle; the SoC drains at the awake rate while
        awake and at the sleeping rate otherwise (``awake_before``: awake seconds before ``a``)."""
        st = self.state
        t = np.arange(a, b)
        awake = awake_before + (t - a)
        used_kwh = (ASLEEP_KW * (t - st.t) + (AWAKE_KW - ASLEEP_KW) * awake) / 3600
        phase = np.full(t.size, st.phase, np.int8)
        plug = np.full(t.size, st.plug, np.int8)
        if switch is not None:
            phase[t >= switch[0]], plug[t >= switch[0]] = switch[1], switch[2]
        if pre is not None:
            phase[t >= end - pre_s], plug[t >= end - pre_s] = pre
        self._add(
            a,
            b - a,
            soc=st.soc - used_kwh / self.capacity * 100,
            speed_kmh=0.0,
            gear=PARK,
            phase=phase,
            plug=plug,
            battery_kw=-AWAKE_KW,
            wall_kw=0.0,
            pack_c=env.relax(t, st.t, st.pack_c, self._outside(a), 3 * 3600.0),
        )

    def _flush_tail(self) -> None:
        """Write the open idle's first awake minutes into today's trace (they happen today),
        so that a day's messages never arrive with the next day's."""
        st = self.state
        if self.done or st.tail_s <= st.tail_done:
            return
        until = min(st.t + st.tail_s, self.next_departure(st.t) - 420, self.end)
        if until > st.t + st.tail_done:
            self._idle_chunk(st.t + st.tail_done, until, st.tail_done, until + 1, 0, None, None)
        st.tail_s = st.tail_done = max(st.tail_done, until - st.t)

    def _leave(self, depart: int) -> None:
        pre_s = int(self.rng.integers(60, 420))
        self._close_idle(depart, pre_s, pre=(DISCONNECTED, 0))

    def _open_idle(self, tail_s: int) -> None:
        self.state.tail_s = tail_s

    # -- driving ------------------------------------------------------------------------

    def _drive(self, destination: tuple[float, float], km: float, place: str) -> None:
        st = self.state
        origin, done_km, stops = st.position, 0.0, 0
        while km - done_km > 0.05 and not self.done:
            speed = speed_profile(self.rng, km - done_km, self.motorway_kmh)
            power, _ = trip_power_kw(speed, self._outside(st.t), self.v.model.base_wh_km)
            soc = st.soc - np.cumsum(power) / 36.0 / self.capacity
            if soc.min() < 5.0 and stops < 4:
                cut = int(np.argmax(soc < RESERVE_PCT))
                if cut >= 120:
                    ramp = np.linspace(speed[cut], 0.0, int(speed[cut] / 9) + 2)
                    speed = np.concatenate([speed[:cut], ramp])
                    power, _ = trip_power_kw(speed, self._outside(st.t), self.v.model.base_wh_km)
                    done_km += self._drive_part(speed, power, origin, destination, km, done_km)
                stops += 1
                self._open_idle(int(self.rng.integers(600, 1200)))
                self._fast_charge(float(self.rng.uniform(70, 88)), st.t + 3600, "user")
                self._leave(st.t + int(self.rng.integers(60, 300)))
                continue
            done_km += self._drive_part(speed, power, origin, destination, km, done_km)
            break
        st.place = place
        self._open_idle(int(self.rng.integers(300, 1200)))

    def _drive_part(
        self,
        speed: np.ndarray,
        power: np.ndarray,
        origin: tuple[float, float],
        destination: tuple[float, float],
        total_km: float,
        done_km: float,
    ) -> float:
        st = self.state
        n = min(speed.size, self.end - st.t)
        if n <= 0:
            self.done = True
            return 0.0
        speed, power, t0 = speed[:n], power[:n], st.t
        used = np.concatenate([[0.0], np.cumsum(power)]) / 3600  # kWh before each second
        km = np.concatenate([[0.0], np.cumsum(speed)]) / 3600
        frac = np.clip((done_km + km) / max(total_km, 1e-6), 0, 1)
        lat = origin[0] + (destination[0] - origin[0]) * frac
        lon = origin[1] + (destination[1] - origin[1]) * frac
        wiggle = (
            0.08
            * np.sin(np.pi * frac)
            * np.hypot(destination[0] - origin[0], destination[1] - origin[1])
        )
        t = np.arange(t0, t0 + n)
        outside = self._outside(t0)
        self._add(
            t0,
            n,
            soc=st.soc - used[:-1] / self.capacity * 100,
            odometer_km=st.odometer_km + km[:-1],
            speed_kmh=speed,
            gear=DRIVE,
            phase=DISCONNECTED,
            plug=0,
            battery_kw=-power,
            wall_kw=0.0,
            pack_c=env.relax(t, t0, st.pack_c, outside + 10.0, 1800.0),
            latitude=(lat + wiggle * (destination[1] - origin[1]) * 0.5)[:-1],
            longitude=(lon - wiggle * (destination[0] - origin[0]) * 0.5)[:-1],
        )
        self._trip_gaps(t0, n)
        soc_end = st.soc - used[-1] / self.capacity * 100
        odo_start = st.odometer_km
        st.odometer_km += float(km[-1])
        st.position = (float(lat[-1]), float(lon[-1]))
        st.pack_c = float(env.relax(np.array([t0 + n]), t0, st.pack_c, outside + 10.0, 1800.0)[0])
        self._record(
            "driving",
            t0 + n,
            soc_end,
            -float(used[-1]),
            odometer_start_km=odo_start,
            max_power_kw=float(power.max()),
            end_reason="arrived" if n == speed.size else "window",
        )
        st.soc = soc_end
        self.done = st.t >= self.end
        return float(km[-1])

    def _trip_gaps(self, t0: int, n: int) -> None:
        u = self.rng.random(3)
        if u[0] < OFFLINE_TRIP_P:
            self.gaps.append((t0 - 600, t0 + n + 600))
        elif u[1] < TUNNEL_P and n > 300:
            a = t0 + int(u[2] * (n - 120))
            self.gaps.append((a, a + int(self.rng.integers(60, 480))))

    # -- charging -----------------------------------------------------------------------

    def _at_destination(self, place: str, back: int) -> None:
        st, v, u = self.state, self.v, float(self.rng.random())
        if (v.home_charger_kw == 0 and st.soc < 30 and u < 0.8) or (place == "far" and st.soc < 50):
            self._fast_charge(float(self.rng.uniform(75, 90)), back - 300, "departure")
        elif place == "work" and v.work_charger and st.soc < 75:
            self._slow_charge(v.model.max_ac_kw, None, back - 600, "departure")
        elif place == "shop" and u < (0.5 if v.home_charger_kw == 0 else 0.1):
            kw = min(22.0, v.model.max_ac_kw)
            self._slow_charge(kw, None, back - 300, "dwell")

    def _at_home(self) -> None:
        st, v, rng = self.state, self.v, self.rng
        if v.home_charger_kw > 0 and (st.soc < v.plug_below_pct or rng.random() < v.plug_anyway):
            leave = self.next_departure(st.t) - int(rng.integers(120, 900))
            reason = "departure"
            if rng.random() < 0.06:
                leave, reason = min(leave, st.t + int(rng.integers(1200, 4 * 3600))), "user"
            start = None
            if v.scheduled_hour is not None:
                start = self._next_local_hour(v.scheduled_hour, st.t + 900)
            self._slow_charge(v.home_charger_kw, None, leave, reason, start)
        elif v.home_charger_kw == 0 and st.soc < 30 and rng.random() < 0.8:
            self._fast_charge(float(rng.uniform(75, 90)), st.t + 5400, "user")

    def _next_local_hour(self, hour: float, after: int) -> int:
        local = after + self.v.city.utc_offset_h * 3600
        day = date.fromordinal(date(1970, 1, 1).toordinal() + local // 86400)
        at = local_time(self.v, day, hour)
        return at if at >= after else at + 86400

    def _limit_target(self, at: int) -> float:
        """The true SoC at which the BMS reads the charge limit."""
        bias = float(bms_bias_pct(self.v, np.array([at]))[0])
        return min(100.0, self.v.charge_limit_pct - bias)

    def _slow_charge(
        self,
        wall_kw: float,
        target: float | None,
        leave: int,
        reason: str,
        start: int | None = None,
    ) -> None:
        """An AC charge; ``target`` None: until the BMS reads the charge limit."""
        charger = Charger("ac", wall_kw, wall_kw, self.v.ac_efficiency)
        self._charge(charger, target, leave, reason, int(self.rng.integers(60, 900)), start)

    def _fast_charge(self, target: float, leave: int, reason: str) -> None:
        station = float(self.rng.choice([50.0, 150.0, 250.0], p=[0.2, 0.5, 0.3]))
        charger = Charger("dc", self.v.model.max_dc_kw, station, self.v.dc_efficiency)
        leave = min(leave, self.state.t + int(self.rng.integers(20, 50)) * 60)
        self._charge(charger, target, leave, reason, int(self.rng.integers(60, 240)), None)

    def _charge(
        self,
        charger: Charger,
        target: float | None,
        leave: int,
        reason: str,
        plug_delay: int,
        scheduled: int | None,
    ) -> None:
        st, rng = self.state, self.rng
        kind = 1 if charger.kind == "ac" else 2
        plug_at = st.t + plug_delay
        starting_s = int(rng.integers(5, 25))
        start = max(scheduled or 0, plug_at + starting_s)
        stop = min(leave, self.end)
        reached_reason = "limit" if target is None else "target"
        if target is None:
            target = self._limit_target(start)
        if start >= stop - 120 or st.soc >= target - 0.5:
            return
        switch = (plug_at, NO_POWER, kind) if start - plug_at > starting_s else None
        self._close_idle(start, starting_s, pre=(STARTING, kind), switch=switch)
        if self.done:
            return
        ramp = int(rng.integers(10, 60)) if kind == 1 else int(rng.integers(30, 90))
        curve = charge_curve(charger, self.capacity, st.soc, target, stop - start, ramp)
        self._add_charge(charger, kind, curve.soc, curve.battery_kw)
        added = (curve.soc_end - st.soc) / 100 * self.capacity
        end_reason = reached_reason if curve.reached else ("window" if stop == self.end else reason)
        self._record(
            "charging",
            start + curve.duration_s,
            curve.soc_end,
            added,
            charger_kind=charger.kind,
            wall_energy_kwh=added / charger.efficiency,
            max_power_kw=float(curve.battery_kw.max()),
            end_reason=end_reason,
        )
        if kind == 1:
            st.energy_ac += added
        else:
            st.energy_dc += added
        if rng.random() < OFFLINE_CHARGE_P:
            self.gaps.append((plug_at - 1200, st.t + 1800))
        st.soc, st.phase = curve.soc_end, COMPLETE if curve.reached else STOPPED
        self.done = st.t >= self.end
        self._open_idle(int(rng.integers(120, 900)))

    def _add_charge(
        self, charger: Charger, kind: int, soc: np.ndarray, battery_kw: np.ndarray
    ) -> None:
        st = self.state
        counter = np.concatenate([[0.0], np.cumsum(battery_kw)[:-1]]) / 3600
        if kind == 1:
            st.energy_ac = 0.0
        else:
            st.energy_dc = 0.0
        t = np.arange(st.t, st.t + soc.size)
        target_c = self._outside(st.t) + (4.0 if kind == 1 else 12.0 + battery_kw.max() / 25.0)
        self._add(
            st.t,
            soc.size,
            soc=soc,
            speed_kmh=0.0,
            gear=PARK,
            phase=CHARGING,
            plug=kind,
            battery_kw=battery_kw,
            wall_kw=charger.wall_kw(battery_kw),
            energy_ac_kwh=counter if kind == 1 else st.energy_ac,
            energy_dc_kwh=counter if kind == 2 else st.energy_dc,
            pack_c=env.relax(t, st.t, st.pack_c, target_c, 1500.0 if kind == 2 else 3600.0),
        )
        st.pack_c = float(env.relax(np.array([t[-1] + 1]), st.t, st.pack_c, target_c, 1800.0)[0])

    # -- bookkeeping --------------------------------------------------------------------

    def _outside_series(self, t0: int, n: int) -> np.ndarray:
        """Outside temperature each second (computed hourly and interpolated)."""
        grid = np.arange(t0, t0 + n + 3600, 3600)
        return np.interp(np.arange(t0, t0 + n), grid, self.weather.outside_c(grid))

    def _outside(self, t: int) -> float:
        return self.weather.at(t)

    def _add(self, t0: int, n: int, **values: Any) -> None:
        st = self.state
        defaults = {
            "odometer_km": st.odometer_km,
            "energy_ac_kwh": st.energy_ac,
            "energy_dc_kwh": st.energy_dc,
            "latitude": st.position[0],
            "longitude": st.position[1],
            "charge_limit_pct": self.v.charge_limit_pct,
            "outside_c": self._outside_series(t0, n),
        }
        self.builder.add(t0, n, **{**defaults, **values})

    def _record(self, kind: str, end: int, soc_end: float, energy_kwh: float, **extra: Any) -> None:
        st = self.state
        session = Session(
            kind,
            st.t,
            end,
            st.soc,
            soc_end,
            energy_kwh,
            odometer_start_km=extra.pop("odometer_start_km", st.odometer_km),
            odometer_end_km=st.odometer_km,
            **extra,
        )
        self.sessions.append(session)
        st.t = end
