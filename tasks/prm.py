"""PRM stage: verified step labels, PRM training and evaluation, trajectory screening
(``mard_core.prm.stage``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_table_artifact

from mard_core.prm import stage
from mard_core.stage import StageRun
from mard_core.stages import StageCall
from tasks._stage import StageCache, execute
from tasks._tracking import log_stage

PRM_STAGE_VERSION = "2"  # 2: PRM trained with programmatically corrupted copies


def prm_spec(call: StageCall) -> StageRun:
    config = {"prm": call.cfg.prm, "screen": call.cfg.screen}
    return StageRun("prm", PRM_STAGE_VERSION, config, call.keys(), Path(call.root))


@task(name="prm", cache_policy=StageCache(spec=prm_spec), persist_result=True)
def train_prm(call: StageCall, force: bool = False) -> str:
    """Write ``prm/<key>/`` (model, step labels, kept/rejected trajectories, acceptance, ROC plot)."""
    run = prm_spec(call)
    dirs = {k: Path(v) for k, v in call.dirs.items()}

    def build(work: Path) -> dict[str, Any]:
        fields = stage.build(
            dirs["ingest"],
            dirs["splits"],
            dirs["models"],
            dirs["teachers"],
            call.cfg.prm,
            call.cfg.screen,
            work,
        )
        log_stage(run, metrics=fields["metrics"], artifacts=[work / "roc.png", work / "metrics.json"])
        return fields

    out = Path(execute(run, build, force))
    create_table_artifact(
        key="prm-acceptance",
        table=pl.read_parquet(out / "acceptance.parquet").to_dicts(),
        description="PRM screening: acceptance per teacher and per family",
    )
    return str(out)
