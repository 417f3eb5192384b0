"""Metrics library: every metric on small hand-computed cases."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from mard_core.errors import InputError
from mard_core.metrics.calibration import brier, calibrate, ece, ece_statistic, reliability_table
from mard_core.metrics.cost import PriceTable, api_prompt_tokens, cost_per_1k
from mard_core.metrics.labels import (
    NO_ANSWER,
    LabelFormatError,
    confusion,
    label_metrics,
    macro_f1_statistic,
    mirror_consistency,
    mirror_label,
    present_in_random_order,
    rare_drug_bins,
    split_label,
)
from mard_core.metrics.plots import confusion_plot, rare_drug_plot, reliability_plot, roc_plot
from mard_core.metrics.stats import resample_indices

M_AB = "PK Metabolism/Metabolism/A to B/Inhibition"
M_BA = "PK Metabolism/Metabolism/B to A/Inhibition"
PD_BI = "PD/Serotonergic/Bidirectional/Increase"
ABS_BA = "PK Absorption/Absorption/B to A/Decrease"

# Six rows: exact hit, wrong direction, exact hit, no answer, wrong modality, wrong family.
GOLD = [M_AB, M_AB, PD_BI, PD_BI, ABS_BA, ABS_BA]
PRED = [
    M_AB,
    M_BA,
    PD_BI,
    None,
    "PK Absorption/Absorption/B to A/Increase",
    "PK Metabolism/Metabolism/B to A/Decrease",
]


def test_split_and_mirror_label() -> None:
    assert split_label(M_AB).direction == "A to B"
    assert mirror_label(M_AB) == M_BA
    assert mirror_label(M_BA) == M_AB
    assert mirror_label(PD_BI) == PD_BI


@given(
    st.lists(
        st.text(st.characters(blacklist_characters="/"), min_size=1).filter(str.strip), min_size=3, max_size=3
    ),
    st.sampled_from(["A to B", "B to A", "Bidirectional"]),
)
def test_mirror_label_is_an_involution(fields: list[str], direction: str) -> None:
    label = "/".join([fields[0], fields[1], direction, fields[2]])
    assert mirror_label(mirror_label(label)) == label
    assert (mirror_label(label) == label) == (direction == "Bidirectional")


@pytest.mark.parametrize("bad", ["a/b/A to B", "a/b/A to B/c/d", "a//A to B/c", "a/b/Sideways/c", "", 3])
def test_malformed_labels_raise(bad: object) -> None:
    with pytest.raises(LabelFormatError, match="label"):
        mirror_label(bad)  # type: ignore[arg-type]


def test_label_metrics_hand_computed() -> None:
    m = label_metrics(GOLD, PRED)
    assert m["n"] == 6
    assert m["exact_accuracy"] == pytest.approx(2 / 6)
    assert m["family_accuracy"] == pytest.approx(4 / 6)
    assert m["direction_accuracy"] == pytest.approx(4 / 6)
    assert m["direction_accuracy_given_mechanism"] == pytest.approx(3 / 4)  # rows 1, 2, 3, 5
    assert m["modality_accuracy"] == pytest.approx(4 / 6)
    assert m["no_answer_rate"] == pytest.approx(1 / 6)
    # Per-class F1: Metabolism P=2/3 R=1 -> 4/5; Serotonergic and Absorption P=1 R=1/2 -> 2/3.
    assert m["subtype_macro_f1"] == pytest.approx(float((Fraction(4, 5) + Fraction(2, 3) * 2) / 3))
    # po = 1/3; pe = (2/6)(1/6) [M_AB] + (2/6)(1/6) [PD_BI] + (2/6)(0) [ABS_BA] = 1/9;
    # (1/3-1/9)/(1-1/9) = 1/4.
    assert m["kappa"] == pytest.approx(0.25)
    assert (m["n_symmetric"], m["accuracy_symmetric"]) == (2, pytest.approx(1 / 2))
    assert (m["n_asymmetric"], m["accuracy_asymmetric"]) == (4, pytest.approx(1 / 4))
    for metric in (
        "exact_accuracy",
        "family_accuracy",
        "direction_accuracy",
        "subtype_macro_f1",
        "no_answer_rate",
    ):
        lo, hi = m[f"{metric}_ci95_lo"], m[f"{metric}_ci95_hi"]
        assert 0 <= lo <= m[metric] <= hi <= 1 and lo < hi, metric
    assert label_metrics(GOLD, PRED, seed=1)["exact_accuracy_ci95_lo"] is not None


def test_macro_f1_counts_classes_in_gold_or_predictions() -> None:
    # Gold has one class; the prediction adds Serotonergic (F1 0): the mean is over both classes.
    m = label_metrics([M_AB, M_AB], [M_AB, PD_BI])
    assert m["subtype_macro_f1"] == pytest.approx((2 / 3 + 0) / 2)
    # A no-answer is no class: it only misses the gold class.
    assert label_metrics([M_AB, M_AB], [M_AB, None])["subtype_macro_f1"] == pytest.approx(2 / 3)


def test_bootstrap_statistics_equal_the_metric_on_each_resample() -> None:
    rng = random.Random(5)
    labels = [M_AB, M_BA, PD_BI, ABS_BA, "PK Absorption/Absorption/B to A/Increase"]
    gold = [rng.choice(labels[:4]) for _ in range(40)]
    pred = [rng.choice(labels) if rng.random() < 0.8 else NO_ANSWER for _ in range(40)]
    sub = [NO_ANSWER if p == NO_ANSWER else "/".join(split_label(p)[:2]) for p in pred]
    gold_sub = ["/".join(split_label(g)[:2]) for g in gold]
    conf = np.array([rng.random() for _ in range(40)])
    correct = np.array([g == p for g, p in zip(gold, pred, strict=True)])
    idx = resample_indices(40, 5, seed=0)
    f1 = macro_f1_statistic(gold_sub, sub)(idx)
    eces = ece_statistic(conf, correct, 10)(idx)
    for row, i in enumerate(idx):
        g, p = [gold_sub[j] for j in i], [sub[j] for j in i]
        classes = sorted((set(g) | set(p)) - {NO_ANSWER})
        assert f1[row] == pytest.approx(f1_score(g, p, labels=classes, average="macro", zero_division=0))
        assert eces[row] == pytest.approx(ece(conf[i], correct[i], 10))


def test_label_metrics_symmetric_subtypes_override_direction() -> None:
    m = label_metrics(GOLD, PRED, symmetric_subtypes={"Absorption"})
    assert (m["n_symmetric"], m["accuracy_symmetric"]) == (2, 0.0)
    assert (m["n_asymmetric"], m["accuracy_asymmetric"]) == (4, pytest.approx(2 / 4))


def test_kappa_two_by_two_matches_formula() -> None:
    gold, pred = [M_AB, M_AB, M_AB, PD_BI], [M_AB, M_AB, PD_BI, PD_BI]
    po = 3 / 4
    pe = (3 / 4) * (2 / 4) + (1 / 4) * (2 / 4)
    assert label_metrics(gold, pred)["kappa"] == pytest.approx((po - pe) / (1 - pe)) == pytest.approx(0.5)


def test_label_metrics_undefined_parts_are_none() -> None:
    m = label_metrics([M_AB, M_AB], [M_AB, M_AB])
    assert m["kappa"] is None  # one constant class: kappa undefined
    assert m["accuracy_symmetric"] is None and m["n_symmetric"] == 0
    assert (m["exact_accuracy_ci95_lo"], m["exact_accuracy_ci95_hi"]) == (1.0, 1.0)
    m = label_metrics([M_AB, PD_BI], ["", None])
    assert m["direction_accuracy_given_mechanism"] is None
    assert m["no_answer_rate"] == 1.0 and m["exact_accuracy"] == 0.0 and m["subtype_macro_f1"] == 0.0


def test_label_metrics_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="differ in length"):
        label_metrics([M_AB], [M_AB, M_AB])
    with pytest.raises(InputError, match="no rows"):
        label_metrics([], [])
    with pytest.raises(LabelFormatError):
        label_metrics([M_AB], ["Metabolism/A to B"])
    with pytest.raises(LabelFormatError):
        label_metrics([None], [M_AB])  # type: ignore[list-item]


def test_mirror_consistency() -> None:
    ab = [M_AB, PD_BI, ABS_BA, None, M_AB]
    ba = [M_BA, PD_BI, ABS_BA, M_AB, M_AB]  # rows 1-2 mirror; 3 and 5 not; 4 is a no-answer
    assert mirror_consistency(ab, ba) == pytest.approx(2 / 5)
    assert mirror_consistency(ba, ab) == pytest.approx(2 / 5)


def test_confusion_family_level() -> None:
    labels, matrix = confusion(GOLD, PRED, level="family")
    assert labels == [NO_ANSWER, "PD", "PK Absorption", "PK Metabolism"]
    assert matrix.tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 2]]
    labels, matrix = confusion(GOLD, PRED, level="direction")
    assert labels == [NO_ANSWER, "A to B", "B to A", "Bidirectional"]
    assert np.trace(matrix) == 4 and matrix.sum() == 6
    with pytest.raises(InputError, match="level"):
        confusion(GOLD, PRED, level="drug")  # type: ignore[arg-type]


def _random_pairs(n: int, rng: random.Random) -> pl.DataFrame:
    labels = [M_AB, M_BA, PD_BI, ABS_BA]
    return pl.DataFrame(
        {
            "drug_a": [f"DB{i:05d}" for i in range(n)],
            "drug_b": [f"DB{i + n:05d}" for i in range(n)],
            "label": [rng.choice(labels) for _ in range(n)],
        }
    )


def test_present_in_random_order() -> None:
    pairs = _random_pairs(1000, random.Random(0))
    out = present_in_random_order(pairs, seed=11)
    assert 0.45 < out["swapped"].mean() < 0.55
    assert out.equals(present_in_random_order(pairs, seed=11))
    assert not out["swapped"].equals(present_in_random_order(pairs, seed=12)["swapped"])
    for row in out.iter_rows(named=True):
        if row["swapped"]:
            assert (row["query_a"], row["query_b"]) == (row["drug_b"], row["drug_a"])
            assert row["gold"] == mirror_label(row["label"])
        else:
            assert (row["query_a"], row["query_b"], row["gold"]) == (
                row["drug_a"],
                row["drug_b"],
                row["label"],
            )
    shuffled = present_in_random_order(pairs.reverse(), seed=11).reverse()
    assert shuffled.equals(out)
    with pytest.raises(InputError, match="missing column"):
        present_in_random_order(pairs.drop("label"), seed=1)


def test_rare_drug_bins() -> None:
    counts = {"b": 1, "c": 3, "d": 7, "e": 60, "f": 55}  # "a" unseen -> 0
    pairs = pl.DataFrame({"drug_a": ["a", "e", "c", "d", "e", "c"], "drug_b": ["e", "b", "d", "e", "f", "e"]})
    correct = [True, False, True, False, True, False]  # rarer counts: 0, 1, 3, 7, 55, 3
    df = rare_drug_bins(pairs, counts, correct)
    assert df["bin"].to_list() == ["0", "1-4", "5-9", "10-24", "25-49", "50-99", "100+"]
    assert df["n"].to_list() == [1, 3, 1, 0, 0, 1, 0]
    assert df["accuracy"].to_list() == [1.0, pytest.approx(1 / 3), 0.0, None, None, 1.0, None]
    assert rare_drug_bins(pairs, counts, correct, bins=(0, 1, 2, 5, 10, 50, math.inf))["bin"].to_list() == [
        "0",
        "1",
        "2-4",
        "5-9",
        "10-49",
        "50+",
    ]
    with pytest.raises(InputError, match="bins"):
        rare_drug_bins(pairs, counts, correct, bins=(0, 5, 2, math.inf))
    with pytest.raises(InputError, match="outside bins"):
        rare_drug_bins(pairs, counts, correct, bins=(0, 1, 10))


def test_ece_brier_reliability_by_hand() -> None:
    conf, correct = [0.2, 0.4, 0.6, 0.9], [False, True, True, True]
    # Bin [0, .5): mean conf .3, acc .5, gap .2; bin [.5, 1]: mean conf .75, acc 1, gap .25; weights 1/2 each.
    assert ece(conf, correct, n_bins=2) == pytest.approx(0.5 * 0.2 + 0.5 * 0.25)
    assert brier(conf, correct) == pytest.approx((0.2**2 + 0.6**2 + 0.4**2 + 0.1**2) / 4)
    table = reliability_table(conf, correct, n_bins=2)
    assert table["n"].to_list() == [2, 2]
    assert table["mean_confidence"].to_list() == pytest.approx([0.3, 0.75])
    assert table["accuracy"].to_list() == [0.5, 1.0]
    edges = reliability_table([0.0, 0.5, 1.0], [True, True, True], n_bins=4)
    assert edges["n"].to_list() == [1, 0, 1, 1] and edges["accuracy"][1] is None
    assert ece([1.0, 1.0], [True, True]) == 0.0
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        ece([1.2], [True])
    with pytest.raises(InputError, match="equally long"):
        brier([0.5, 0.5], [True])


def test_calibrate_isotonic() -> None:
    # PAV on outcomes 0,1,0,1 pools the middle pair: fitted 0, .5, .5, 1.
    f = calibrate([0.1, 0.2, 0.3, 0.4], [False, True, False, True])
    assert f([0.1, 0.25, 0.4]).tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert f([0.0, 0.95]).tolist() == [0.0, 1.0]  # clipped outside the fitted range
    with pytest.raises(InputError):
        f([1.5])


def test_cost_per_1k_prices_tokens_deterministically() -> None:
    prices = PriceTable(
        prompt_tokens_per_s=10_000.0, completion_tokens_per_s=1_000.0, api_completion_tokens=200
    )
    gpu = cost_per_1k(200_000, 10_000, 300_000, 36.0, 100, prices, device="gpu")
    assert gpu["prompt_tokens_per_1k"] == 2_000_000 and gpu["completion_tokens_per_1k"] == 100_000
    # Device time per 1k: 2e6 / 1e4 + 1e5 / 1e3 = 300 s at $2.50 an hour.
    assert gpu["self_hosted_usd_per_1k"] == pytest.approx(300 / 3600 * 2.5)
    # API: 3e6 o200k prompt tokens at $2.50/M plus 1k x 200 stated completion tokens at $10/M.
    assert gpu["api_prompt_tokens_per_1k"] == 3_000_000 and gpu["api_completion_tokens_per_1k"] == 200_000
    assert gpu["api_usd_per_1k"] == pytest.approx(3.0 * 2.5 + 0.2 * 10.0)
    assert gpu["self_over_api"] == pytest.approx(gpu["self_hosted_usd_per_1k"] / gpu["api_usd_per_1k"])
    # The measured wall time is priced apart; the headline costs do not depend on it.
    assert gpu["wall_s_per_1k"] == pytest.approx(360.0)
    assert gpu["measured_usd_per_1k"] == pytest.approx(0.1 * 2.5)
    slower = cost_per_1k(200_000, 10_000, 300_000, 99.0, 100, prices, device="cpu")
    assert {k: slower[k] for k in ("self_hosted_usd_per_1k", "api_usd_per_1k")} == {
        k: gpu[k] for k in ("self_hosted_usd_per_1k", "api_usd_per_1k")
    }
    assert slower["measured_usd_per_1k"] == pytest.approx(990 / 3600 * 0.05)
    assert cost_per_1k(0, 0, 0, 1.0, 1, PriceTable(api_completion_tokens=0))["self_over_api"] is None
    with pytest.raises(InputError, match="device"):
        cost_per_1k(1, 1, 1, 1.0, 1, device="tpu")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="n_predictions"):
        cost_per_1k(1, 1, 1, 1.0, 0)


def test_api_prompt_tokens_use_gpt4o_o200k_base() -> None:
    # Counts of tiktoken's o200k_base encoding (checked against tiktoken with the published o200k_base file):
    # "hello world" is [24912, 2375].
    prompt = "Drug A: Voriconazole (DB00582)\nDrug B: Axitinib\n[E1] Voriconazole inhibits CYP3A4."
    assert api_prompt_tokens(["hello world", prompt, ""]) == [2, 30, 0]


def test_plots_write_png_atomically(tmp_path) -> None:
    conf = np.linspace(0.05, 0.95, 40)
    correct = np.arange(40) % 3 != 0
    labels, matrix = confusion(GOLD, PRED, level="subtype")
    rare = rare_drug_bins(pl.DataFrame({"drug_a": ["a", "b"], "drug_b": ["c", "d"]}), {"a": 3}, [True, False])
    paths = [
        reliability_plot(reliability_table(conf, correct, 10), tmp_path / "rel.png"),
        confusion_plot(labels, matrix, tmp_path / "conf.png"),
        rare_drug_plot(rare, tmp_path / "rare.png"),
        roc_plot(
            {"mard": ([0, 0.1, 1], [0, 0.8, 1]), "baseline": ([0, 1], [0, 1])}, tmp_path / "sub" / "roc.png"
        ),
    ]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "conf.png",
        "rare.png",
        "rel.png",
        "roc.png",
    ]
    again = confusion_plot(labels, matrix, tmp_path / "conf2.png")
    assert again.read_bytes() == paths[1].read_bytes()
    with pytest.raises(InputError, match="shape"):
        confusion_plot(labels, matrix[:1], tmp_path / "bad.png")
    with pytest.raises(InputError, match="non-decreasing"):
        roc_plot({"bad": ([0, 1, 0.5], [0, 1, 1])}, tmp_path / "bad.png")
