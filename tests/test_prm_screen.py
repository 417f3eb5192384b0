"""PRM screening: validation thresholds by hand, keep / DPO-negative split, acceptance rates, test-pair
leaks."""

from __future__ import annotations

import polars as pl
import pytest

from mard_core.errors import InputError
from mard_core.prm.screen import (
    PairLeakError,
    ScreenError,
    acceptance_rates,
    assert_no_test_pairs,
    choose_threshold,
    judge,
    screen,
)

SCORES = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
CORRECT = [True, True, False, True, False, False]
# kept-set precision at each threshold: 1, 1, 2/3, 3/4, 3/5, 1/2; F1: .5, .8, .667, .857, .75, .667


@pytest.mark.parametrize(
    ("target", "expected"), [(0.9, 0.8), (1.0, 0.8), (0.75, 0.6), (0.5, 0.4), (None, 0.6)]
)
def test_choose_threshold_by_hand(target: float | None, expected: float) -> None:
    assert choose_threshold(SCORES, CORRECT, target) == expected


def test_choose_threshold_ties_and_failures() -> None:
    assert choose_threshold([0.5, 0.5, 0.5], [True, False, True], 0.6) == 0.5
    with pytest.raises(ScreenError, match=r"no threshold reaches precision 0.9 .*\(best 0.500 at 0.1000\)"):
        choose_threshold([0.9, 0.1], [False, True], 0.9)
    with pytest.raises(ScreenError, match="none of 2 validation trajectories is correct"):
        choose_threshold([0.9, 0.1], [False, False])
    with pytest.raises(InputError, match="equally long"):
        choose_threshold([0.9], [True, False])
    with pytest.raises(InputError, match=r"target_precision must be in \(0, 1\]"):
        choose_threshold([0.9], [True], 1.5)


TRAJ = pl.DataFrame(
    {
        "teacher": ["a", "a", "a", "b", "b", "b"],
        "gold": ["PK Metabolism/Metabolism/A to B/Inhibition"] * 3
        + ["PD Additive/Bleeding/Bidirectional/Increase"] * 3,
        "answer": [
            "PK Metabolism/Metabolism/A to B/Inhibition",
            "PK Metabolism/Metabolism/A to B/Inhibition",
            "PK Exposure/Other/A to B/Increase",
            None,
            "PD Additive/Bleeding/Bidirectional/Increase",
            "PD Additive/Bleeding/Bidirectional/Increase",
        ],
        "correct": [True, True, False, False, True, True],
        "prm_min": [0.9, 0.3, 0.95, 0.99, None, 0.7],
        "prm_prod": [0.8, 0.1, 0.9, 0.9, None, 0.6],
    }
)


def test_screen_keeps_right_and_confident_and_returns_informative_rejects() -> None:
    kept, rejected = screen(TRAJ, 0.6)
    assert kept["prm_min"].to_list() == [0.9, 0.7]
    assert rejected["reject_reason"].to_list() == ["low score", "wrong answer", "low score"]
    assert rejected["answer"].null_count() == 0  # the unparseable one is dropped
    kept_prod, _ = screen(TRAJ, 0.65, score_column="prm_prod")
    assert kept_prod["prm_prod"].to_list() == [0.8]
    both = judge(TRAJ.with_columns(pl.lit(0.1).alias("prm_min")), 0.5)
    assert both["reject_reason"][2] == "wrong answer, low score" and both["reject_reason"][3] == "unparseable"
    with pytest.raises(InputError, match=r"missing columns \['prm_min'\]"):
        screen(TRAJ.drop("prm_min"), 0.5)


def test_acceptance_rates_per_teacher_and_family() -> None:
    rates = acceptance_rates(judge(TRAJ, 0.6))
    assert rates.columns == ["group", "value", "n", "n_accepted", "rate"]
    got = {(g, v): (n, k, r) for g, v, n, k, r in rates.iter_rows()}
    assert got == {
        ("family", "PD Additive"): (3, 1, 1 / 3),
        ("family", "PK Metabolism"): (3, 1, 1 / 3),
        ("teacher", "a"): (3, 1, 1 / 3),
        ("teacher", "b"): (3, 1, 1 / 3),
    }
    with pytest.raises(InputError, match="output of judge"):
        acceptance_rates(TRAJ)


def test_test_pairs_never_reach_training_in_either_order() -> None:
    test_pairs = pl.DataFrame({"drug_a": ["DB01", "DB05"], "drug_b": ["DB02", "DB06"]})
    assert_no_test_pairs(pl.DataFrame({"drug_a": ["DB01", "DB02"], "drug_b": ["DB03", "DB05"]}), test_pairs)
    leaky = pl.DataFrame({"drug_a": ["DB02", "DB01", "DB07"], "drug_b": ["DB01", "DB02", "DB08"]})
    with pytest.raises(
        PairLeakError,
        match=r"2 training rows use 1 test pairs \(orientation-insensitive\), "
        r"e.g. DB01-DB02",
    ):
        assert_no_test_pairs(leaky, test_pairs)
    with pytest.raises(InputError, match="test pairs: missing columns"):
        assert_no_test_pairs(leaky, test_pairs.drop("drug_b"))
