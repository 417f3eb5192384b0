"""Confidence calibration: ECE, Brier score, reliability tables and an isotonic recalibration map.

Bins are equal-width on [0, 1]: bin k of n holds confidences c with k/n <= c < (k+1)/n, and c = 1 falls in
the last bin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
from numpy.typing import ArrayLike
from sklearn.isotonic import IsotonicRegression

from mard_core.errors import InputError


def _check(
    what: str, confidence: ArrayLike, correct: Sequence[bool] | ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=float)
    flags = np.asarray(correct, dtype=bool)
    if conf.ndim != 1 or conf.shape != flags.shape:
        raise InputError(
            f"{what}: confidence {conf.shape} and correct {flags.shape} must be 1-D and equally long"
        )
    if conf.size == 0:
        raise InputError(f"{what}: no rows to score")
    if not np.all((conf >= 0) & (conf <= 1)):
        raise InputError(
            f"{what}: confidences must lie in [0, 1] (got min {np.nanmin(conf)}, "
            f"max {np.nanmax(conf)}, {int(np.isnan(conf).sum())} NaN)"
        )
    return conf, flags


def reliability_table(
    confidence: ArrayLike, correct: Sequence[bool] | ArrayLike, n_bins: int = 10
) -> pl.DataFrame:
    """Per bin: edges ``bin_lo``/``bin_hi``, ``mean_confidence``, ``accuracy`` (null when empty) and ``n``."""
    if n_bins < 1:
        raise InputError(f"reliability_table: n_bins must be >= 1, got {n_bins}")
    conf, flags = _check("reliability_table", confidence, correct)
    index = np.minimum(np.floor(conf * n_bins).astype(int), n_bins - 1)
    rows = []
    for k in range(n_bins):
        members = index == k
        n = int(members.sum())
        rows.append(
            {
                "bin_lo": k / n_bins,
                "bin_hi": (k + 1) / n_bins,
                "mean_confidence": float(conf[members].mean()) if n else None,
                "accuracy": float(flags[members].mean()) if n else None,
                "n": n,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "bin_lo": pl.Float64,
            "bin_hi": pl.Float64,
            "mean_confidence": pl.Float64,
            "accuracy": pl.Float64,
            "n": pl.Int64,
        },
    )


def ece(confidence: ArrayLike, correct: Sequence[bool] | ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error: sum over bins of (bin size / N) * |accuracy - mean confidence|."""
    table = reliability_table(confidence, correct, n_bins).filter(pl.col("n") > 0)
    gaps = (table["accuracy"] - table["mean_confidence"]).abs()
    return float((gaps * table["n"]).sum()) / float(table["n"].sum())


def ece_statistic(
    confidence: ArrayLike, correct: Sequence[bool] | ArrayLike, n_bins: int = 10
) -> Callable[[np.ndarray], np.ndarray]:
    """ECE of each bootstrap resample (an index matrix, see :mod:`mard_core.metrics.stats`), computed as
    sum over bins of |sum(correct - confidence)| / N, which equals :func:`ece`."""
    conf, flags = _check("ece_statistic", confidence, correct)
    index = np.minimum(np.floor(conf * n_bins).astype(int), n_bins - 1)
    gap = flags - conf

    def statistic(idx: np.ndarray) -> np.ndarray:
        rows, members = gap[idx], index[idx]
        return (
            sum(np.abs(np.where(members == k, rows, 0.0).sum(axis=1)) for k in range(n_bins)) / idx.shape[1]
        )

    return statistic


def brier(confidence: ArrayLike, correct: Sequence[bool] | ArrayLike) -> float:
    """Mean squared difference between confidence and the 0/1 outcome."""
    conf, flags = _check("brier", confidence, correct)
    return float(np.mean((conf - flags) ** 2))


def calibrate(
    conf_valid: ArrayLike, correct_valid: Sequence[bool] | ArrayLike
) -> Callable[[ArrayLike], np.ndarray]:
    """Fit a monotone map confidence -> P(correct) on validation data (isotonic, clipped to the fitted range).

    Fit on the validation split, then apply the returned function to test confidences.
    """
    conf, flags = _check("calibrate", conf_valid, correct_valid)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(conf, flags.astype(float))

    def apply(confidence: ArrayLike) -> np.ndarray:
        values = np.asarray(confidence, dtype=float)
        if not np.all((values >= 0) & (values <= 1)):
            raise InputError("calibrate: confidences to recalibrate must lie in [0, 1]")
        return iso.predict(values)

    return apply
