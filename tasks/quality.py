"""The data-quality gate task: run after a stage, it stops the pipeline with a readable report on failure."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from mard_core import quality
from mard_core.errors import QualityGateError
from mard_core.ingest import previous_release
from mard_core.stage import StageRun, read_manifest
from mard_core.stages import StageCall
from tasks._stage import StageCache, execute


def _checked(call: StageCall) -> tuple[Path, Path | None]:
    """The gated stage's output and, for an ingest, the previous release's ingest output (row-count
    checks)."""
    (stage_dir,) = (Path(d) for d in call.dirs.values())
    previous = previous_release(Path(call.root), stage_dir) if stage_dir.parent.name == "ingest" else None
    return stage_dir, previous


def gate_spec(call: StageCall) -> StageRun:
    stage_dir, previous = _checked(call)
    inputs = {"stage": stage_dir.name, "previous": previous.name if previous else ""}
    return StageRun(call.stage, quality.SUITES_VERSION, call.cfg.quality, inputs, Path(call.root))


@task(name="quality-gate", cache_policy=StageCache(spec=gate_spec), persist_result=True)
def quality_gate(call: StageCall, force: bool = False) -> str:
    """Validate a stage's tables; publish the summary; raise QualityGateError (naming the report) on
    failure."""
    stage_dir, previous = _checked(call)
    out = Path(
        execute(gate_spec(call), lambda tmp: quality.gate(stage_dir, previous, tmp, call.cfg.quality), force)
    )
    manifest = read_manifest(out) or {}
    stage = stage_dir.parent.name
    create_markdown_artifact(
        key=f"data-quality-{stage}",
        markdown=manifest.get("summary_markdown", ""),
        description=f"Data-quality gate after {stage}: Data Docs at {out / quality.DOCS_DIR / 'index.html'}",
    )
    if not manifest.get("success"):
        raise QualityGateError(
            f"data-quality gate failed after stage {stage} ({stage_dir}); "
            f"read {out / quality.DOCS_DIR / 'index.html'}"
        )
    return str(out)
