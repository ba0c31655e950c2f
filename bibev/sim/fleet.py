"""The simulated fleet: models, VINs, homes and each vehicle's habits and ageing.

Everything about a vehicle is drawn once, from ``stream(seed, index, FLEET)``, so vehicle ``i``
is the same whatever the size of the fleet. Capacity fades with calendar and cycle ageing::

    SoH(km, years) = 100 − A·(1 − exp(−km/τ)) − b·km − c·years

with a fast first A = 3–5 % over the first ~40,000 km (τ ≈ 9,000–14,000 km), then b ≈ 1 % per
50,000 km and c ≈ 0.5–1.5 % per year: about 1–3 %/year in all, as in public fleet studies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np

from bibev.sim.rng import Purpose, stream

PROVIDERS = ("tesla", "bmw", "high-mobility", "mobilisight", "sim")


@dataclass(frozen=True)
class Model:
    make: str
    name: str
    wmis: tuple[str, ...]
    vds: str  # five VIN characters (positions 4–8) standing for the model line
    plant: str
    nominal_kwh: float  # usable capacity when new
    base_wh_km: float  # consumption at moderate speed and 20 °C
    max_ac_kw: float
    max_dc_kw: float
    cells_series: int  # 96 for a 400 V pack, 192 for 800 V
    car_type: str = "Unknown"  # Tesla CarType name


MODELS: dict[str, tuple[Model, ...]] = {
    "tesla": (
        Model(
            "Tesla", "Model 3 RWD", ("5YJ", "LRW"), "3E1EA", "F", 57.5, 142, 11.0, 170, 96, "Model3"
        ),
        Model(
            "Tesla",
            "Model 3 Long Range",
            ("5YJ", "LRW"),
            "3E1EB",
            "F",
            75.0,
            146,
            11.0,
            250,
            96,
            "Model3",
        ),
        Model(
            "Tesla",
            "Model Y Long Range",
            ("7SA", "XP7"),
            "YGDEE",
            "A",
            75.0,
            158,
            11.0,
            250,
            96,
            "ModelY",
        ),
        Model("Tesla", "Model S", ("5YJ",), "SA1E2", "F", 95.0, 168, 11.5, 250, 96, "ModelS"),
    ),
    "bmw": (
        Model("BMW", "i4 eDrive40", ("WBA",), "71AW0", "F", 80.7, 160, 11.0, 205, 96),
        Model("BMW", "iX3", ("WBY",), "21DN0", "S", 74.0, 178, 11.0, 150, 96),
        Model("BMW", "i5 eDrive40", ("WBA",), "11FJ0", "D", 81.2, 165, 11.0, 205, 96),
        Model("BMW", "iX1 xDrive30", ("WBA",), "21EF0", "R", 64.7, 172, 11.0, 130, 96),
    ),
    "high-mobility": (
        Model("Volkswagen", "ID.3 Pro", ("WVW",), "ZZZE1", "Z", 58.0, 152, 11.0, 120, 96),
        Model("Volkswagen", "ID.4 Pro", ("WVG",), "ZZZE2", "Z", 77.0, 172, 11.0, 135, 96),
        Model("Renault", "Zoe R135", ("VF1",), "AG000", "6", 52.0, 150, 22.0, 50, 96),
        Model("Kia", "EV6 Long Range", ("KNA",), "C81AF", "5", 77.4, 168, 11.0, 240, 192),
    ),
    "mobilisight": (
        Model("Peugeot", "e-208", ("VR3",), "UHZKX", "D", 50.0, 145, 11.0, 100, 96),
        Model("Opel", "Corsa Electric", ("W0V",), "P2BZE", "4", 50.0, 148, 11.0, 100, 96),
        Model("Peugeot", "e-3008", ("VR3",), "MZKXJ", "S", 73.0, 170, 11.0, 160, 96),
        Model("Jeep", "Avenger", ("ZAC",), "AXBJ9", "7", 51.0, 152, 11.0, 100, 96),
    ),
}
MODELS["sim"] = tuple(
    m for p in ("tesla", "bmw", "high-mobility", "mobilisight") for m in MODELS[p]
)


@dataclass(frozen=True)
class City:
    name: str
    lat: float
    lon: float
    utc_offset_h: int  # standard time; daylight saving is not simulated
    temp_mean_c: float
    temp_amplitude_c: float  # half the summer–winter difference of daily means


CITIES: dict[str, City] = {
    c.name: c
    for c in (
        City("Amsterdam", 52.37, 4.90, 1, 10.5, 7.0),
        City("Berlin", 52.52, 13.40, 1, 10.0, 9.5),
        City("Munich", 48.14, 11.58, 1, 9.0, 9.5),
        City("Paris", 48.86, 2.35, 1, 12.5, 8.0),
        City("Lyon", 45.76, 4.84, 1, 13.0, 9.5),
        City("Madrid", 40.42, -3.70, 1, 15.0, 10.5),
        City("Turin", 45.07, 7.69, 1, 13.0, 10.5),
        City("Oslo", 59.91, 10.75, 1, 6.0, 10.5),
        City("Los Angeles", 34.05, -118.24, -8, 18.5, 4.5),
        City("Austin", 30.27, -97.74, -6, 20.5, 9.0),
        City("Seattle", 47.61, -122.33, -8, 11.5, 7.0),
    )
}
CITIES_BY_PROVIDER: dict[str, tuple[str, ...]] = {
    "tesla": ("Los Angeles", "Austin", "Seattle", "Amsterdam", "Oslo", "Berlin"),
    "bmw": ("Munich", "Berlin", "Paris", "Amsterdam"),
    "high-mobility": ("Paris", "Amsterdam", "Berlin", "Madrid", "Oslo"),
    "mobilisight": ("Paris", "Lyon", "Turin", "Madrid"),
    "sim": tuple(CITIES),
}

_VIN_VALUES = {**{str(d): d for d in range(10)}, **dict(zip("ABCDEFGH", range(1, 9), strict=True))}
_VIN_VALUES.update(dict(zip("JKLMN", range(1, 6), strict=True)))
_VIN_VALUES.update({"P": 7, "R": 9})
_VIN_VALUES.update(dict(zip("STUVWXYZ", range(2, 10), strict=True)))
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_MODEL_YEARS = "ABCDEFGHJKLMNPRSTVWXY123456789"  # 2010, 2011, …


def vin_check_digit(vin: str) -> str:
    """Position 9 of an ISO 3779 / FMVSS 565 VIN (``X`` stands for 10)."""
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin, _VIN_WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def make_vin(wmi: str, vds: str, year: int, plant: str, serial: int) -> str:
    """A valid 17-character VIN with its check digit."""
    year_code = _MODEL_YEARS[(year - 2010) % len(_MODEL_YEARS)]
    draft = f"{wmi}{vds}0{year_code}{plant}{serial % 1_000_000:06d}"
    return draft[:8] + vin_check_digit(draft) + draft[9:]


@dataclass(frozen=True)
class Ageing:
    fast_pct: float  # A
    fast_km: float  # τ
    cycle_pct_per_km: float  # b
    calendar_pct_per_year: float  # c

    def soh_pct(self, odometer_km: float, age_years: float) -> float:
        fast = self.fast_pct * (1.0 - math.exp(-odometer_km / self.fast_km))
        return (
            100.0
            - fast
            - self.cycle_pct_per_km * odometer_km
            - self.calendar_pct_per_year * age_years
        )


@dataclass(frozen=True)
class Vehicle:
    """One simulated vehicle: what it is, where it lives and how it is used."""

    index: int
    vin: str
    provider: str
    model: Model
    built: date
    odometer_km: float  # at the start of the simulation
    ageing: Ageing
    city: City
    home: tuple[float, float]
    work: tuple[float, float]
    commuter: bool
    commute_km: float
    errand_rate: float  # outings per day besides commuting
    long_trip_rate: float  # probability of a long trip on a weekend day
    home_charger_kw: float  # 0: no charger at home
    work_charger: bool
    scheduled_hour: float | None  # local hour an off-peak home charge starts at
    plug_below_pct: float  # plugs in at home when the SoC is under this …
    plug_anyway: float  # … or with this probability
    charge_limit_pct: float
    ac_efficiency: float  # battery energy / wall energy on AC
    dc_efficiency: float  # battery energy / charger output on DC
    bms_bias: tuple[float, float, float, float]  # offset %, amplitude %, period days, phase
    oem_soh_offset: float  # how optimistic the OEM's own SoH figure is
    string_values: bool  # old firmware: numbers arrive as strings
    speed_interval_s: int
    odometer_interval_s: int
    poll_interval_s: int
    start_soc_pct: float

    @property
    def nominal_kwh(self) -> float:
        return self.model.nominal_kwh

    def capacity_kwh(self, odometer_km: float, day: date) -> tuple[float, float]:
        """True usable capacity and SoH (%) for this odometer on this day."""
        age_years = max(0.0, (day - self.built).days / 365.25)
        soh = self.ageing.soh_pct(odometer_km, age_years)
        return self.model.nominal_kwh * soh / 100.0, soh


def _offset(lat: float, lon: float, km: float, bearing: float) -> tuple[float, float]:
    dlat = km * math.cos(bearing) / 111.2
    dlon = km * math.sin(bearing) / (111.2 * math.cos(math.radians(lat)))
    return round(lat + dlat, 6), round(lon + dlon, 6)


def _choice(rng: np.random.Generator, values: tuple, weights: tuple[float, ...]):
    p = np.asarray(weights, dtype=float)
    return values[int(rng.choice(len(values), p=p / p.sum()))]


def make_vehicle(seed: int, index: int, provider: str, start: date) -> Vehicle:
    """Vehicle ``index`` of the fleet of ``seed`` (independent of the fleet size)."""
    rng = stream(seed, index, Purpose.FLEET)
    model = MODELS[provider][int(rng.integers(len(MODELS[provider])))]
    age_days = int(rng.uniform(60, 7.5 * 365))
    built = date.fromordinal(start.toordinal() - age_days)
    annual_km = float(rng.uniform(7_000, 28_000))
    odometer = max(50.0, annual_km * age_days / 365.25 * float(rng.uniform(0.85, 1.15)))
    ageing = Ageing(
        fast_pct=float(rng.uniform(3.0, 5.0)),
        fast_km=float(rng.uniform(9_000, 14_000)),
        cycle_pct_per_km=float(rng.uniform(0.8, 1.3)) / 50_000,
        calendar_pct_per_year=float(rng.uniform(0.5, 1.5)),
    )
    city = CITIES[
        CITIES_BY_PROVIDER[provider][int(rng.integers(len(CITIES_BY_PROVIDER[provider])))]
    ]
    home = _offset(
        city.lat, city.lon, float(rng.uniform(1, 18)), float(rng.uniform(0, 2 * math.pi))
    )
    commute_km = float(np.clip(rng.lognormal(math.log(14), 0.6), 3, 60))
    work = _offset(*home, commute_km / 1.3, float(rng.uniform(0, 2 * math.pi)))
    home_charger = float(_choice(rng, (0.0, 3.7, 7.4, 11.0, 22.0), (0.2, 0.1, 0.35, 0.3, 0.05)))
    wmi = model.wmis[int(rng.integers(len(model.wmis)))]
    serial = (int(rng.integers(1_000_000)) + index) % 1_000_000
    return Vehicle(
        index=index,
        vin=make_vin(wmi, model.vds, built.year, model.plant, serial),
        provider=provider,
        model=model,
        built=built,
        odometer_km=round(odometer, 1),
        ageing=ageing,
        city=city,
        home=home,
        work=work,
        commuter=bool(rng.random() < 0.6),
        commute_km=commute_km,
        errand_rate=float(rng.uniform(0.3, 1.3)),
        long_trip_rate=float(rng.uniform(0.03, 0.15)),
        home_charger_kw=min(home_charger, model.max_ac_kw),
        work_charger=bool(rng.random() < 0.15),
        scheduled_hour=float(_choice(rng, (22.0, 23.0, 1.0), (1, 1, 1)))
        if rng.random() < 0.3
        else None,
        plug_below_pct=float(rng.uniform(40, 75)),
        plug_anyway=float(rng.uniform(0.05, 0.5)),
        charge_limit_pct=float(_choice(rng, (80.0, 90.0, 100.0), (0.5, 0.35, 0.15))),
        ac_efficiency=float(rng.uniform(0.86, 0.91)),
        dc_efficiency=float(rng.uniform(0.97, 0.99)),
        bms_bias=(
            float(rng.uniform(-2.0, 2.0)),
            float(rng.uniform(0.3, 1.5)),
            float(rng.uniform(4.0, 14.0)),
            float(rng.uniform(0, 2 * math.pi)),
        ),
        oem_soh_offset=float(rng.uniform(-1.0, 3.0)),
        string_values=bool(rng.random() < 0.15),
        speed_interval_s=int(_choice(rng, (1, 2, 5, 10), (0.1, 0.2, 0.4, 0.3))),
        odometer_interval_s=int(_choice(rng, (60, 300, 3600), (0.5, 0.3, 0.2))),
        poll_interval_s=int(_choice(rng, (300, 600, 900), (0.4, 0.4, 0.2))),
        start_soc_pct=float(rng.uniform(35, 90)),
    )


def make_fleet(seed: int, vehicles: int, provider: str, start: date) -> list[Vehicle]:
    return [make_vehicle(seed, i, provider, start) for i in range(vehicles)]


def bms_bias_pct(vehicle: Vehicle, t_s: np.ndarray) -> np.ndarray:
    """The BMS's SoC error at epoch seconds ``t_s``: an offset that drifts slowly."""
    offset, amplitude, period_days, phase = vehicle.bms_bias
    return offset + amplitude * np.sin(2 * np.pi * t_s / (period_days * 86400.0) + phase)
