"""The release stage: the configured release file (its hash checked when ``release.verify``), or the synthetic
demo release, content-addressed like any stage output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from mard_core import synth
from mard_core.releases import hash_cache, load_registry, require_verified, user_registry, verify
from mard_core.stage import StageRun
from mard_core.stages import StageCall
from tasks._stage import StageCache, execute

RELEASE_FILE = "release.xml.zip"


def demo_spec(call: StageCall) -> StageRun:
    rel = call.cfg.release
    return StageRun(
        "demo-release",
        synth.SYNTH_VERSION,
        {"drugs": rel.demo_drugs, "seed": rel.demo_seed, "world": rel.world},
        {},
        Path(call.root),
    )


def _demo_spec_or_none(call: StageCall) -> StageRun | None:
    return None if call.cfg.release.source else demo_spec(call)


@task(name="demo-release", cache_policy=StageCache(spec=_demo_spec_or_none), persist_result=True)
def release(call: StageCall, force: bool = False) -> str:
    """``release.source`` when set (verified against the release registry when ``release.verify``; the bytes
    are hashed on every run); else the embedded default release (synthetic drugs + the real-drug fixture),
    with its world sidecar beside it; the manifest's ``world`` holds the oracle ceiling."""
    rel = call.cfg.release
    if rel.source:
        source = Path(rel.source).resolve()
        if rel.verify:
            registry = load_registry(user_registry(Path(call.root)))
            result = verify(source, rel.version, registry, hash_cache(Path(call.root)))
            require_verified(result, registry)
            get_run_logger().info(
                "release %s verified as %s (sha256 %s)", source, result.version, result.sha256[:12]
            )
        return str(source)

    def build(tmp: Path) -> dict[str, Any]:
        truth = synth.write_release(tmp / RELEASE_FILE, rel.demo_drugs, rel.demo_seed, world=rel.world)
        get_run_logger().info(
            "demo release: oracle ceiling %.3f (labels equal to the world's), rules on the records %.3f",
            truth.world["ceiling"],
            truth.world["rules_on_record"],
        )
        return {"truth": truth.to_dict(), "world": truth.world}

    return str(Path(execute(demo_spec(call), build, force)) / RELEASE_FILE)
