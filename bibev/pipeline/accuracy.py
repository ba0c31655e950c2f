"""How well sessions were found: predicted sessions scored against true ones.

A predicted session *matches* a true one of the same vehicle and kind when their time
intersection over union (IoU) is at least ``iou`` (0.5 by default). With IoU above one half a
true session can match at most one of several non-overlapping predictions, so the matching is
one to one (ties at exactly 0.5 go to the larger IoU). Per kind:

- precision = matched / predicted, recall = matched / true, F1 their harmonic mean;
- the median absolute start and end errors (seconds) of the matched pairs.

Both inputs need ``vin, kind, start, end``; other columns are ignored. Pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

KINDS = ("charging", "driving", "idle")

SCORE_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "n_true": pl.Int64(),
    "n_predicted": pl.Int64(),
    "matched": pl.Int64(),
    "precision": pl.Float64(),
    "recall": pl.Float64(),
    "f1": pl.Float64(),
    "median_start_error_s": pl.Float64(),
    "median_end_error_s": pl.Float64(),
}


def _intervals(frame: pl.DataFrame | pl.LazyFrame, side: str) -> pl.LazyFrame:
    return (
        frame.lazy()
        .select("vin", pl.col("kind").cast(pl.String), "start", "end")
        .with_row_index(f"{side}_id")
        .rename({"start": f"{side}_start", "end": f"{side}_end"})
    )


def _seconds(expr: pl.Expr) -> pl.Expr:
    return expr.dt.total_microseconds().cast(pl.Float64) / 1e6


def match_sessions(
    predicted: pl.DataFrame | pl.LazyFrame,
    truth: pl.DataFrame | pl.LazyFrame,
    *,
    iou: float = 0.5,
) -> pl.DataFrame:
    """The matched pairs: ``vin, kind, true_*, pred_*, iou, start_error_s, end_error_s``
    (``true_id``/``pred_id`` are row numbers of the inputs)."""
    pred, true = _intervals(predicted, "pred"), _intervals(truth, "true")
    overlap_start = pl.max_horizontal("pred_start", "true_start")
    overlap_end = pl.min_horizontal("pred_end", "true_end")
    union = _seconds(
        pl.max_horizontal("pred_end", "true_end") - pl.min_horizontal("pred_start", "true_start")
    )
    pairs = (
        true.join(pred, on=["vin", "kind"], how="inner")
        .filter(overlap_start < overlap_end)
        .with_columns(iou=_seconds(overlap_end - overlap_start) / union)
        .filter(pl.col("iou") >= iou)
        .sort("iou", "true_id", "pred_id", descending=[True, False, False])
        .unique("true_id", keep="first", maintain_order=True)
        .unique("pred_id", keep="first", maintain_order=True)
        .with_columns(
            start_error_s=_seconds(pl.col("pred_start") - pl.col("true_start")).abs(),
            end_error_s=_seconds(pl.col("pred_end") - pl.col("true_end")).abs(),
        )
        .sort("vin", "true_start")
    )
    return pairs.collect()


def score_sessions(
    predicted: pl.DataFrame | pl.LazyFrame,
    truth: pl.DataFrame | pl.LazyFrame,
    *,
    iou: float = 0.5,
    kinds: Sequence[str] = KINDS,
) -> pl.DataFrame:
    """One row per kind (``SCORE_SCHEMA``); an empty side scores 0 (and errors are null)."""
    pairs = match_sessions(predicted, truth, iou=iou)
    pred_counts = predicted.lazy().group_by(pl.col("kind").cast(pl.String)).len().collect()
    true_counts = truth.lazy().group_by(pl.col("kind").cast(pl.String)).len().collect()
    rows = []
    for kind in kinds:
        n_pred = int(pred_counts.filter(pl.col("kind") == kind)["len"].sum())
        n_true = int(true_counts.filter(pl.col("kind") == kind)["len"].sum())
        mine = pairs.filter(pl.col("kind") == kind)
        matched = mine.height
        precision = matched / n_pred if n_pred else 0.0
        recall = matched / n_true if n_true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {
                "kind": kind,
                "n_true": n_true,
                "n_predicted": n_pred,
                "matched": matched,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "median_start_error_s": mine["start_error_s"].median() if matched else None,
                "median_end_error_s": mine["end_error_s"].median() if matched else None,
            }
        )
    return pl.DataFrame(rows, schema=SCORE_SCHEMA)


def crossing_midnight(sessions: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The sessions that start on one UTC day and end on a later one."""
    frame = sessions.lazy()
    return frame.filter(pl.col("end").dt.date() > pl.col("start").dt.date()).collect()


def midnight_recall(
    predicted: pl.DataFrame | pl.LazyFrame,
    truth: pl.DataFrame | pl.LazyFrame,
    *,
    iou: float = 0.5,
    kinds: Sequence[str] = ("charging", "driving"),
) -> tuple[int, int]:
    """(true sessions of ``kinds`` crossing midnight, how many of them were matched)."""
    crossing = crossing_midnight(truth).filter(pl.col("kind").cast(pl.String).is_in(kinds))
    if crossing.height == 0:
        return 0, 0
    pairs = match_sessions(predicted, crossing, iou=iou)
    return crossing.height, pairs.height


def overlapping(predicted: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Predicted sessions of one vehicle that overlap the one before them (duplicates or
    sessions cut twice); empty when the sessions tile time cleanly."""
    return (
        predicted.lazy()
        .sort("vin", "start")
        .with_columns(previous_end=pl.col("end").shift(1).over("vin"))
        .filter(pl.col("start") < pl.col("previous_end"))
        .collect()
    )


def format_scores(scores: pl.DataFrame, *, title: str = "") -> str:
    """A plain-text (Markdown) table of ``scores``; extra leading columns are kept."""
    columns = scores.columns
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [f"**{title}**", ""] if title else []
    lines += [header, rule]
    for row in scores.iter_rows():
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append(f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}")
            else:
                cells.append("–" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
