"""Teachers stage: step-by-step trajectories from the teacher ensemble, sharded on Ray and resumable."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from mard_core import generate
from mard_core.prompts import TEMPLATE_VERSION
from mard_core.stage import StageRun, read_manifest
from mard_core.stages import StageCall
from tasks._stage import StageCache, execute
from tasks._tracking import log_stage


def teachers_spec(call: StageCall) -> StageRun:
    cfg = call.cfg.teachers
    teachers_file = hashlib.sha256(cfg.path.read_bytes()).hexdigest()[:16]
    inputs = {**call.keys(), "teachers_file": teachers_file, "prompt_template": TEMPLATE_VERSION}
    return StageRun("teachers", generate.GENERATE_VERSION, cfg, inputs, Path(call.root))


@task(name="teachers", cache_policy=StageCache(spec=teachers_spec), persist_result=True)
def run_teachers(call: StageCall, force: bool = False) -> str:
    """Write ``teachers/<key>/{train,eval}/shards/...``; finished shards survive a crash and are reused."""
    run = teachers_spec(call)
    dirs = {k: Path(v) for k, v in call.dirs.items()}

    def build(work: Path) -> dict[str, Any]:
        fields = generate.write_trajectories(
            dirs["ingest"], dirs["splits"], dirs["index"], dirs["models"], call.cfg.teachers, work
        )
        log_stage(run, metrics=fields["stats"])
        return fields

    out = Path(execute(run, build, force, resume=True))
    stats = (read_manifest(out) or {})["stats"]
    create_table_artifact(
        key="teacher-throughput",
        table=[{"part": part, "teacher": t, **s} for part, by in stats.items() for t, s in by.items()],
        description="Trajectories, throughput, tokens and accuracy per teacher",
    )
    return str(out)
