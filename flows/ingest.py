"""Stage flow: release -> (hash verification) -> streaming ingest -> data-quality gate."""
from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_table_artifact

from mard_core.config import PipelineConfig, load_config
from mard_core.ingest import previous_release
from mard_core.plan import Plan
from mard_core.runtime import data_root
from mard_core.stage import read_manifest
from tasks.ingest import ingest, verify_release
from tasks.quality import quality_gate
from tasks.release import demo_release


def release_source(root: str, cfg: PipelineConfig, plan: Plan) -> str:
    """The configured release file, or the embedded demo release (built on first use)."""
    rel = cfg.release
    if rel.source:
        return str(Path(rel.source).resolve())
    return demo_release(root, rel.demo_drugs, rel.demo_seed, force=plan.forced("demo-release"))


@flow(name="mard-ingest")
def ingest_flow(root: str | None = None, config: str | None = None, force: list[str] | None = None,
                stop_after: str | None = None, source: str | None = None, version: str | None = None) -> dict[str, str]:
    """Ingest the configured (or given) DrugBank release and gate it; returns the stage output directories.

    ``source``/``version`` override the config's release (a release-triggered retrain passes them, and then
    always verifies the hash).
    """
    overrides = {"release": {"source": source, "version": version, "verify": True}} if source else None
    cfg = load_config(config, overrides)
    root = str(data_root(root))
    plan = Plan(frozenset(force or ()), stop_after)
    outputs: dict[str, str] = {"release": release_source(root, cfg, plan)}
    if plan.stops_at("demo-release"):
        return outputs
    if cfg.release.verify:
        verify_release(outputs["release"], root, cfg.release.version)
    outputs["ingest"] = ingest(outputs["release"], root, cfg.ingest, force=plan.forced("ingest"))
    manifest = read_manifest(Path(outputs["ingest"])) or {}
    create_table_artifact(
        key="ingest-counts",
        table=[{"table": name, "rows": rows} for name, rows in manifest.get("counts", {}).items()],
        description=f"DrugBank {manifest.get('drugbank_version')} exported {manifest.get('exported_on')}",
    )
    if plan.stops_at("ingest"):
        return outputs
    previous = previous_release(Path(root), Path(outputs["ingest"]))
    outputs["gate-ingest"] = quality_gate(outputs["ingest"], root, cfg.quality, str(previous or ""),
                                          force=plan.forced("gate-ingest"))
    return outputs
