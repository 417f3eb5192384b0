"""Screening teacher trajectories with the PRM: a threshold chosen on validation, keep / DPO-negative split,
acceptance rates, and the guard that no test pair reaches training data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from mard_core.errors import InputError, MardError

WRONG_ANSWER, LOW_SCORE, UNPARSEABLE = "wrong answer", "low score", "unparseable"


class ScreenError(MardError):
    """No screening threshold meets the requested target on the validation trajectories."""


class PairLeakError(MardError):
    """A pair of the test split appears in data meant for training."""


def _require(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what}: missing columns {missing}")


def choose_threshold(
    scores_valid: Sequence[float], correct_valid: Sequence[bool], target_precision: float | None = 0.9
) -> float:
    """Score threshold (keep when score >= threshold) chosen on validation trajectories.

    With ``target_precision`` the lowest threshold whose kept set reaches that precision (the most recall at
    that precision); with None the threshold of maximum F1 (the highest one on ties).
    """
    scores = np.asarray(scores_valid, dtype=float)
    correct = np.asarray(correct_valid, dtype=bool)
    if scores.ndim != 1 or scores.shape != correct.shape or not scores.size:
        raise InputError(
            f"choose_threshold: need equally long non-empty 1-D scores ({scores.shape}) and "
            f"correctness ({correct.shape})"
        )
    if np.isnan(scores).any():
        raise InputError("choose_threshold: validation scores contain NaN")
    if not correct.any():
        raise ScreenError(f"choose_threshold: none of {scores.size} validation trajectories is correct")
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], np.cumsum(correct[order])
    last = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # last index of each distinct score
    thresholds, tp, kept = ranked[last], hits[last], last + 1
    precision, recall = tp / kept, tp / correct.sum()
    if target_precision is None:
        f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
        return float(thresholds[int(np.argmax(f1))])
    if not 0.0 < target_precision <= 1.0:
        raise InputError(f"choose_threshold: target_precision must be in (0, 1], got {target_precision}")
    ok = np.flatnonzero(precision >= target_precision)
    if not ok.size:
        best = int(np.argmax(precision))
        raise ScreenError(
            f"choose_threshold: no threshold reaches precision {target_precision} on "
            f"{scores.size} validation trajectories (best {precision[best]:.3f} at "
            f"{thresholds[best]:.4f}); lower target_precision or use None (max F1)"
        )
    return float(thresholds[ok[-1]])


def judge(trajectories: pl.DataFrame, threshold: float, score_column: str = "prm_min") -> pl.DataFrame:
    """Adds ``accepted`` (answer matches gold and score >= threshold) and ``reject_reason`` (null if
    accepted)."""
    _require(trajectories, ("answer", "correct", score_column), "trajectories to screen")
    right = pl.col("correct").fill_null(False)
    high = (pl.col(score_column) >= threshold).fill_null(False)
    reason = (
        pl.when(pl.col("answer").is_null())
        .then(pl.lit(UNPARSEABLE))
        .when(~right & ~high)
        .then(pl.lit(f"{WRONG_ANSWER}, {LOW_SCORE}"))
        .when(~right)
        .then(pl.lit(WRONG_ANSWER))
        .when(~high)
        .then(pl.lit(LOW_SCORE))
    )
    return trajectories.with_columns((right & high).alias("accepted"), reason.alias("reject_reason"))


def screen(
    trajectories: pl.DataFrame, threshold: float, score_column: str = "prm_min"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept, rejected_informative): accepted trajectories, and parseable rejected ones (DPO negatives)."""
    judged = judge(trajectories, threshold, score_column)
    kept = judged.filter(pl.col("accepted"))
    informative = judged.filter(~pl.col("accepted") & pl.col("answer").is_not_null())
    return kept, informative


def acceptance_rates(df: pl.DataFrame) -> pl.DataFrame:
    """Acceptance per teacher and per gold family: columns group (teacher | family), value, n, n_accepted,
    rate.

    ``df`` is the output of :func:`judge` (needs ``teacher``, ``gold`` and ``accepted``).
    """
    _require(df, ("teacher", "gold", "accepted"), "acceptance_rates input (the output of judge())")
    frame = df.select(
        "teacher",
        pl.col("gold").str.split("/").list.first().alias("family"),
        pl.col("accepted").fill_null(False),
    )
    parts = [
        frame.group_by(by)
        .agg(pl.len().alias("n"), pl.col("accepted").sum().alias("n_accepted"))
        .select(pl.lit(by).alias("group"), pl.col(by).alias("value"), "n", "n_accepted")
        for by in ("teacher", "family")
    ]
    return (
        pl.concat(parts)
        .with_columns(pl.col("n").cast(pl.Int64), pl.col("n_accepted").cast(pl.Int64))
        .with_columns((pl.col("n_accepted") / pl.col("n")).alias("rate"))
        .sort("group", "value")
    )


def _unordered(df: pl.DataFrame) -> pl.DataFrame:
    return df.select(
        pl.min_horizontal("drug_a", "drug_b").alias("lo"), pl.max_horizontal("drug_a", "drug_b").alias("hi")
    )


def assert_no_test_pairs(train_like: pl.DataFrame, test_pairs: pl.DataFrame) -> None:
    """Raise PairLeakError when any (drug_a, drug_b) of ``test_pairs`` occurs in ``train_like``, either
    order."""
    _require(train_like, ("drug_a", "drug_b"), "training data checked for test pairs")
    _require(test_pairs, ("drug_a", "drug_b"), "test pairs")
    leaked = _unordered(train_like).join(_unordered(test_pairs).unique(), on=["lo", "hi"], how="inner")
    if leaked.height:
        pairs = leaked.unique(maintain_order=True)
        shown = ", ".join(f"{lo}-{hi}" for lo, hi in pairs.head(5).iter_rows())
        raise PairLeakError(
            f"{leaked.height} training rows use {pairs.height} test pairs "
            f"(orientation-insensitive), e.g. {shown}"
        )
