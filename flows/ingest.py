"""Stage flow: release -> (hash verification) -> streaming ingest -> data-quality gate."""
from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_table_artifact

from mard_core.config import PipelineConfig, load_config
from mard_core.ingest import previous_release
from mard_core.runtime import data_root
from mard_core.stage import read_manifest
from tasks.ingest import ingest, verify_release
from tasks.quality import quality_gate
from tasks.release import demo_release


def release_source(root: str, cfg: PipelineConfig, force: frozenset[str] = frozenset()) -> str:
    """The configured release file, or the embedded demo release (built on first use)."""
    rel = cfg.release
    if rel.source:
        return str(Path(rel.source).resolve())
    return demo_release(root, rel.demo_drugs, rel.demo_seed, force="demo-release" in force)


@flow(name="mard-ingest", log_prints=True)
def ingest_flow(root: str | None = None, config: str | None = None, force: list[str] | None = None) -> dict[str, str]:
    """Ingest the configured DrugBank release and gate it; returns the stage output directories."""
    cfg = load_config(config)
    root = str(data_root(root))
    forced = frozenset(force or ())
    source = release_source(root, cfg, forced)
    if cfg.release.verify:
        verify_release(source, root, cfg.release.version)
    ingest_dir = ingest(source, root, cfg.ingest, force="ingest" in forced)
    manifest = read_manifest(Path(ingest_dir)) or {}
    create_table_artifact(
        key="ingest-counts",
        table=[{"table": name, "rows": rows} for name, rows in manifest.get("counts", {}).items()],
        description=f"DrugBank {manifest.get('drugbank_version')} exported {manifest.get('exported_on')}",
    )
    previous = previous_release(Path(root), Path(ingest_dir))
    quality_dir = quality_gate(ingest_dir, root, cfg.quality, str(previous or ""), force="gate-ingest" in forced)
    return {"ingest": ingest_dir, "quality": quality_dir}
