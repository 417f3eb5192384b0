"""Sampling uncertainty of evaluation metrics: percentile bootstrap intervals over pairs, paired intervals of
the difference between two systems answering the same pairs, and McNemar's test.

Every resample draws the same number of pairs with replacement from a seeded generator; a statistic sees all
resamples at once as an index matrix (resamples x pairs), so one interval costs a few vectorised numpy passes.
The same seed gives the same resamples for every metric of a system and for both systems of a paired
comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binomtest, chi2

from mard_core.errors import InputError

Statistic = Callable[[np.ndarray], np.ndarray]
"""Maps an index matrix (resamples x pairs) to one value per resample (NaN where undefined)."""

N_RESAMPLES = 1000
CONFIDENCE = 0.95  # the level of the intervals (and of paired_bootstrap's, which promotion decides on)
MCNEMAR_EXACT_BELOW = 25  # discordant pairs under which McNemar's test uses the exact binomial


def resample_indices(n: int, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """An (n_resamples, n) matrix of row indices drawn with replacement, seeded."""
    if n < 1 or n_resamples < 1:
        raise InputError(f"bootstrap: need rows and resamples (got {n} rows, {n_resamples} resamples)")
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def percentile_interval(
    replicates: ArrayLike, level: float = CONFIDENCE
) -> tuple[float | None, float | None]:
    """The central ``level`` percentile interval of the finite replicates; (None, None) without any."""
    if not 0 < level < 1:
        raise InputError(f"bootstrap: level must lie in (0, 1), got {level}")
    values = np.asarray(replicates, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_interval(
    statistic: Statistic, n: int, n_resamples: int = N_RESAMPLES, seed: int = 0, level: float = CONFIDENCE
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of any statistic of n pairs (see :data:`Statistic`)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = statistic(resample_indices(n, n_resamples, seed))
    return percentile_interval(replicates, level)


def _vector(name: str, values: Sequence[float] | ArrayLike) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"{name}: expected a non-empty 1-D sequence, got shape {x.shape}")
    return x


def bootstrap_ci(
    values: Sequence[float] | ArrayLike,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    level: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-pair values (0/1 flags for an accuracy)."""
    x = _vector("bootstrap_ci", values)
    lo, hi = bootstrap_interval(lambda idx: x[idx].mean(axis=1), x.size, n_resamples, seed, level)
    assert lo is not None and hi is not None  # a mean of finite values is finite
    return lo, hi


def ratio_ci(
    numerator: Sequence[float] | ArrayLike,
    denominator: Sequence[float] | ArrayLike,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    level: float = CONFIDENCE,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of sum(numerator) / sum(denominator) (a mean over a subset of pairs:
    denominator is the 0/1 membership); resamples with an empty subset are left out."""
    num, den = _vector("ratio_ci", numerator), _vector("ratio_ci", denominator)
    if num.shape != den.shape:
        raise InputError(f"ratio_ci: numerator {num.shape} and denominator {den.shape} differ in length")
    return bootstrap_interval(
        lambda idx: num[idx].sum(axis=1) / den[idx].sum(axis=1), num.size, n_resamples, seed, level
    )


def _paired(
    name: str, a: Sequence[float] | ArrayLike, b: Sequence[float] | ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Two systems' per-pair values, checked to be over the same number of pairs."""
    x, y = _vector(name, a), _vector(name, b)
    if x.shape != y.shape:
        raise InputError(f"{name}: the two systems scored {x.size} and {y.size} pairs; pair them first")
    return x, y


def paired_bootstrap(
    correct_a: Sequence[float] | ArrayLike,
    correct_b: Sequence[float] | ArrayLike,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    level: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """(mean(a) - mean(b), lo, hi): the difference of two systems' per-pair values on the SAME pairs (row i of
    both is pair i) with its paired percentile bootstrap interval: each resample draws pairs, not outcomes,
    so what the systems share cancels out and the interval is narrower than two independent ones imply."""
    x, y = _paired("paired_bootstrap", correct_a, correct_b)
    diff = x - y
    lo, hi = bootstrap_ci(diff, n_resamples, seed, level)
    return float(diff.mean()), lo, hi


def mcnemar(correct_a: Sequence[bool] | ArrayLike, correct_b: Sequence[bool] | ArrayLike) -> float:
    """Two-sided p-value of McNemar's test that systems a and b are equally often right on the same pairs.

    Only discordant pairs count (a right and b wrong: n_ab; the reverse: n_ba). Under fewer than
    :data:`MCNEMAR_EXACT_BELOW` of them the exact binomial test of n_ab ~ Binomial(n_ab + n_ba, 1/2) is used,
    else the chi-square statistic with continuity correction, max(|n_ab - n_ba| - 1, 0)^2 / (n_ab + n_ba),
    on one degree of freedom. No discordant pair: p = 1.
    """
    x, y = _paired("mcnemar", correct_a, correct_b)
    if not np.isin(x, (0, 1)).all() or not np.isin(y, (0, 1)).all():
        raise InputError("mcnemar: outcomes must be booleans or 0/1 (right or wrong per pair)")
    a, b = x.astype(bool), y.astype(bool)
    n_ab, n_ba = int((a & ~b).sum()), int((~a & b).sum())
    discordant = n_ab + n_ba
    if discordant == 0:
        return 1.0
    if discordant < MCNEMAR_EXACT_BELOW:
        return float(binomtest(n_ab, discordant, 0.5).pvalue)
    return float(chi2.sf(max(abs(n_ab - n_ba) - 1, 0) ** 2 / discordant, df=1))
