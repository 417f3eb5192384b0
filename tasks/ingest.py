"""Ingest stage: the release streamed into Parquet tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from mard_core import ingest as core
from mard_core import synth
from mard_core.releases import file_sha256, hash_cache
from mard_core.stage import StageRun, read_manifest
from mard_core.stages import StageCall
from tasks._stage import StageCache, execute


def ingest_spec(call: StageCall) -> StageRun:
    digest = file_sha256(Path(call.dirs["demo-release"]), hash_cache(Path(call.root)))
    return StageRun("ingest", core.PARSER_VERSION, call.cfg.ingest, {"source": digest}, Path(call.root))


@task(name="ingest", cache_policy=StageCache(spec=ingest_spec), persist_result=True)
def ingest(call: StageCall, force: bool = False) -> str:
    """Stream the release into Parquet tables under ``<root>/ingest/<key>``."""
    source = call.dirs["demo-release"]
    run = ingest_spec(call)

    def build(tmp: Path) -> dict[str, Any]:
        fields = core.ingest(Path(source), tmp, call.cfg.ingest)
        fields["source"]["sha256"] = run.inputs["source"]
        world = synth.world_figures(Path(source), run.inputs["source"])  # a synthetic release's oracle
        return {**fields, **({"world": world} if world else {})}

    out = execute(run, build, force)
    manifest = read_manifest(Path(out)) or {}
    create_table_artifact(
        key="ingest-counts",
        table=[{"table": name, "rows": rows} for name, rows in manifest.get("counts", {}).items()],
        description=f"DrugBank {manifest.get('drugbank_version')} exported {manifest.get('exported_on')}",
    )
    return out
