"""Bootstrap intervals and McNemar's test on simulated data with a known truth and on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mard_core.errors import InputError
from mard_core.metrics.stats import (
    bootstrap_ci,
    mcnemar,
    paired_bootstrap,
    percentile_interval,
    ratio_ci,
    resample_indices,
)


def test_bootstrap_ci_covers_the_true_accuracy_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    truth, n, trials = 0.3, 200, 300
    covered = 0
    for trial in range(trials):
        sample = rng.random(n) < truth
        lo, hi = bootstrap_ci(sample, n_resamples=400, seed=trial)
        covered += lo <= truth <= hi
    assert 0.91 <= covered / trials <= 0.98


def test_bootstrap_ci_is_seeded_and_near_the_normal_approximation() -> None:
    correct = [True] * 60 + [False] * 40
    ci = bootstrap_ci(correct, n_resamples=1000, seed=3)
    assert ci == bootstrap_ci(correct, n_resamples=1000, seed=3)
    assert ci != bootstrap_ci(correct, n_resamples=1000, seed=4)
    # Normal approximation: 0.6 +- 1.96 * sqrt(0.6 * 0.4 / 100) = 0.6 +- 0.096.
    assert ci[0] == pytest.approx(0.504, abs=0.03) and ci[1] == pytest.approx(0.696, abs=0.03)
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)


def test_paired_interval_is_narrower_than_an_unpaired_one_on_correlated_systems() -> None:
    rng = np.random.default_rng(1)
    n = 500
    a = rng.random(n) < 0.7
    b = a.copy()
    flip = rng.choice(n, 40, replace=False)  # b differs from a on 40 pairs, mostly for the worse
    b[flip[:32]] = False
    b[flip[32:]] = True
    diff, lo, hi = paired_bootstrap(a, b, n_resamples=1000, seed=0)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert lo < diff < hi and lo > 0  # the paired test sees that a is better
    # Unpaired: each system resampled on its own, as two separate intervals would imply.
    ia, ib = resample_indices(n, 1000, seed=1), resample_indices(n, 1000, seed=2)
    un_lo, un_hi = percentile_interval(a[ia].mean(axis=1) - b[ib].mean(axis=1))
    assert un_lo is not None and un_hi is not None and un_lo < 0 < un_hi  # it cannot tell them apart
    assert hi - lo < 0.5 * (un_hi - un_lo)
    with pytest.raises(InputError, match="pair them first"):
        paired_bootstrap(a, b[:-1])


@pytest.mark.parametrize(
    ("n_ab", "n_ba", "expected"),
    [
        (10, 0, 2 / 2**10),  # exact: both tails of Binomial(10, 1/2) at the extreme
        (3, 1, 10 / 16),  # exact: P(X <= 1) + P(X >= 3) of Binomial(4, 1/2)
        (2, 2, 1.0),
        (0, 0, 1.0),  # no discordant pair
        # 40 discordant: chi-square with continuity correction, (|30 - 10| - 1)^2 / 40 on one dof.
        (30, 10, math.erfc(math.sqrt(361 / 40 / 2))),
    ],
)
def test_mcnemar_known_values(n_ab: int, n_ba: int, expected: float) -> None:
    both_right, both_wrong = 50, 7
    a = [True] * n_ab + [False] * n_ba + [True] * both_right + [False] * both_wrong
    b = [False] * n_ab + [True] * n_ba + [True] * both_right + [False] * both_wrong
    assert mcnemar(a, b) == pytest.approx(expected, rel=1e-9)
    assert mcnemar(b, a) == pytest.approx(expected, rel=1e-9)  # two-sided


def test_ratio_ci_and_undefined_replicates() -> None:
    values = np.array([1.0, 0.5, 0.0, 1.0])
    member = np.array([1.0, 1.0, 0.0, 0.0])
    lo, hi = ratio_ci(values * member, member, n_resamples=500, seed=0)
    assert lo is not None and hi is not None and 0.5 <= lo <= 0.75 <= hi <= 1.0
    assert ratio_ci([0.0, 0.0], [0.0, 0.0]) == (None, None)  # no member in any resample
    assert percentile_interval([np.nan, 1.0, 3.0], level=0.5) == (1.5, 2.5)
    with pytest.raises(InputError, match="level"):
        percentile_interval([1.0], level=1.5)
    with pytest.raises(InputError, match="non-empty"):
        bootstrap_ci([])
