"""The data-quality gate task: run after a stage, it stops the pipeline with a readable report on failure."""
from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from mard_core import quality
from mard_core.errors import QualityGateError
from mard_core.stage import StageRun, read_manifest
from tasks._stage import StageCache, execute


def gate_spec(stage_dir: str, root: str, cfg: quality.QualityConfig, previous_dir: str = "") -> StageRun:
    inputs = {"stage": Path(stage_dir).name, "previous": Path(previous_dir).name}
    return StageRun(f"gate-{Path(stage_dir).parent.name}", quality.SUITES_VERSION, cfg, inputs, Path(root))


@task(name="quality-gate", cache_policy=StageCache(spec=gate_spec), persist_result=True)
def quality_gate(stage_dir: str, root: str, cfg: quality.QualityConfig, previous_dir: str = "", force: bool = False) -> str:
    """Validate a stage's tables; publish the summary; raise QualityGateError (naming the report) on failure."""
    run = gate_spec(stage_dir, root, cfg, previous_dir)
    previous = Path(previous_dir) if previous_dir else None
    out = Path(execute(run, lambda tmp: quality.gate(Path(stage_dir), previous, tmp, cfg), force))
    manifest = read_manifest(out) or {}
    stage = Path(stage_dir).parent.name
    create_markdown_artifact(
        key=f"data-quality-{stage}", markdown=manifest.get("summary_markdown", ""),
        description=f"Data-quality gate after {stage}: Data Docs at {out / quality.DOCS_DIR / 'index.html'}",
    )
    if not manifest.get("success"):
        raise QualityGateError(
            f"data-quality gate failed after stage {stage} ({stage_dir}); read {out / quality.DOCS_DIR / 'index.html'}"
        )
    return str(out)
