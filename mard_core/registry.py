"""Model promotion: a new student replaces the champion only when it does not regress beyond a margin on the
same pairs, pairs neither model learned from.

Temporal comparison (:func:`compare_with_champion`): the new student and the champion (the registered model
under the alias, usually trained on an earlier release) answer the same queries, drawn from the new split's
test part. Every registered model carries the record of the pairs it knew (:func:`known_pairs`: every pair of
its release, ``seen`` when in the training or validation part it learned from). The comparison pairs are
(:func:`comparison_pairs`):

* ``new-in-release``: test pairs absent from the champion's release, when there are at least
  ``min_new_pairs`` of them: the interactions DrugBank added since the champion's release, which neither model
  trained on;
* ``unseen-by-champion`` otherwise (a retrain on the same release, or too few new pairs): test pairs the
  champion did not learn from;
* ``whole-test-part`` when the champion has no record of its pairs (registered before records existed).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from mard_core.errors import InputError, MardError
from mard_core.evaluate import EvalConfig, EvalResult, evaluate_one, read_part
from mard_core.registry_config import RegisterConfig
from mard_core.teachers.base import fill_placeholders, placeholder_names

PAIR_KEY = ["drug_a", "drug_b"]
MODEL_PLACEHOLDER = "dpo"  # the registered system's spec names the model under test through {dpo}


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(new: float | None, champion: float | None, margin: float) -> Decision:
    """Promote when ``new >= champion - margin``, or when the champion has no score."""
    if new is None:
        return Decision(False, "the new model has no score on the deciding metric")
    if champion is None:
        return Decision(True, f"the champion has no score; new model scores {new:.4f}")
    if new >= champion:
        return Decision(True, f"new {new:.4f} >= champion {champion:.4f}")
    if new >= champion - margin:
        return Decision(True, f"new {new:.4f} vs champion {champion:.4f}: within margin {margin}")
    return Decision(False, f"new {new:.4f} regresses beyond margin {margin} from champion {champion:.4f}")


def known_pairs(release_pairs: pl.DataFrame, split_dir: str | Path, strategy: str) -> pl.DataFrame:
    """Every canonical pair of the release (``drug_a``, ``drug_b``) with ``seen``: in the strategy's train or
    valid part, i.e. what a model trained on that split learned from."""
    learned = pl.concat([read_part(split_dir, strategy, p).select(PAIR_KEY) for p in ("train", "valid")])
    return (release_pairs.select(PAIR_KEY).unique()
            .join(learned.unique().with_columns(pl.lit(True).alias("seen")), on=PAIR_KEY, how="left")
            .with_columns(pl.col("seen").fill_null(False)).sort(PAIR_KEY))


def comparison_pairs(test: pl.DataFrame, champion_known: pl.DataFrame | None, min_new_pairs: int
                     ) -> tuple[pl.DataFrame, str]:
    """The test pairs both models are compared on, and the basis (see the module doc)."""
    if champion_known is None:
        return test, "whole-test-part"
    new = test.join(champion_known.select(PAIR_KEY), on=PAIR_KEY, how="anti")
    if new.height >= min_new_pairs:
        return new, "new-in-release"
    return test.join(champion_known.filter(pl.col("seen")).select(PAIR_KEY), on=PAIR_KEY, how="anti"), \
        "unseen-by-champion"


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare_with_champion`; ``results`` holds both evaluations (new first)."""

    basis: str
    n_available: int  # comparison pairs found; n_pairs of them (at most evaluate.max_test_pairs) were asked
    n_pairs: int
    metric: str
    new: float | None
    champion: float | None
    new_only_correct: int
    champion_only_correct: int
    decision: Decision
    results: tuple[EvalResult, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Every field but the evaluations, JSON-ready."""
        return {"basis": self.basis, "n_available": self.n_available, "n_pairs": self.n_pairs,
                "metric": self.metric, "new": self.new, "champion": self.champion,
                "new_only_correct": self.new_only_correct, "champion_only_correct": self.champion_only_correct,
                "promote": self.decision.promote, "reason": self.decision.reason}

    def markdown(self, model: str, alias: str) -> str:
        """A short report for the Prefect UI and MLflow."""
        verdict = "promoted to" if self.decision.promote else "not promoted to"
        lines = [f"**{model}**: {verdict} `{alias}`. {self.decision.reason}", ""]
        if not self.results:
            return "\n".join(lines) + "\n"
        lines += [f"Compared on {self.n_pairs} of {self.n_available} test pairs ({self.basis}).", "",
                  f"| Model | {self.metric} | right where the other is wrong |", "|---|---|---|",
                  f"| new | {_fmt(self.new)} | {self.new_only_correct} |",
                  f"| champion | {_fmt(self.champion)} | {self.champion_only_correct} |"]
        return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def registered_spec(eval_cfg: EvalConfig, cfg: RegisterConfig) -> dict[str, Any]:
    """The evaluation spec of the registered system (``cfg.system``); it must name its model through ``{dpo}``."""
    specs = {s["name"]: s for s in eval_cfg.system_specs()}
    if cfg.system not in specs:
        raise InputError(f"register.system {cfg.system!r} is not among evaluate.systems {sorted(specs)}")
    spec = {k: v for k, v in specs[cfg.system].items() if k != "strategies"}
    if MODEL_PLACEHOLDER not in placeholder_names(spec):
        raise InputError(f"register.system {cfg.system!r}: its spec must name the trained student as "
                         f"{{{MODEL_PLACEHOLDER}}}, got {spec}")
    return spec


def compare_with_champion(spec: Mapping[str, Any], placeholders: Mapping[str, str], champion_model: str | None,
                          champion_known: pl.DataFrame | None, strategy: str, eval_cfg: EvalConfig,
                          cfg: RegisterConfig, ingest_dir: str | Path, split_dir: str | Path,
                          index_dir: str | Path) -> Comparison:
    """Evaluate the new model (``spec`` with ``placeholders``) and the champion (the same spec with ``{dpo}`` =
    ``champion_model``) on the same comparison pairs of ``strategy``'s test part; decide on ``cfg.metric``.

    Without a champion (``champion_model`` None) the new model is promoted without an evaluation.
    """
    if champion_model is None:
        return Comparison("no champion", 0, 0, cfg.metric, None, None, 0, 0,
                          Decision(True, "no champion yet: the first registered model is promoted"))
    pairs, basis = comparison_pairs(read_part(split_dir, strategy, "test"), champion_known, cfg.min_new_pairs)
    if pairs.height == 0:
        return Comparison(basis, 0, 0, cfg.metric, None, None, 0, 0,
                          Decision(False, "the champion learned from every test pair: nothing to compare on"))
    settings = replace(eval_cfg, calibrate_on_valid=False)
    results = tuple(
        evaluate_one(fill_placeholders({**spec, "name": f"{spec['name']}@{who}"}, values, f"system {spec['name']!r}"),
                     strategy, settings, ingest_dir, split_dir, index_dir, test=pairs)
        for who, values in (("new", placeholders), ("champion", {**placeholders, MODEL_PLACEHOLDER: champion_model})))
    scores = [r.metrics.get(cfg.metric) for r in results]
    if any(s is not None and not isinstance(s, int | float) for s in scores):
        raise InputError(f"register.metric {cfg.metric!r} is not a numeric evaluation metric")
    asked = [r.predictions.select("query_a", "query_b") for r in results]
    if not asked[0].equals(asked[1]):
        raise MardError("model comparison: the two models were not asked the same queries")
    new_ok, old_ok = (r.predictions["correct"] for r in results)
    return Comparison(basis, pairs.height, results[0].predictions.height, cfg.metric, scores[0], scores[1],
                      int((new_ok & ~old_ok).sum()), int((old_ok & ~new_ok).sum()),
                      decide(scores[0], scores[1], cfg.margin), results)
