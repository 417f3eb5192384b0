"""Register stage: the trained student as an MLflow model version, promoted only when it does not regress."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import polars as pl
from mlflow import MlflowClient
from prefect import task
from prefect.artifacts import create_markdown_artifact

from mard_core.registry import RegisterConfig, decide
from mard_core.stage import StageRun, read_manifest
from mard_core.training import merged_dir, student_dir
from tasks._stage import StageCache, execute
from tasks._tracking import EXPERIMENT

REGISTER_VERSION = "1"


def register_spec(dpo_dir: str, evaluate_dir: str, root: str, cfg: RegisterConfig, split: str) -> StageRun:
    inputs = {"dpo": Path(dpo_dir).name, "evaluate": Path(evaluate_dir).name, "split": split}
    return StageRun("register", REGISTER_VERSION, cfg, inputs, Path(root))


def _champion_score(client: MlflowClient, cfg: RegisterConfig) -> tuple[str | None, float | None]:
    try:
        version = client.get_model_version_by_alias(cfg.model_name, cfg.alias)
    except mlflow.exceptions.MlflowException:
        return None, None
    score = version.tags.get(cfg.metric)
    return version.version, float(score) if score is not None else None


def _build(dpo_dir: Path, evaluate_dir: Path, cfg: RegisterConfig, split: str, run: StageRun) -> dict[str, Any]:
    board = pl.read_parquet(evaluate_dir / "leaderboard.parquet")
    row = board.filter((pl.col("system") == cfg.system) & (pl.col("strategy") == split))
    score = row[cfg.metric][0] if row.height and cfg.metric in row.columns else None
    lineage = (read_manifest(dpo_dir) or {}).get("inputs", {})
    tags = {"stage_key": run.key, "dpo_key": dpo_dir.name, "evaluate_key": evaluate_dir.name, "split": split,
            **{f"input_{k}": v for k, v in lineage.items()}, **({cfg.metric: str(score)} if score is not None else {})}
    client = MlflowClient()
    champion_version, champion = _champion_score(client, cfg)
    decision = decide(score, champion, cfg.margin)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"register-{run.key}") as active:
        mlflow.set_tags(tags)
        if score is not None:
            mlflow.log_metric(cfg.metric, float(score))
        mlflow.log_artifacts(str(student_dir(dpo_dir)), artifact_path="student")
        mlflow.log_artifacts(str(merged_dir(dpo_dir)), artifact_path="student-merged")
        artifacts = active.info.artifact_uri
    try:
        client.get_registered_model(cfg.model_name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(cfg.model_name, description="MARD student: LoRA adapter + merged weights")
    version = client.create_model_version(cfg.model_name, source=f"{artifacts}/student", run_id=active.info.run_id,
                                          tags=tags)
    if decision.promote:
        client.set_registered_model_alias(cfg.model_name, cfg.alias, version.version)
    return {"model_name": cfg.model_name, "version": version.version, "score": score, "champion_version": champion_version,
            "champion_score": champion, "promoted": decision.promote, "reason": decision.reason}


@task(name="register", cache_policy=StageCache(spec=register_spec), persist_result=True)
def register(dpo_dir: str, evaluate_dir: str, root: str, cfg: RegisterConfig, split: str, force: bool = False) -> str:
    """Register the DPO student (adapter + merged weights) with its lineage; move the alias when it does not regress."""
    run = register_spec(dpo_dir, evaluate_dir, root, cfg, split)
    out = Path(execute(run, lambda work: _build(Path(dpo_dir), Path(evaluate_dir), cfg, split, run), force))
    m = read_manifest(out) or {}
    create_markdown_artifact(
        key="model-promotion",
        markdown=(f"**{m.get('model_name')} v{m.get('version')}**: {'promoted to' if m.get('promoted') else 'not promoted to'} "
                  f"`{cfg.alias}`. {m.get('reason')}"),
        description="Model registry decision",
    )
    return str(out)
