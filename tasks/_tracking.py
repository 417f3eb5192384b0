"""MLflow tracking for stage tasks: one run per stage output, in the "mard" experiment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from prefect.runtime import flow_run

from mard_core.stage import StageRun, jsonable

EXPERIMENT = "mard"


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: value}


def log_stage(
    run: StageRun,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    artifacts: list[Path] | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Log a finished stage to MLflow (tracking URI from the environment); returns the MLflow run id.

    Params: the stage config (flattened) plus ``params``; metrics: numeric values of ``metrics`` (flattened,
    non-numbers skipped); artifacts: files (plots, reports). Tagged with the stage key and the Prefect run.
    """
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"{run.stage}-{run.key}") as active:
        mlflow.set_tags(
            {
                "stage": run.stage,
                "stage_key": run.key,
                "stage_dir": str(run.out),
                "prefect_flow_run": str(flow_run.root_flow_run_id or ""),
                **(tags or {}),
            }
        )
        flat = {
            k: str(v)[:500]
            for k, v in {**_flat("", jsonable(run.config)), **_flat("", params or {})}.items()
            if k and v not in ("", None)
        }  # a tracking server rejects empty names and values
        mlflow.log_params(flat)
        numbers = {
            k: float(v)
            for k, v in _flat("", metrics or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if numbers:
            mlflow.log_metrics({k.replace("/", "_"): v for k, v in numbers.items()})
        for path in artifacts or []:
            if Path(path).is_file():
                mlflow.log_artifact(os.fspath(path))
        return active.info.run_id
