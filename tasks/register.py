"""Register stage: the trained student as an MLflow model version, compared with the champion on the same
pairs (:mod:`mard_core.registry`: pairs with drugs the champion never trained on) and promoted only when a
paired test shows it is not worse beyond the margin.

Registration happens once per trained student and evaluation (the stage key: a forced or interrupted re-run
finds the model version it created by its ``stage_key`` tag); the comparison is with the champion of that
moment. The model version carries the student (adapter and merged weights), the record of the
pairs it knew (``release/known_pairs.parquet``, what the next release's comparison excludes) and its lineage.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from mard_core.registry import register_student, registered_spec
from mard_core.stage import StageRun, read_manifest
from mard_core.stages import StageCall
from tasks._stage import StageCache, execute
from tasks._tracking import EXPERIMENT
from tasks.evaluate import evaluation_settings, placeholders

# 2: temporal comparison with the champion, known-pairs record; 3: drugs it never trained on, paired test
REGISTER_VERSION = "3"


def register_spec(call: StageCall) -> StageRun:
    cfg, eval_cfg, split = call.cfg.register, evaluation_settings(call), call.cfg.teachers.split
    settings = dataclasses.replace(eval_cfg, strategies=(split,), systems=(registered_spec(eval_cfg, cfg),))
    return StageRun(
        "register",
        REGISTER_VERSION,
        {"register": cfg, "evaluation": settings, "split": split},
        call.keys(),
        Path(call.root),
    )


@task(name="register", cache_policy=StageCache(spec=register_spec), persist_result=True)
def register(call: StageCall, force: bool = False) -> str:
    """Compare the DPO student with the champion, register it (adapter + merged weights + known pairs) with
    its lineage, and move the alias to it when the paired test says it is not worse beyond the margin."""
    run, split = register_spec(call), call.cfg.teachers.split
    args = (
        call.dirs,
        placeholders(call.dirs, split),
        call.root,
        call.cfg.register,
        evaluation_settings(call),
        split,
        run.key,
    )
    out = Path(execute(run, lambda work: register_student(*args, work, EXPERIMENT), force))
    version = (read_manifest(out) or {}).get("version")
    create_markdown_artifact(
        key="model-promotion",
        markdown=f"Registered version {version}.\n\n" + (out / "comparison.md").read_text("utf-8"),
        description="Paired test with the champion on pairs of drugs it never trained on, and the decision",
    )
    return str(out)
