"""Model promotion: a new student replaces the champion only when, on the same pairs, pairs neither model
learned from, a paired test shows it is not worse than the champion by more than a margin.

Temporal comparison (:func:`compare_with_champion`): the new student and the champion (the registered model
under the alias, usually trained on an earlier release) answer the same queries, drawn from the new split's
test part. Every registered model carries the record of the pairs it knew (:func:`known_pairs`: every pair of
its release, ``seen`` when in the training or validation part it learned from); the drugs of its ``seen``
pairs are the drugs it knows (:func:`known_drugs`). The comparison pairs (:func:`comparison_pairs`) are those
of the first rule in this order that finds at least ``register.min_new_pairs`` of them:

1. ``both-drugs-unseen-by-champion`` (only with ``register.unseen: both``): test pairs both of whose drugs the
   champion does not know;
2. ``drug-unseen-by-champion``: test pairs with at least one drug the champion does not know (new drugs of the
   release, and drugs held out of the champion's split);
3. ``new-in-release``: test pairs absent from the champion's release, which neither model trained on;
4. ``unseen-by-champion``, whatever their number: test pairs the champion did not learn from (a retrain on
   the same release); none at all is not a promotion.

``whole-test-part`` when the champion has no record of its pairs (registered before records existed).

Decision (:func:`decide`, the rule in :class:`~mard_core.registry_config.RegisterConfig`): promoted when the
lower bound of the 95% paired bootstrap interval of new minus champion exact accuracy is above
``-register.margin``; a tie (no discordant pair) promotes the new model. McNemar's p-value is reported beside.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import polars as pl
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mard_core.errors import InputError, MardError
from mard_core.evaluation.config import EvalConfig
from mard_core.evaluation.data import read_part
from mard_core.evaluation.protocol import EvalResult, evaluate_one
from mard_core.evaluation.report import write_report
from mard_core.metrics.stats import CONFIDENCE, mcnemar, paired_bootstrap
from mard_core.registry_config import RegisterConfig
from mard_core.stage import read_manifest
from mard_core.teachers.base import fill_placeholders, placeholder_names
from mard_core.training import merged_dir, student_dir

PAIR_KEY = ["drug_a", "drug_b"]
MODEL_PLACEHOLDER = "dpo"  # the registered system's spec names the model under test through {dpo}
METRIC = "exact_accuracy"  # what the paired test compares: each pair's exact correctness
RULES = {
    "both-drugs-unseen-by-champion": "test pairs both of whose drugs the champion never trained on",
    "drug-unseen-by-champion": "test pairs with at least one drug the champion never trained on",
    "new-in-release": "test pairs absent from the champion's release",
    "unseen-by-champion": "test pairs the champion did not learn from",
    "whole-test-part": "the whole test part (the champion has no record of its pairs)",
}


@dataclass(frozen=True)
class PairedTest:
    """Both models' exact correctness on the same ``n`` pairs: accuracies, the difference new - champion with
    its 95% paired bootstrap interval, the discordant counts and McNemar's p-value."""

    n: int
    new: float
    champion: float
    diff: float
    lo: float
    hi: float
    new_only_correct: int  # McNemar's b
    champion_only_correct: int  # McNemar's c
    p_value: float

    @classmethod
    def of(cls, new_ok: np.ndarray, champion_ok: np.ndarray, n_resamples: int, seed: int) -> PairedTest:
        """The statistics of two aligned boolean vectors of per-pair correctness."""
        diff, lo, hi = paired_bootstrap(new_ok, champion_ok, n_resamples, seed)
        return cls(
            int(new_ok.size),
            float(new_ok.mean()),
            float(champion_ok.mean()),
            diff,
            lo,
            hi,
            int((new_ok & ~champion_ok).sum()),
            int((champion_ok & ~new_ok).sum()),
            mcnemar(new_ok, champion_ok),
        )


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(test: PairedTest, margin: float) -> Decision:
    """Promote when the lower bound of the paired interval of new - champion is above ``-margin``, or on a
    tie (no discordant pair); see :class:`~mard_core.registry_config.RegisterConfig`."""
    stats = (
        f"new - champion = {test.diff:+.4f}, {CONFIDENCE:.0%} paired interval "
        f"[{test.lo:+.4f}, {test.hi:+.4f}] on {test.n} pairs, McNemar p = {test.p_value:.3g}"
    )
    if test.new_only_correct == test.champion_only_correct == 0:
        return Decision(
            True, f"tie: both models answer all {test.n} pairs alike; the newer model is promoted"
        )
    if test.lo > -margin:
        return Decision(True, f"{stats}: the lower bound is above -{margin}, not worse beyond the margin")
    return Decision(False, f"{stats}: the lower bound is not above -{margin}, may be worse beyond the margin")


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


def known_drugs(known: pl.DataFrame) -> pl.Series:
    """The drugs a model trained on: those of its known-pairs record's ``seen`` pairs."""
    seen = known.filter(pl.col("seen"))
    return pl.concat([seen["drug_a"], seen["drug_b"]]).unique().sort().rename("drug")


@dataclass(frozen=True)
class Selection:
    """The comparison pairs, the rule that chose them, and how many pairs each earlier rule found."""

    pairs: pl.DataFrame
    basis: str
    fallen_back: tuple[tuple[str, int], ...] = ()


def comparison_pairs(
    test: pl.DataFrame, champion_known: pl.DataFrame | None, unseen: str, min_new_pairs: int
) -> Selection:
    """The test pairs both models are compared on, chosen by the first rule of the module doc's order that
    finds at least ``min_new_pairs``."""
    if champion_known is None:
        return Selection(test, "whole-test-part")
    drugs = known_drugs(champion_known)
    novel_a, novel_b = ~pl.col("drug_a").is_in(drugs), ~pl.col("drug_b").is_in(drugs)
    candidates = [("drug-unseen-by-champion", test.filter(novel_a | novel_b))]
    if unseen == "both":
        candidates.insert(0, ("both-drugs-unseen-by-champion", test.filter(novel_a & novel_b)))
    candidates.append(("new-in-release", test.join(champion_known.select(PAIR_KEY), on=PAIR_KEY, how="anti")))
    fallen_back: list[tuple[str, int]] = []
    for basis, pairs in candidates:
        if pairs.height >= min_new_pairs:
            return Selection(pairs, basis, tuple(fallen_back))
        fallen_back.append((basis, pairs.height))
    learned = champion_known.filter(pl.col("seen")).select(PAIR_KEY)
    return Selection(test.join(learned, on=PAIR_KEY, how="anti"), "unseen-by-champion", tuple(fallen_back))


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare_with_champion`; ``results`` holds both evaluations (new first)."""

    basis: str
    n_available: int  # comparison pairs found; test.n of them (at most evaluate.max_test_pairs) were asked
    test: PairedTest | None
    decision: Decision
    margin: float
    fallen_back: tuple[tuple[str, int], ...] = ()
    champion_known_drugs: int | None = None
    results: tuple[EvalResult, ...] = ()

    @property
    def n_pairs(self) -> int:
        return self.test.n if self.test else 0

    @property
    def new(self) -> float | None:
        return self.test.new if self.test else None

    @property
    def champion(self) -> float | None:
        return self.test.champion if self.test else None

    def summary(self) -> dict[str, Any]:
        """Every field but the evaluations, JSON-ready."""
        test = self.test
        return {
            "basis": self.basis,
            "rule": RULES.get(self.basis, self.basis),
            "fallen_back": dict(self.fallen_back),
            "champion_known_drugs": self.champion_known_drugs,
            "n_available": self.n_available,
            "n_pairs": self.n_pairs,
            "metric": METRIC,
            "new": self.new,
            "champion": self.champion,
            "diff": test.diff if test else None,
            "diff_ci95": [test.lo, test.hi] if test else None,
            "new_only_correct": test.new_only_correct if test else 0,
            "champion_only_correct": test.champion_only_correct if test else 0,
            "mcnemar_p": test.p_value if test else None,
            "margin": self.margin,
            "promote": self.decision.promote,
            "reason": self.decision.reason,
        }

    def metrics(self) -> dict[str, float | None]:
        """The comparison's numbers as MLflow metrics (``comparison_*``; None where there was no test)."""
        test = self.test
        values = {
            "n_pairs": self.n_pairs,
            "new": self.new,
            "champion": self.champion,
            "diff": test.diff if test else None,
            "diff_ci95_lo": test.lo if test else None,
            "diff_ci95_hi": test.hi if test else None,
            "new_only_correct": test.new_only_correct if test else None,
            "champion_only_correct": test.champion_only_correct if test else None,
            "mcnemar_p": test.p_value if test else None,
            "promoted": float(self.decision.promote),
        }
        return {f"comparison_{k}": v for k, v in values.items()}

    def markdown(self, model: str, alias: str) -> str:
        """A short report for the Prefect UI and MLflow."""
        verdict = "promoted to" if self.decision.promote else "not promoted to"
        lines = [f"**{model}**: {verdict} `{alias}`. {self.decision.reason}", ""]
        if self.basis != "no champion":
            lines.append(f"Comparison pairs: {self.basis}, {RULES.get(self.basis, self.basis)}.")
            lines += [
                f"Fell back past {basis}: {n} pairs found, fewer than `register.min_new_pairs`."
                for basis, n in self.fallen_back
            ]
            lines.append("")
        test = self.test
        if test is None:
            return "\n".join(lines) + "\n"
        rule = (
            f"Compared on {test.n} of {self.n_available} pairs. Rule: promoted when the lower bound of the "
            f"{CONFIDENCE:.0%} paired bootstrap interval of new - champion {METRIC} is above -{self.margin}; "
            "a tie promotes the new model."
        )
        decision = "promote" if self.decision.promote else "keep the champion"
        discordant = f"{test.p_value:.4g} ({test.new_only_correct}, {test.champion_only_correct})"
        lines += [
            rule,
            "",
            f"| Model | {METRIC} | right where the other is wrong |",
            "|---|---|---|",
            f"| new | {test.new:.4f} | {test.new_only_correct} |",
            f"| champion | {test.champion:.4f} | {test.champion_only_correct} |",
            "",
            "| new - champion | 95% paired interval | McNemar p (b, c discordant) | decision |",
            "|---|---|---|---|",
            f"| {test.diff:+.4f} | [{test.lo:+.4f}, {test.hi:+.4f}] | {discordant} | {decision} |",
        ]
        return "\n".join(lines) + "\n"


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
    = ``champion_model``) on the same comparison pairs of ``strategy``'s test part; decide by the paired test.

    Without a champion (``champion_model`` None) the new model is promoted without an evaluation.
    """
    if champion_model is None:
        return Comparison(
            "no champion",
            0,
            None,
            Decision(True, "no champion yet: the first registered model is promoted"),
            cfg.margin,
        )
    chosen = comparison_pairs(
        read_part(split_dir, strategy, "test"), champion_known, cfg.unseen, cfg.min_new_pairs
    )
    n_known = None if champion_known is None else known_drugs(champion_known).len()
    if chosen.pairs.height == 0:
        return Comparison(
            chosen.basis,
            0,
            None,
            Decision(False, "the champion learned from every test pair: nothing to compare on"),
            cfg.margin,
            chosen.fallen_back,
            n_known,
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
            test=chosen.pairs,
        )
        for who, values in (
            ("new", placeholders),
            ("champion", {**placeholders, MODEL_PLACEHOLDER: champion_model}),
        )
    )
    asked = [r.predictions.select("query_a", "query_b") for r in results]
    if not asked[0].equals(asked[1]):
        raise MardError("model comparison: the two models were not asked the same queries")
    new_ok, old_ok = (r.predictions["correct"].to_numpy() for r in results)
    test = PairedTest.of(new_ok, old_ok, cfg.n_resamples, eval_cfg.seed)
    return Comparison(
        chosen.basis,
        chosen.pairs.height,
        test,
        decide(test, cfg.margin),
        cfg.margin,
        chosen.fallen_back,
        n_known,
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
    score: float | None,
) -> dict[str, str]:
    """The model version's tags: its stage key, lineage (upstream keys), release identity, comparison
    basis and decision."""
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
        "comparison_promoted": str(comparison.decision.promote).lower(),
        **{f"input_{k}": v for k, v in lineage.items()},
    }
    tags |= {METRIC: str(score)} if score is not None else {}
    tags |= {f"comparison_{METRIC}": str(comparison.new)} if comparison.new is not None else {}
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
    score = row[METRIC][0] if row.height and METRIC in row.columns else None
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
    tags = version_tags(stage_key, dirs, split, comparison, score)
    metrics = {"leaderboard_" + METRIC: score, **comparison.metrics()}
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
