"""Paired tests of two systems answering the same queries: the paired bootstrap interval of their accuracy
difference and McNemar's test on the pairs where exactly one of them is right.

Both take per-query outcomes in the same query order (booleans, or 0/1): ``correct_a[i]`` and
``correct_b[i]`` are the two systems' answers to query ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from mard_core.errors import InputError

CONFIDENCE = 0.95  # the level of paired_bootstrap's interval
EXACT_BELOW = 25  # McNemar: exact binomial test below this many discordant pairs, chi-square from it on


def _paired(
    what: str, correct_a: Sequence[bool] | ArrayLike, correct_b: Sequence[bool] | ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Both outcome vectors as boolean arrays; one-line errors for empty, unequal or non-binary input."""
    a, b = np.asarray(correct_a), np.asarray(correct_b)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise InputError(
            f"{what}: need two equally long, non-empty outcome vectors, got {a.shape} and {b.shape}"
        )
    for x in (a, b):
        if x.dtype != bool and not np.isin(x, (0, 1)).all():
            raise InputError(f"{what}: outcomes must be booleans or 0/1, got values {np.unique(x)[:5]}")
    return a.astype(bool), b.astype(bool)


def paired_bootstrap(
    correct_a: Sequence[bool] | ArrayLike, correct_b: Sequence[bool] | ArrayLike, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """``(diff, lo, hi)``: the accuracy difference ``a - b`` and its 95% percentile interval over
    ``n_resamples`` paired resamples (queries drawn with replacement, both systems' outcomes kept together).

    Each query's difference is -1, 0 or 1, so the counts of each in a resample of n queries are
    Multinomial(n, observed shares): the replicates are drawn from that distribution directly, which is
    exactly the resampling of queries, in O(n_resamples) memory.
    """
    a, b = _paired("paired_bootstrap", correct_a, correct_b)
    if n_resamples < 1:
        raise InputError(f"paired_bootstrap: n_resamples must be >= 1, got {n_resamples}")
    n = a.size
    values = np.array([-1, 0, 1])
    shares = np.array([(b & ~a).sum(), (a == b).sum(), (a & ~b).sum()]) / n
    counts = np.random.default_rng(seed).multinomial(n, shares, size=n_resamples)
    replicates = counts @ values / n
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(replicates, [tail, 100 - tail])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def mcnemar(correct_a: Sequence[bool] | ArrayLike, correct_b: Sequence[bool] | ArrayLike) -> float:
    """Two-sided p-value of McNemar's test that both systems are equally accurate, from the discordant
    queries (``b``: only a is right, ``c``: only b is right): the exact binomial test (``b ~ Binomial(b + c,
    1/2)``) below :data:`EXACT_BELOW` discordant queries, else the chi-square test with continuity correction,
    ``(|b - c| - 1)^2 / (b + c)`` on one degree of freedom. No discordant query: 1.0."""
    a, bb = _paired("mcnemar", correct_a, correct_b)
    b, c = int((a & ~bb).sum()), int((bb & ~a).sum())
    n = b + c
    if n == 0:
        return 1.0
    if n < EXACT_BELOW:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
        return min(1.0, 2 * tail)
    stat = max(abs(b - c) - 1, 0) ** 2 / n
    return math.erfc(math.sqrt(stat / 2))  # the chi-square(1) survival function
