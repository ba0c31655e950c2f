"""The thresholds of segmentation, in one frozen object with documented defaults.

Every rule of ``bibev.pipeline.segment`` reads its thresholds from a ``SegmentParams`` passed in
as an argument, so a study can change one figure without touching the code. The defaults are
chosen from the vehicles' physics and from published practice (docs/segmentation.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bibev.errors import ConfigError


@dataclass(frozen=True)
class SegmentParams:
    """Thresholds of the segmentation rules (units in the names).

    Telemetry and movement:
        gap_s: rows further apart than this are separated by a telemetry gap (car asleep or
            offline); a state is never carried across a gap.
        gap_intervals: ... and than this many typical intervals between rows (the median
            interval of the row's UTC day: a provider polled every 15 minutes is not silent
            between two polls).
        moving_speed_kmh: a reported or derived speed above this means the car is moving.
        min_move_m: two position fixes closer than this are GPS jitter, not movement.
        max_fix_interval_s: a speed is derived from positions or odometer readings only when
            the car was online at most this long between them (or ``gap_intervals`` typical
            intervals, if more): a moving car sends a new reading sooner. A silence longer
            than that between two rows (shorter than a gap: a tunnel) does not count: nothing
            could be sent.

    Sessions:
        charging_power_kw: a charging power above this means the car is charging (0.5 kW:
            the threshold of the KU Leuven Tesla logs).
        min_stop_s: a stop shorter than this does not end a drive (traffic lights, jams).
        min_drive_s: a drive shorter than this is noise.
        min_drive_km: a drive whose position and odometer never moved this far is no drive.
        min_charge_s: a charge shorter than this is noise.
        max_charge_pause_s: a pause shorter than this inside a charge does not end it.
        bridge_drive_s: a drive continues across a telemetry gap up to this long (a tunnel).

    Gaps (sessions that happened while the car was offline):
        soc_jump_pct: a SoC rise across a gap above this (BMS drift and rounding stay below)
            means the car charged while offline.
        odometer_jump_km: an odometer rise across a gap above this means it drove offline.
        reckoning_slack: share of the distance dead-reckoned since the last odometer reading
            (straight steps between position fixes fall short of the road) that a rise across
            a gap may still be, without meaning a hidden drive.
        drive_soc_per_km: SoC a drive uses per km, to see a charge behind a hidden drive.
        offline_drive_kmh: average speed of a hidden 10 km trip (longer trips are faster:
            the speed grows with the square root of the distance, 0.6 to 2 times this).
        speed_sample_s: a drive seen for less than this before (after) a gap gives no speed
            of its own for its hidden part (its first minutes say little about the rest).
        offline_charge_kw: battery-side power of a hidden charge when none was observed.
        offline_stop_s: time from parking to the start of a hidden charge, and from its end
            to driving off.
        return_radius_km: a car found this close to where its drive started came back.
        taper_soc_pct: a hidden charge above this SoC goes at half its rate (the cells'
            constant-voltage phase).
        default_capacity_kwh: usable capacity when the car reports no energy content.
        dc_power_kw: a charge above this power (or one reported as DC) is a DC charge: more
            than an AC connection can carry (three phases at 32 A and the highest mains
            voltage allowed, 253 V, give 24.3 kW; a 22 kW AC charge measured at the wall
            reads a little over 22 kW).
    """

    gap_s: float = 600.0
    gap_intervals: float = 3.0
    moving_speed_kmh: float = 3.0
    min_move_m: float = 30.0
    max_fix_interval_s: float = 180.0
    charging_power_kw: float = 0.5
    min_stop_s: float = 300.0
    min_drive_s: float = 60.0
    min_drive_km: float = 0.05
    min_charge_s: float = 60.0
    max_charge_pause_s: float = 300.0
    bridge_drive_s: float = 1800.0
    soc_jump_pct: float = 2.0
    odometer_jump_km: float = 0.5
    reckoning_slack: float = 0.5
    drive_soc_per_km: float = 0.25
    offline_drive_kmh: float = 45.0
    speed_sample_s: float = 600.0
    offline_charge_kw: float = 7.0
    offline_stop_s: float = 300.0
    return_radius_km: float = 0.5
    taper_soc_pct: float = 95.0
    default_capacity_kwh: float = 60.0
    dc_power_kw: float = 24.3

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value >= 0:
                raise ConfigError(f"segmentation parameter {name} must not be negative: {value}")
        for name in ("gap_s", "offline_drive_kmh", "offline_charge_kw", "default_capacity_kwh"):
            if getattr(self, name) == 0:
                raise ConfigError(f"segmentation parameter {name} must be positive")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_PARAMS = SegmentParams()
