"""Register stage: the trained student as an MLflow model version, compared with the champion on the same
pairs (:mod:`mard_core.registry`) and promoted only when it does not regress beyond the margin.

Registration happens once per trained student and evaluation (the stage key: a forced or interrupted re-run
finds the model version it created by its ``stage_key`` tag); the comparison is with the champion of that
moment. The model version carries the student (adapter and merged weights), the record of the
pairs it knew (``release/known_pairs.parquet``, what the next release's comparison excludes) and its lineage.
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from prefect import task
from prefect.artifacts import create_markdown_artifact

from mard_core.errors import MardError
from mard_core.evaluate import EvalConfig, write_report
from mard_core.registry import Comparison, compare_with_champion, known_pairs, registered_spec
from mard_core.registry_config import RegisterConfig
from mard_core.stage import StageRun, read_manifest
from mard_core.training import merged_dir, student_dir
from tasks._stage import StageCache, execute
from tasks._tracking import EXPERIMENT
from tasks.evaluate import placeholders

REGISTER_VERSION = "2"  # 2: temporal comparison with the champion, known-pairs record
INPUTS = ("ingest", "label", "splits", "index", "dpo", "evaluate")
KNOWN_PAIRS = "release/known_pairs.parquet"
MERGED_ARTIFACT = "student-merged"


def register_spec(dirs: dict[str, str], root: str, cfg: RegisterConfig, eval_cfg: EvalConfig, split: str
                  ) -> StageRun:
    settings = dataclasses.replace(eval_cfg, strategies=(split,), systems=(registered_spec(eval_cfg, cfg),))
    return StageRun("register", REGISTER_VERSION, {"register": cfg, "evaluation": settings, "split": split},
                    {s: Path(dirs[s]).name for s in INPUTS}, Path(root))


def _champion(client: MlflowClient, cfg: RegisterConfig) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(cfg.model_name, cfg.alias)
    except mlflow.exceptions.MlflowException:
        return None


def _download(champion: ModelVersion, into: Path) -> tuple[str, pl.DataFrame | None]:
    """The champion's merged weights (local directory) and its known-pairs record (None if it has none)."""
    try:
        model = mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path=MERGED_ARTIFACT,
                                                    dst_path=str(into))
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        raise MardError(f"champion {champion.name} v{champion.version}: cannot fetch its weights "
                        f"({MERGED_ARTIFACT} of run {champion.run_id}): {exc}") from None
    try:
        known = pl.read_parquet(mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path=KNOWN_PAIRS,
                                                                    dst_path=str(into)))
    except (mlflow.exceptions.MlflowException, OSError):
        known = None  # registered before known-pairs records existed
    return model, known


def _compare(dirs: dict[str, str], cfg: RegisterConfig, eval_cfg: EvalConfig, split: str, root: str,
             champion: ModelVersion | None) -> Comparison:
    spec = registered_spec(eval_cfg, cfg)
    with tempfile.TemporaryDirectory(prefix=".champion-", dir=root) as tmp:
        model, known = _download(champion, Path(tmp)) if champion else (None, None)
        return compare_with_champion(spec, placeholders(dirs, split), model, known, split, eval_cfg, cfg,
                                     dirs["ingest"], dirs["splits"], dirs["index"])


def _model_version(client: MlflowClient, cfg: RegisterConfig, run: StageRun, dirs: dict[str, str], work: Path,
                   tags: dict[str, str], metrics: dict[str, float | None]) -> ModelVersion:
    """The model version of this stage key: the one an interrupted earlier attempt created, else a new one (an
    MLflow run with the student, its merged weights, known pairs and the comparison)."""
    earlier = client.search_model_versions(f"name='{cfg.model_name}' and tags.stage_key='{run.key}'")
    if earlier:
        return earlier[0]
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"register-{run.key}") as active:
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
        client.create_registered_model(cfg.model_name, description="MARD student: LoRA adapter + merged weights")
    return client.create_model_version(cfg.model_name, source=f"{active.info.artifact_uri}/student",
                                       run_id=active.info.run_id, tags=tags)


def _build(dirs: dict[str, str], root: str, cfg: RegisterConfig, eval_cfg: EvalConfig, split: str, run: StageRun,
           work: Path) -> dict[str, Any]:
    board = pl.read_parquet(Path(dirs["evaluate"]) / "leaderboard.parquet")
    row = board.filter((pl.col("system") == cfg.system) & (pl.col("strategy") == split))
    score = row[cfg.metric][0] if row.height and cfg.metric in row.columns else None
    release = read_manifest(Path(dirs["ingest"])) or {}
    known_pairs(pl.read_parquet(Path(dirs["label"]) / "ddi_pairs.parquet"), dirs["splits"], split).write_parquet(
        work / "known_pairs.parquet")
    client = MlflowClient()
    champion = _champion(client, cfg)
    comparison = _compare(dirs, cfg, eval_cfg, split, root, champion)
    (work / "comparison.json").write_text(json.dumps(comparison.summary(), indent=2))
    (work / "comparison.md").write_text(comparison.markdown(cfg.model_name, cfg.alias), encoding="utf-8")
    if comparison.results:
        write_report(comparison.results, work / "comparison")

    lineage = (read_manifest(Path(dirs["dpo"])) or {}).get("inputs", {})
    tags = {"stage_key": run.key, "dpo_key": Path(dirs["dpo"]).name, "evaluate_key": Path(dirs["evaluate"]).name,
            "split": split, "release_sha256": str(release.get("source", {}).get("sha256", "")),
            "drugbank_version": str(release.get("drugbank_version", "")),
            "release_exported_on": str(release.get("exported_on", "")), "comparison_basis": comparison.basis,
            **{f"input_{k}": v for k, v in lineage.items()}}
    tags |= {cfg.metric: str(score)} if score is not None else {}
    tags |= {f"comparison_{cfg.metric}": str(comparison.new)} if comparison.new is not None else {}
    metrics = {"leaderboard_" + cfg.metric: score, "comparison_new": comparison.new,
               "comparison_champion": comparison.champion}
    version = _model_version(client, cfg, run, dirs, work, tags, metrics)
    if comparison.decision.promote:
        client.set_registered_model_alias(cfg.model_name, cfg.alias, version.version)
    return {"model_name": cfg.model_name, "version": version.version, "score": score,
            "champion_version": champion.version if champion else None, "comparison": comparison.summary(),
            "promoted": comparison.decision.promote, "reason": comparison.decision.reason}


@task(name="register", cache_policy=StageCache(spec=register_spec), persist_result=True)
def register(dirs: dict[str, str], root: str, cfg: RegisterConfig, eval_cfg: EvalConfig, split: str,
             force: bool = False) -> str:
    """Compare the DPO student with the champion, register it (adapter + merged weights + known pairs) with
    its lineage, and move the alias to it when it does not regress."""
    run = register_spec(dirs, root, cfg, eval_cfg, split)
    out = Path(execute(run, lambda work: _build(dirs, root, cfg, eval_cfg, split, run, work), force))
    version = (read_manifest(out) or {}).get("version")
    create_markdown_artifact(key="model-promotion",
                             markdown=f"Registered version {version}.\n\n" + (out / "comparison.md").read_text("utf-8"),
                             description="Temporal comparison with the champion and the registry decision")
    return str(out)
