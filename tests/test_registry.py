"""Model promotion: the paired statistics, the rule, the comparison pairs, and the new model against the
champion on the same pairs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from mard_core.errors import InputError
from mard_core.evaluation.catalog import SYSTEMS
from mard_core.evaluation.config import SYSTEM_KINDS, EvalConfig
from mard_core.evaluation.systems import BaseSystem, Prediction, Query, SystemContext
from mard_core.metrics.labels import mirror_label
from mard_core.metrics.stats import mcnemar, paired_bootstrap
from mard_core.registry import (
    PairedTest,
    compare_with_champion,
    comparison_pairs,
    decide,
    known_drugs,
    known_pairs,
    registered_spec,
)
from mard_core.registry_config import RegisterConfig

WRONG = "PD Antagonistic/Therapeutic efficacy/A to B/Decrease"


def outcomes(n: int, only_new: int, only_champion: int, both: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair correctness of two models on ``n`` pairs with the given discordant and concordant counts."""
    new, champion = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    new[:only_new] = True
    champion[only_new : only_new + only_champion] = True
    new[n - both :] = champion[n - both :] = True
    return new, champion


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (0, 6, 0.03125),  # exact: 2 * 0.5^6
        (6, 0, 0.03125),
        (3, 17, 0.0025768280029296875),  # exact binomial (scipy.stats.binomtest(3, 20))
        (10, 30, 0.002663119258),  # chi-square with continuity (scipy.stats.chi2.sf(19**2 / 40, 1))
        (20, 20, 1.0),
        (0, 0, 1.0),
        (1, 1, 1.0),
    ],
)
def test_mcnemar_on_known_values(b: int, c: int, p: float) -> None:
    assert mcnemar(*outcomes(b + c + 5, b, c, 3)) == pytest.approx(p, rel=1e-9)


def test_the_paired_bootstrap_interval_covers_the_true_difference() -> None:
    """Simulated pairs of correlated models (true accuracies 0.70 and 0.64): the 95% interval covers the true
    difference in about 95% of 400 samples of 300 pairs, and is seeded."""
    rng = np.random.default_rng(7)
    # Joint outcome per pair: both right 0.60, only a 0.10, only b 0.04, both wrong 0.26.
    joint = rng.choice(4, p=[0.60, 0.10, 0.04, 0.26], size=(400, 300))
    covered = []
    for sample in joint:
        a, b = np.isin(sample, (0, 1)), np.isin(sample, (0, 2))
        diff, lo, hi = paired_bootstrap(a, b, n_resamples=2000, seed=0)
        assert diff == pytest.approx(a.mean() - b.mean()) and lo <= diff <= hi
        covered.append(lo <= 0.06 <= hi)
    assert 0.92 <= np.mean(covered) <= 0.98
    a, b = np.isin(joint[0], (0, 1)), np.isin(joint[0], (0, 2))
    assert paired_bootstrap(a, b, 500, seed=3) == paired_bootstrap(list(a), list(b), 500, seed=3)
    assert paired_bootstrap(a, a, 500, seed=3) == (0.0, 0.0, 0.0)


def test_the_paired_statistics_refuse_bad_outcomes() -> None:
    with pytest.raises(InputError, match="scored 2 and 1 pairs"):
        mcnemar([True, False], [True])
    with pytest.raises(InputError, match="non-empty"):
        paired_bootstrap([], [], 10, 0)
    with pytest.raises(InputError, match="booleans or 0/1"):
        mcnemar([0.5, 1.0], [1, 0])


@pytest.mark.parametrize(
    ("n", "only_new", "only_champion", "significant", "promote"),
    [
        (1000, 20, 80, True, False),  # clearly worse
        (1000, 80, 20, True, True),  # clearly better
        (1000, 0, 0, False, True),  # tie: no discordant pair, the newer model is promoted
        (2000, 10, 14, False, True),  # not significantly worse, and within the margin with 95% confidence
        (
            100,
            0,
            2,
            False,
            False,
        ),  # not significantly worse either, but the interval reaches beyond the margin
    ],
)
def test_the_rule_promotes_only_a_model_shown_within_the_margin(
    n: int, only_new: int, only_champion: int, significant: bool, promote: bool
) -> None:
    test = PairedTest.of(*outcomes(n, only_new, only_champion, n // 2), n_resamples=10_000, seed=0)
    decision = decide(test, margin=0.02)
    assert decision.promote is promote is (test.lo > -0.02)  # McNemar's p is reported, the interval decides
    assert (test.p_value < 0.05) is significant
    assert (test.new_only_correct, test.champion_only_correct) == (only_new, only_champion)
    assert test.diff == pytest.approx((only_new - only_champion) / n) and test.lo <= test.diff <= test.hi
    assert ("tie" in decision.reason) is (only_new == only_champion == 0)


def test_a_tie_promotes_even_without_a_margin() -> None:
    test = PairedTest.of(*outcomes(50, 0, 0, 30), n_resamples=100, seed=0)
    assert decide(test, margin=0.0).promote and (test.diff, test.lo, test.hi, test.p_value) == (0, 0, 0, 1)


def pairs(*keys: tuple[str, str], seen: Sequence[bool] | None = None) -> pl.DataFrame:
    df = pl.DataFrame(
        {"drug_a": [a for a, _ in keys], "drug_b": [b for _, b in keys]},
        schema={"drug_a": pl.String, "drug_b": pl.String},
    )
    return df if seen is None else df.with_columns(pl.Series("seen", list(seen), dtype=pl.Boolean))


def test_comparison_prefers_pairs_of_drugs_the_champion_never_trained_on() -> None:
    test = pairs(("DB1", "DB2"), ("DB1", "DB3"), ("DB2", "DB3"), ("DB3", "DB4"), ("DB4", "DB5"))
    champion = pairs(("DB1", "DB2"), ("DB1", "DB3"), ("DB2", "DB3"), seen=[True, False, False])
    assert known_drugs(champion).to_list() == ["DB1", "DB2"]  # DB3 was only in its test part
    one_unseen = [("DB1", "DB3"), ("DB2", "DB3"), ("DB3", "DB4"), ("DB4", "DB5")]
    chosen = comparison_pairs(test, champion, "one", min_new_pairs=3)
    assert chosen.basis == "drug-unseen-by-champion" and chosen.pairs.rows() == one_unseen
    chosen = comparison_pairs(test, champion, "both", min_new_pairs=2)
    assert chosen.basis == "both-drugs-unseen-by-champion"
    assert chosen.pairs.rows() == [("DB3", "DB4"), ("DB4", "DB5")] and not chosen.fallen_back
    # Too few pairs of two unknown drugs: one unknown drug; too few of those: new pairs, then unseen pairs.
    chosen = comparison_pairs(test, champion, "both", min_new_pairs=3)
    assert chosen.basis == "drug-unseen-by-champion" and chosen.pairs.rows() == one_unseen
    assert chosen.fallen_back == (("both-drugs-unseen-by-champion", 2),)
    chosen = comparison_pairs(test, champion, "one", min_new_pairs=5)
    assert chosen.basis == "unseen-by-champion" and chosen.pairs.rows() == test.rows()[1:]
    assert chosen.fallen_back == (("drug-unseen-by-champion", 4), ("new-in-release", 2))
    chosen = comparison_pairs(test, None, "one", min_new_pairs=3)
    assert chosen.basis == "whole-test-part" and chosen.pairs.equals(test)


def test_new_pairs_of_known_drugs_come_next() -> None:
    test = pairs(("DB1", "DB3"), ("DB2", "DB5"), ("DB1", "DB6"))
    champion = pairs(("DB1", "DB2"), ("DB3", "DB4"), ("DB4", "DB5"), seen=[True, True, True])
    chosen = comparison_pairs(test, champion, "one", min_new_pairs=2)
    assert chosen.basis == "new-in-release" and chosen.pairs.equals(test)
    assert chosen.fallen_back == (("drug-unseen-by-champion", 1),)


def test_known_pairs_mark_what_the_split_taught(real_world: dict[str, Any]) -> None:
    known = known_pairs(real_world["pairs"], real_world["root"] / "splits", "random")
    parts = {
        p: pl.read_parquet(real_world["root"] / "splits" / "random" / f"{p}.parquet")
        for p in ("train", "valid", "test")
    }
    assert known.height == real_world["pairs"].height and known.columns == ["drug_a", "drug_b", "seen"]
    seen = set(known.filter(pl.col("seen")).select("drug_a", "drug_b").rows())
    assert seen == set(parts["train"].select("drug_a", "drug_b").rows()) | set(
        parts["valid"].select("drug_a", "drug_b").rows()
    )
    assert not seen & set(parts["test"].select("drug_a", "drug_b").rows())


class LookupStudent(BaseSystem):
    """A 'model' whose weights are a table: its directory's answers.parquet gives each canonical pair's
    label."""

    kind = "student"

    def __init__(self, name: str, model: str) -> None:
        self.name = name
        table = pl.read_parquet(Path(model) / "answers.parquet")
        self.answers = {(a, b): lab for a, b, lab in table.select("drug_a", "drug_b", "label").iter_rows()}

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        out = []
        for q in queries:
            label = self.answers.get((q.drug_a, q.drug_b))
            if label is None:
                label = self.answers[(q.drug_b, q.drug_a)]
                label = label if label == WRONG else mirror_label(label)
            out.append(Prediction(label, 0.8))
        return out


def lookup(spec: Mapping[str, Any], ctx: SystemContext) -> LookupStudent:
    return LookupStudent(spec["name"], spec["model"])


def write_answers(directory: Path, world: dict[str, Any], wrong: pl.DataFrame | None = None) -> Path:
    """A lookup model in ``directory``: gold answers, except the always-wrong label on the ``wrong`` pairs
    (all pairs when None)."""
    directory.mkdir()
    answers = world["pairs"].select("drug_a", "drug_b", "label")
    if wrong is None:
        answers = answers.with_columns(pl.lit(WRONG).alias("label"))
    else:
        flagged = wrong.select("drug_a", "drug_b").with_columns(pl.lit(True).alias("wrong"))
        answers = answers.join(flagged, on=["drug_a", "drug_b"], how="left").select(
            "drug_a", "drug_b", pl.when(pl.col("wrong")).then(pl.lit(WRONG)).otherwise("label").alias("label")
        )
    answers.write_parquet(directory / "answers.parquet")
    return directory


NEW_DRUGS = ("DB00582", "DB01118")  # drugs of the random test part that the champion's release lacks


@pytest.fixture
def models(real_world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A gold-answering and an always-wrong lookup model, an evaluation config registering ``lookup:mard``,
    and the known-pairs record of a champion trained on the random split of a release without two drugs."""
    monkeypatch.setitem(SYSTEMS, "lookup", lookup)
    monkeypatch.setattr("mard_core.evaluation.config.SYSTEM_KINDS", (*SYSTEM_KINDS, "lookup"))
    dirs = {"gold": write_answers(tmp_path / "gold", real_world, wrong=real_world["pairs"].head(0))}
    dirs["wrong"] = write_answers(tmp_path / "wrong", real_world)
    eval_cfg = EvalConfig(
        systems=("majority", {"name": "lookup:mard", "model": "{dpo}", "strategies": ["{split}"]}),
        max_mirror_pairs=4,
    )
    new_drug = pl.col("drug_a").is_in(NEW_DRUGS) | pl.col("drug_b").is_in(NEW_DRUGS)
    old_release = real_world["pairs"].filter(~new_drug)
    return {
        "dirs": dirs,
        "eval": eval_cfg,
        "cfg": RegisterConfig(system="lookup:mard", min_new_pairs=1),
        "known": known_pairs(old_release, real_world["root"] / "splits", "random"),
    }


def compare(
    world: dict[str, Any],
    models: dict[str, Any],
    new: str | Path,
    champion: str | None,
    known: pl.DataFrame | None,
    cfg: RegisterConfig | None = None,
) -> Any:
    cfg = cfg or models["cfg"]
    spec = registered_spec(models["eval"], cfg)
    return compare_with_champion(
        spec,
        {"dpo": str(models["dirs"].get(new, new))},
        str(models["dirs"][champion]) if champion else None,
        known,
        "random",
        models["eval"],
        cfg,
        world["root"] / "ingest",
        world["root"] / "splits",
        world["root"] / "index",
    )


def test_the_comparison_pairs_have_drugs_the_champion_never_trained_on(
    real_world: dict[str, Any], models: dict[str, Any]
) -> None:
    known = known_drugs(models["known"]).to_list()
    assert not set(NEW_DRUGS) & set(known)
    test = pl.read_parquet(real_world["root"] / "splits" / "random" / "test.parquet")
    expected = test.filter(~pl.col("drug_a").is_in(known) | ~pl.col("drug_b").is_in(known))
    result = compare(real_world, models, "gold", "wrong", models["known"])
    assert (
        result.basis == "drug-unseen-by-champion" and result.n_pairs == result.n_available == expected.height
    )
    assert result.champion_known_drugs == len(known) and result.n_pairs >= 4
    for answered in (r.predictions for r in result.results):
        assert set(answered.select("drug_a", "drug_b").rows()) == set(
            expected.select("drug_a", "drug_b").rows()
        )
        assert all(a not in known or b not in known for a, b in answered.select("drug_a", "drug_b").rows())

    # Both drugs unknown: only the pair of the two new drugs; asking for two such pairs falls back to one.
    def both(min_new_pairs: int) -> Any:
        cfg = RegisterConfig(system="lookup:mard", unseen="both", min_new_pairs=min_new_pairs)
        return compare(real_world, models, "gold", "wrong", models["known"], cfg)

    strict = both(1)
    assert strict.basis == "both-drugs-unseen-by-champion" and strict.n_pairs == 1
    assert strict.results[0].predictions.select("drug_a", "drug_b").rows() == [NEW_DRUGS]
    fallen = both(2)
    assert fallen.basis == "drug-unseen-by-champion" and fallen.n_pairs == result.n_pairs
    assert fallen.fallen_back == (("both-drugs-unseen-by-champion", 1),)
    assert "Fell back past both-drugs-unseen-by-champion: 1 pairs found" in fallen.markdown(
        "mard-student", "champion"
    )


def test_a_regressing_model_is_not_promoted_and_a_better_one_is(
    real_world: dict[str, Any], models: dict[str, Any], tmp_path: Path
) -> None:
    worse = compare(real_world, models, "wrong", "gold", models["known"])
    n = worse.n_pairs
    assert (worse.new, worse.champion) == (0.0, 1.0) and not worse.decision.promote
    assert (worse.test.new_only_correct, worse.test.champion_only_correct) == (0, n)
    assert (worse.test.diff, worse.test.lo, worse.test.hi) == (-1.0, -1.0, -1.0)
    assert worse.test.p_value == pytest.approx(2 * 0.5**n)  # exact McNemar on n discordant pairs
    assert [r.metrics["system"] for r in worse.results] == ["lookup:mard@new", "lookup:mard@champion"]
    better = compare(real_world, models, "gold", "wrong", models["known"])
    assert better.decision.promote and (better.new, better.champion, better.test.lo) == (1.0, 0.0, 1.0)
    report = worse.markdown("mard-student", "champion")
    assert "not promoted" in report and f"| champion | 1.0000 | {n} |" in report
    assert f"| -1.0000 | [-1.0000, -1.0000] | {2 * 0.5**n:.4g} (0, {n}) | keep the champion |" in report
    assert "promoted to `champion`" in better.markdown("mard-student", "champion")
    summary = json.loads(json.dumps(worse.summary()))
    assert summary["basis"] == "drug-unseen-by-champion" and summary["rule"].startswith(
        "test pairs with at least"
    )
    assert (summary["n_pairs"], summary["diff_ci95"], summary["promote"]) == (n, [-1.0, -1.0], False)
    assert (summary["new_only_correct"], summary["champion_only_correct"]) == (0, n)
    assert worse.metrics()["comparison_mcnemar_p"] == worse.test.p_value


def test_a_tie_promotes_the_newer_model(real_world: dict[str, Any], models: dict[str, Any]) -> None:
    tie = compare(real_world, models, "gold", "gold", models["known"])
    assert tie.decision.promote and "tie" in tie.decision.reason
    assert (tie.test.diff, tie.test.p_value, tie.test.new_only_correct, tie.test.champion_only_correct) == (
        0.0,
        1.0,
        0,
        0,
    )


def test_a_not_significantly_worse_model_follows_the_rule(
    real_world: dict[str, Any], models: dict[str, Any], tmp_path: Path
) -> None:
    """Wrong on one comparison pair where the champion is right: McNemar finds no difference (p = 1), but on
    so few pairs the interval reaches beyond the margin, so the rule keeps the champion."""
    test = pl.read_parquet(real_world["root"] / "splits" / "random" / "test.parquet")
    one_pair = test.filter(pl.col("drug_a").is_in(NEW_DRUGS) | pl.col("drug_b").is_in(NEW_DRUGS)).head(1)
    result = compare(
        real_world,
        models,
        write_answers(tmp_path / "one-wrong", real_world, one_pair),
        "gold",
        models["known"],
    )
    assert (result.test.new_only_correct, result.test.champion_only_correct, result.test.p_value) == (
        0,
        1,
        1.0,
    )
    assert result.test.diff == pytest.approx(-1 / result.n_pairs) and result.test.lo < -0.02
    assert not result.decision.promote and "not above -0.02" in result.decision.reason
    lenient = compare(
        real_world,
        models,
        tmp_path / "one-wrong",
        "gold",
        models["known"],
        RegisterConfig(system="lookup:mard", min_new_pairs=1, margin=1.0),
    )
    assert lenient.decision.promote


def test_without_a_champion_the_first_model_is_promoted(
    real_world: dict[str, Any], models: dict[str, Any]
) -> None:
    first = compare(real_world, models, "wrong", None, None)
    assert (
        first.decision.promote and first.basis == "no champion" and not first.results and first.test is None
    )


def test_the_registered_system_must_name_the_trained_student() -> None:
    with pytest.raises(InputError, match="not among evaluate.systems"):
        registered_spec(EvalConfig(), RegisterConfig(system="student:nope"))
    with pytest.raises(InputError, match=r"\{dpo\}"):
        registered_spec(EvalConfig(), RegisterConfig(system="student:sft"))
    assert registered_spec(EvalConfig(), RegisterConfig())["model"] == "{dpo}"


def test_nothing_to_compare_on_is_not_a_promotion(real_world: dict[str, Any], models: dict[str, Any]) -> None:
    test = pl.read_parquet(real_world["root"] / "splits" / "random" / "test.parquet")
    learned_everything = test.select("drug_a", "drug_b").with_columns(pl.lit(True).alias("seen"))
    result = compare(real_world, models, "gold", "wrong", learned_everything)
    assert result.basis == "unseen-by-champion" and result.n_pairs == 0 and not result.decision.promote
    assert "nothing to compare on" in result.markdown("mard-student", "champion")
    assert result.summary()["fallen_back"] == {"drug-unseen-by-champion": 0, "new-in-release": 0}
