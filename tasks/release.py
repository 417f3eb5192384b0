"""The demo release stage: a synthetic DrugBank-format release, content-addressed like any stage output."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from mard_core import synth
from mard_core.stage import StageRun
from tasks._stage import StageCache, execute

RELEASE_FILE = "release.xml.zip"


def demo_spec(root: str, drugs: int, seed: int) -> StageRun:
    return StageRun("demo-release", synth.SYNTH_VERSION, {"drugs": drugs, "seed": seed}, {}, Path(root))


@task(name="demo-release", cache_policy=StageCache(spec=demo_spec), persist_result=True)
def demo_release(root: str, drugs: int, seed: int, force: bool = False) -> str:
    """Write the embedded default release (synthetic drugs merged with the real-drug fixture)."""

    def build(tmp: Path) -> dict[str, Any]:
        return {"truth": synth.write_release(tmp / RELEASE_FILE, drugs, seed).to_dict()}

    return str(Path(execute(demo_spec(root, drugs, seed), build, force)) / RELEASE_FILE)
