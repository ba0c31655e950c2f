"""How close the features of found sessions are to the truth, over the matched pairs.

``score_sessions`` says whether sessions were found and how well their boundaries sit; this
says how far their figures are off: for each kind and feature, the median and 90th percentile
of the absolute error between a found session and the true session it matches
(``match_sessions``), and for charges how often the charger kind (AC/DC) agrees. Pure functions.

The truth's SoC is the battery's true state of charge; a car shows it with a bias of a few
points (the simulator's BMS error, as real cars have), so SoC errors include that bias.
"""

from __future__ import annotations

import polars as pl

from bibev.pipeline.accuracy import match_sessions

#: kind → (found session's column, true session's column) of each compared feature.
FEATURES: dict[str, dict[str, tuple[str, str]]] = {
    "charging": {
        "energy added kWh": ("energy_added_kwh", "energy_kwh"),
        "SoC start %": ("soc_start", "soc_start"),
        "SoC end %": ("soc_end", "soc_end"),
        "max power kW": ("max_power_kw", "max_power_kw"),
    },
    "driving": {
        "distance km": ("distance_km", "distance_km"),
        "SoC start %": ("soc_start", "soc_start"),
        "SoC end %": ("soc_end", "soc_end"),
    },
}

ERROR_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "feature": pl.String(),
    "n": pl.Int64(),
    "median_abs_error": pl.Float64(),
    "p90_abs_error": pl.Float64(),
}


def _pairs(predicted: pl.DataFrame, truth: pl.DataFrame, iou: float) -> pl.DataFrame:
    """The matched pairs with every column of both sides (``pred_*`` and ``true_*``)."""
    ids = match_sessions(predicted, truth, iou=iou).select("kind", "pred_id", "true_id")
    pred = predicted.with_row_index("pred_id").drop("kind")
    true = truth.with_row_index("true_id").drop("kind")
    return ids.join(
        pred.rename({c: f"pred_{c}" for c in pred.columns if c != "pred_id"}), on="pred_id"
    ).join(true.rename({c: f"true_{c}" for c in true.columns if c != "true_id"}), on="true_id")


def feature_errors(
    predicted: pl.DataFrame, truth: pl.DataFrame, *, iou: float = 0.5
) -> pl.DataFrame:
    """One row per kind and feature (``ERROR_SCHEMA``), over the pairs where both sides have
    the value; the charger kind's row gives the share of charges whose kind disagrees
    (``median_abs_error``; ``p90_abs_error`` null)."""
    pairs = _pairs(predicted, truth, iou)
    rows = []
    for kind, features in FEATURES.items():
        mine = pairs.filter(pl.col("kind") == kind)
        for feature, (found, true) in features.items():
            if f"pred_{found}" not in mine.columns or f"true_{true}" not in mine.columns:
                continue
            error = (pl.col(f"pred_{found}") - pl.col(f"true_{true}")).abs().drop_nulls()
            values = mine.select(error.alias("e"))["e"]
            rows.append(
                {
                    "kind": kind,
                    "feature": feature,
                    "n": values.len(),
                    "median_abs_error": values.median(),
                    "p90_abs_error": values.quantile(0.9, "linear"),
                }
            )
        if kind == "charging" and {"pred_charger_kind", "true_charger_kind"} <= set(mine.columns):
            both = mine.select(
                pl.col("pred_charger_kind").cast(pl.String).alias("a"),
                pl.col("true_charger_kind").cast(pl.String).alias("b"),
            ).drop_nulls()
            wrong = both.filter(pl.col("a") != pl.col("b")).height
            rows.append(
                {
                    "kind": kind,
                    "feature": "AC/DC wrong (share)",
                    "n": both.height,
                    "median_abs_error": wrong / both.height if both.height else None,
                    "p90_abs_error": None,
                }
            )
    return pl.DataFrame(rows, schema=ERROR_SCHEMA)
