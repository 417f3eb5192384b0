"""Prefect tasks of the data-intake stage: verify the release, ingest it, gate it on data quality."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from mard_core import ingest as core
from mard_core.releases import file_sha256, hash_cache, load_registry, require_verified, user_registry, verify
from mard_core.stage import StageRun
from tasks._stage import StageCache, execute


@task(name="verify-release")
def verify_release(source: str, root: str, version: str | None) -> dict[str, Any]:
    """Refuse a release whose sha256 does not match its declared (or any known) version."""
    registry = load_registry(user_registry(Path(root)))
    result = verify(Path(source), version, registry, hash_cache(Path(root)))
    require_verified(result, registry)
    return {"version": result.version, "sha256": result.sha256, "size": result.size}


def ingest_spec(source: str, root: str, cfg: core.IngestConfig) -> StageRun:
    digest = file_sha256(Path(source), hash_cache(Path(root)))
    return StageRun("ingest", core.PARSER_VERSION, cfg, {"source": digest}, Path(root))


@task(name="ingest", cache_policy=StageCache(spec=ingest_spec), persist_result=True)
def ingest(source: str, root: str, cfg: core.IngestConfig, force: bool = False) -> str:
    """Stream the release into Parquet tables under ``<root>/ingest/<key>``."""
    run = ingest_spec(source, root, cfg)

    def build(tmp: Path) -> dict[str, Any]:
        fields = core.ingest(Path(source), tmp, cfg)
        fields["source"]["sha256"] = run.inputs["source"]
        return fields

    return execute(run, build, force)
