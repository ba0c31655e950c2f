"""The data-quality record of one cleaned (VIN, day).

Counts are about the day's own compressed rows (``origin == 0``): rows read from the
neighbouring days for context are counted on their own day. ``rows_out``, ``first_ts`` and
``last_ts`` describe the clean rows written for the day. A gap is a silence (no kept
observation at all) longer than ``CleanParams.gap``; it is counted on the day it ends, the
instant before it may be on the previous day, or on an earlier one when the vehicle has no
rows the day before (within ``CleanParams.gap_lookback_days``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl

from .observe import ORIGIN_DAY, day_bounds
from .params import CleanParams
from .reasons import GLITCHES, SUPERSEDED

INPUT_STATS_SCHEMA: dict[str, pl.DataType] = {
    "vin": pl.String(),
    "provider": pl.String(),
    "rows_in": pl.Int64(),
    "unmapped_rows": pl.Int64(),
    "unmapped_keys": pl.Int64(),
}


@dataclass(frozen=True)
class QualityRecord:
    """What cleaning one (VIN, day) read, dropped and wrote."""

    vin: str
    day: date
    provider: str | None = None
    rows_in: int = 0
    observations: int = 0
    unmapped_rows: int = 0
    unmapped_keys: int = 0
    invalid_values: int = 0
    clamped_ts: int = 0
    superseded: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    rows_out: int = 0
    gaps: int = 0
    longest_gap_s: float | None = None
    first_ts: datetime | None = None
    last_ts: datetime | None = None

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dropped_total": self.dropped_total}


def input_stats(day_rows: pl.LazyFrame, mapped: pl.DataFrame) -> pl.LazyFrame:
    """Per VIN: rows of the day, and rows and distinct keys no mapping knows.

    ``mapped`` holds ``provider, key`` pairs (``provider`` null: a key mapped for every row).
    """
    for_all = mapped.filter(pl.col("provider").is_null())["key"].unique().to_list()
    per_provider = mapped.filter(pl.col("provider").is_not_null())
    # a membership test per provider: a join of every row with the key table costs more
    known: pl.Expr = pl.lit(False)
    for (provider,), keys in per_provider.group_by("provider", maintain_order=True):
        listed = keys["key"].to_list()
        known = known | ((pl.col("provider") == provider) & pl.col("key").is_in(listed))
    unmapped = ~(known.fill_null(False) | pl.col("key").is_in(for_all))
    return day_rows.group_by("vin").agg(
        provider=pl.col("provider").drop_nulls().min(),
        rows_in=pl.len().cast(pl.Int64),
        unmapped_rows=unmapped.sum().cast(pl.Int64),
        unmapped_keys=pl.col("key").filter(unmapped).n_unique().cast(pl.Int64),
    )


def last_kept(observations: pl.DataFrame | pl.LazyFrame, *, day: date) -> pl.LazyFrame:
    """Per VIN (``vin`` a string), ``before``: the instant of its last kept observation
    before ``day``."""
    start, _ = day_bounds(day)
    return (
        observations.lazy()
        .filter(pl.col("reason").is_null() & (pl.col("ts") < start))
        .group_by("vin")
        .agg(before=pl.col("ts").max())
        .with_columns(pl.col("vin").cast(pl.String))  # coded in the observations
    )


def _gaps(
    observations: pl.DataFrame,
    clean: pl.DataFrame,
    *,
    day: date,
    params: CleanParams,
    since: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per VIN: the day's instants (the rows of ``clean``, sorted by ``vin, ts``) and the
    silences before them; the first one's is since the last kept instant before the day, the
    later of those in ``observations`` and in ``since`` (``last_kept`` of earlier days)."""
    before = last_kept(observations, day=day)
    if since is not None:
        before = (
            pl.concat([before, since.lazy().select("vin", "before")], how="vertical_relaxed")
            .group_by("vin")
            .agg(pl.col("before").max())
        )
    seconds = pl.col("silence").dt.total_microseconds() / 1_000_000
    return (
        clean.lazy()
        .select("vin", "ts", previous=pl.col("ts").shift(1).over("vin"))
        .join(before, on="vin", how="left")  # after the shift: a join may reorder rows
        .with_columns(silence=pl.col("ts") - pl.coalesce("previous", "before"))
        .group_by("vin")
        .agg(
            rows_out=pl.len(),
            gaps=(pl.col("silence") > params.gap).sum(),
            longest_gap_s=seconds.max(),
            first_ts=pl.col("ts").min(),
            last_ts=pl.col("ts").max(),
        )
        .collect()
    )


def _dropped(observations: pl.DataFrame) -> dict[str, dict[str, int]]:
    counted = (
        observations.filter(
            (pl.col("origin") == ORIGIN_DAY)
            & pl.col("reason").is_not_null()
            & (pl.col("reason") != SUPERSEDED)
        )
        .group_by("vin", "reason")
        .len()
        .sort("vin", "reason")
    )
    order = {reason: i for i, reason in enumerate(GLITCHES)}
    result: dict[str, dict[str, int]] = {}
    for vin, reason, count in counted.iter_rows():
        result.setdefault(vin, {})[reason] = int(count)
    return {
        vin: dict(sorted(reasons.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
        for vin, reasons in result.items()
    }


def summarize(
    observations: pl.DataFrame,
    stats: pl.DataFrame,
    clean: pl.DataFrame,
    *,
    day: date,
    params: CleanParams,
    since: pl.DataFrame | None = None,
) -> list[QualityRecord]:
    """One record per VIN of ``stats`` (``input_stats``) or of ``clean`` (a VIN without rows of
    its own that day gets rows from the next day whose clock ran ahead) from the flagged
    observations and the clean rows written for the day. ``since`` (``vin, before``): the last
    kept instant of VINs before the day found elsewhere than in ``observations`` (their latest
    earlier day, when the day before has no rows)."""
    own = (
        observations.filter(pl.col("origin") == ORIGIN_DAY)
        .group_by("vin")
        .agg(
            observations=pl.len(),
            invalid_values=pl.col("missing").sum(),
            clamped_ts=pl.col("clamped").sum(),
            superseded=(pl.col("reason") == SUPERSEDED).sum(),
        )
        .with_columns(pl.col("vin").cast(pl.String))  # coded in the observations
    )
    table = (
        stats.join(own, on="vin", how="left")
        .join(
            _gaps(observations, clean, day=day, params=params, since=since),
            on="vin",
            how="full",
            coalesce=True,
        )
        .sort("vin")
    )
    dropped = _dropped(observations)
    records = []
    for row in table.iter_rows(named=True):
        counts = {
            name: int(row[name] or 0)
            for name in (
                "rows_in",
                "observations",
                "unmapped_rows",
                "unmapped_keys",
                "invalid_values",
                "clamped_ts",
                "superseded",
                "rows_out",
                "gaps",
            )
        }
        records.append(
            QualityRecord(
                vin=row["vin"],
                day=day,
                provider=row["provider"],
                dropped=dropped.get(row["vin"], {}),
                longest_gap_s=row["longest_gap_s"],
                first_ts=row["first_ts"],
                last_ts=row["last_ts"],
                **counts,
            )
        )
    return records
