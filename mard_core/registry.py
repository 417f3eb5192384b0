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

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mard_core.errors import InputError, MardError
from mard_core.evaluation.config import EvalConfig
from mard_core.evaluation.data import read_part
from mard_core.evaluation.protocol import EvalResult, evaluate_one
from mard_core.evaluation.report import write_report
from mard_core.registry_config import RegisterConfig
from mard_core.stage import read_manifest
from mard_core.teachers.base import fill_placeholders, placeholder_names
from mard_core.training import merged_dir, student_dir

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
    return (
        release_pairs.select(PAIR_KEY)
        .unique()
        .join(learned.unique().with_columns(pl.lit(True).alias("seen")), on=PAIR_KEY, how="left")
        .with_columns(pl.col("seen").fill_null(False))
        .sort(PAIR_KEY)
    )


def comparison_pairs(
    test: pl.DataFrame, champion_known: pl.DataFrame | None, min_new_pairs: int
) -> tuple[pl.DataFrame, str]:
    """The test pairs both models are compared on, and the basis (see the module doc)."""
    if champion_known is None:
        return test, "whole-test-part"
    new = test.join(champion_known.select(PAIR_KEY), on=PAIR_KEY, how="anti")
    if new.height >= min_new_pairs:
        return new, "new-in-release"
    return test.join(
        champion_known.filter(pl.col("seen")).select(PAIR_KEY), on=PAIR_KEY, how="anti"
    ), "unseen-by-champion"


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
        return {
            "basis": self.basis,
            "n_available": self.n_available,
            "n_pairs": self.n_pairs,
            "metric": self.metric,
            "new": self.new,
            "champion": self.champion,
            "new_only_correct": self.new_only_correct,
            "champion_only_correct": self.champion_only_correct,
            "promote": self.decision.promote,
            "reason": self.decision.reason,
        }

    def markdown(self, model: str, alias: str) -> str:
        """A short report for the Prefect UI and MLflow."""
        verdict = "promoted to" if self.decision.promote else "not promoted to"
        lines = [f"**{model}**: {verdict} `{alias}`. {self.decision.reason}", ""]
        if not self.results:
            return "\n".join(lines) + "\n"
        lines += [
            f"Compared on {self.n_pairs} of {self.n_available} test pairs ({self.basis}).",
            "",
            f"| Model | {self.metric} | right where the other is wrong |",
            "|---|---|---|",
            f"| new | {_fmt(self.new)} | {self.new_only_correct} |",
            f"| champion | {_fmt(self.champion)} | {self.champion_only_correct} |",
        ]
        return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def registered_spec(eval_cfg: EvalConfig, cfg: RegisterConfig) -> dict[str, Any]:
    """The evaluation spec of the registered system (``cfg.system``); it must name its model through
    ``{dpo}``."""
    specs = {s["name"]: s for s in eval_cfg.system_specs()}
    if cfg.system not in specs:
        raise InputError(f"register.system {cfg.system!r} is not among evaluate.systems {sorted(specs)}")
    spec = {k: v for k, v in specs[cfg.system].items() if k != "strategies"}
    if MODEL_PLACEHOLDER not in placeholder_names(spec):
        raise InputError(
            f"register.system {cfg.system!r}: its spec must name the trained student as "
            f"{{{MODEL_PLACEHOLDER}}}, got {spec}"
        )
    return spec


def compare_with_champion(
    spec: Mapping[str, Any],
    placeholders: Mapping[str, str],
    champion_model: str | None,
    champion_known: pl.DataFrame | None,
    strategy: str,
    eval_cfg: EvalConfig,
    cfg: RegisterConfig,
    ingest_dir: str | Path,
    split_dir: str | Path,
    index_dir: str | Path,
) -> Comparison:
    """Evaluate the new model (``spec`` with ``placeholders``) and the champion (the same spec with ``{dpo}``
    = ``champion_model``) on the same comparison pairs of ``strategy``'s test part; decide on ``cfg.metric``.

    Without a champion (``champion_model`` None) the new model is promoted without an evaluation.
    """
    if champion_model is None:
        return Comparison(
            "no champion",
            0,
            0,
            cfg.metric,
            None,
            None,
            0,
            0,
            Decision(True, "no champion yet: the first registered model is promoted"),
        )
    pairs, basis = comparison_pairs(read_part(split_dir, strategy, "test"), champion_known, cfg.min_new_pairs)
    if pairs.height == 0:
        return Comparison(
            basis,
            0,
            0,
            cfg.metric,
            None,
            None,
            0,
            0,
            Decision(False, "the champion learned from every test pair: nothing to compare on"),
        )
    settings = replace(eval_cfg, calibrate_on_valid=False)
    results = tuple(
        evaluate_one(
            fill_placeholders({**spec, "name": f"{spec['name']}@{who}"}, values, f"system {spec['name']!r}"),
            strategy,
            settings,
            ingest_dir,
            split_dir,
            index_dir,
            test=pairs,
        )
        for who, values in (
            ("new", placeholders),
            ("champion", {**placeholders, MODEL_PLACEHOLDER: champion_model}),
        )
    )
    scores = [r.metrics.get(cfg.metric) for r in results]
    if any(s is not None and not isinstance(s, int | float) for s in scores):
        raise InputError(f"register.metric {cfg.metric!r} is not a numeric evaluation metric")
    asked = [r.predictions.select("query_a", "query_b") for r in results]
    if not asked[0].equals(asked[1]):
        raise MardError("model comparison: the two models were not asked the same queries")
    new_ok, old_ok = (r.predictions["correct"] for r in results)
    return Comparison(
        basis,
        pairs.height,
        results[0].predictions.height,
        cfg.metric,
        scores[0],
        scores[1],
        int((new_ok & ~old_ok).sum()),
        int((old_ok & ~new_ok).sum()),
        decide(scores[0], scores[1], cfg.margin),
        results,
    )


# Registration: the student as an MLflow model version (adapter, merged weights, known pairs, comparison).
KNOWN_PAIRS = "release/known_pairs.parquet"
MERGED_ARTIFACT = "student-merged"


def _champion(client: MlflowClient, cfg: RegisterConfig) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(cfg.model_name, cfg.alias)
    except mlflow.exceptions.MlflowException:
        return None


def _download(champion: ModelVersion, into: Path) -> tuple[str, pl.DataFrame | None]:
    """The champion's merged weights (local directory) and its known-pairs record (None if it has none)."""
    try:
        model = mlflow.artifacts.download_artifacts(
            run_id=champion.run_id, artifact_path=MERGED_ARTIFACT, dst_path=str(into)
        )
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        raise MardError(
            f"champion {champion.name} v{champion.version}: cannot fetch its weights "
            f"({MERGED_ARTIFACT} of run {champion.run_id}): {exc}"
        ) from None
    try:
        known = pl.read_parquet(
            mlflow.artifacts.download_artifacts(
                run_id=champion.run_id, artifact_path=KNOWN_PAIRS, dst_path=str(into)
            )
        )
    except (mlflow.exceptions.MlflowException, OSError):
        known = None  # registered before known-pairs records existed
    return model, known


def _compare(
    dirs: Mapping[str, str],
    models: Mapping[str, str],
    cfg: RegisterConfig,
    eval_cfg: EvalConfig,
    split: str,
    root: str,
    champion: ModelVersion | None,
) -> Comparison:
    spec = registered_spec(eval_cfg, cfg)
    with tempfile.TemporaryDirectory(prefix=".champion-", dir=root) as tmp:
        model, known = _download(champion, Path(tmp)) if champion else (None, None)
        return compare_with_champion(
            spec, models, model, known, split, eval_cfg, cfg, dirs["ingest"], dirs["splits"], dirs["index"]
        )


def _model_version(
    client: MlflowClient,
    cfg: RegisterConfig,
    stage_key: str,
    dirs: Mapping[str, str],
    work: Path,
    tags: dict[str, str],
    metrics: dict[str, float | None],
    experiment: str,
) -> ModelVersion:
    """The model version of this stage key: the one an interrupted earlier attempt created, else a new one (an
    MLflow run with the student, its merged weights, known pairs and the comparison)."""
    earlier = client.search_model_versions(f"name='{cfg.model_name}' and tags.stage_key='{stage_key}'")
    if earlier:
        return earlier[0]
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"register-{stage_key}") as active:
        mlflow.set_tags(tags)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        mlflow.log_artifacts(str(student_dir(dirs["dpo"])), artifact_path="student")
        mlflow.log_artifacts(str(merged_dir(dirs["dpo"])), artifact_path=MERGED_ARTIFACT)
        mlflow.log_artifact(str(work / "known_pairs.parquet"), artifact_path=str(Path(KNOWN_PAIRS).parent))
        for name in ("comparison.json", "comparison.md"):
            mlflow.log_artifact(str(work / name), artifact_path="comparison")
    try:
        client.get_registered_model(cfg.model_name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(
            cfg.model_name, description="MARD student: LoRA adapter + merged weights"
        )
    return client.create_model_version(
        cfg.model_name, source=f"{active.info.artifact_uri}/student", run_id=active.info.run_id, tags=tags
    )


def version_tags(
    stage_key: str,
    dirs: Mapping[str, str],
    split: str,
    comparison: Comparison,
    metric: str,
    score: float | None,
) -> dict[str, str]:
    """The model version's tags: its stage key, lineage (upstream keys), release identity and comparison
    basis."""
    release = read_manifest(Path(dirs["ingest"])) or {}
    lineage = (read_manifest(Path(dirs["dpo"])) or {}).get("inputs", {})
    tags = {
        "stage_key": stage_key,
        "dpo_key": Path(dirs["dpo"]).name,
        "evaluate_key": Path(dirs["evaluate"]).name,
        "split": split,
        "release_sha256": str(release.get("source", {}).get("sha256", "")),
        "drugbank_version": str(release.get("drugbank_version", "")),
        "release_exported_on": str(release.get("exported_on", "")),
        "comparison_basis": comparison.basis,
        **{f"input_{k}": v for k, v in lineage.items()},
    }
    tags |= {metric: str(score)} if score is not None else {}
    tags |= {f"comparison_{metric}": str(comparison.new)} if comparison.new is not None else {}
    return tags


def register_student(
    dirs: Mapping[str, str],
    models: Mapping[str, str],
    root: str,
    cfg: RegisterConfig,
    eval_cfg: EvalConfig,
    split: str,
    stage_key: str,
    work: Path,
    experiment: str,
) -> dict[str, Any]:
    """The register stage's work in ``work``: compare the DPO student (``models``: the placeholder values of
    the registered system) with the champion, register it with its lineage (an MLflow run in ``experiment``),
    move the alias when the rule says so."""
    board = pl.read_parquet(Path(dirs["evaluate"]) / "leaderboard.parquet")
    row = board.filter((pl.col("system") == cfg.system) & (pl.col("strategy") == split))
    score = row[cfg.metric][0] if row.height and cfg.metric in row.columns else None
    known_pairs(
        pl.read_parquet(Path(dirs["label"]) / "ddi_pairs.parquet"), dirs["splits"], split
    ).write_parquet(work / "known_pairs.parquet")
    client = MlflowClient()
    champion = _champion(client, cfg)
    comparison = _compare(dirs, models, cfg, eval_cfg, split, root, champion)
    (work / "comparison.json").write_text(json.dumps(comparison.summary(), indent=2))
    (work / "comparison.md").write_text(comparison.markdown(cfg.model_name, cfg.alias), encoding="utf-8")
    if comparison.results:
        write_report(comparison.results, work / "comparison")
    tags = version_tags(stage_key, dirs, split, comparison, cfg.metric, score)
    metrics = {
        "leaderboard_" + cfg.metric: score,
        "comparison_new": comparison.new,
        "comparison_champion": comparison.champion,
    }
    version = _model_version(client, cfg, stage_key, dirs, work, tags, metrics, experiment)
    if comparison.decision.promote:
        client.set_registered_model_alias(cfg.model_name, cfg.alias, version.version)
    return {
        "model_name": cfg.model_name,
        "version": version.version,
        "score": score,
        "champion_version": champion.version if champion else None,
        "comparison": comparison.summary(),
        "promoted": comparison.decision.promote,
        "reason": comparison.decision.reason,
    }
