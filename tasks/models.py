"""Models stage (demo): build tiny random-init models locally, loadable through `from_pretrained`."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from mard_core import tiny
from mard_core.stage import StageRun
from mard_core.stages import StageCall
from tasks._stage import StageCache, execute

MODELS_VERSION = "2"  # 2: warm-up of the student base (its settings are in the key: models.student, .warmup)


def models_spec(call: StageCall) -> StageRun:
    return StageRun(
        "models",
        MODELS_VERSION,
        call.cfg.models,
        {**call.keys(), "split": call.cfg.teachers.split},
        Path(call.root),
    )


@task(name="models", cache_policy=StageCache(spec=models_spec), persist_result=True)
def build_models(call: StageCall, force: bool = False) -> str:
    """Write ``models/<key>/{tiny-llama,tiny-qwen2,tiny-mistral,student-base,prm-base}``."""
    dirs = {k: Path(v) for k, v in call.dirs.items()}
    return execute(
        models_spec(call),
        lambda work: tiny.write_demo_models(
            dirs["ingest"],
            dirs["splits"],
            dirs["index"],
            call.cfg.models,
            call.cfg.teachers.split,
            work,
            get_run_logger().info,
        ),
        force,
    )
