"""Index stage: one leakage-free retrieval index per split strategy, built from that split's training part."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from mard_core import retrieval
from mard_core.stage import StageRun
from mard_core.stages import StageCall
from tasks._stage import StageCache, execute

INDEX_VERSION = "1"


def index_spec(call: StageCall) -> StageRun:
    return StageRun("index", INDEX_VERSION, call.cfg.retrieval, call.keys(), Path(call.root))


@task(name="index", cache_policy=StageCache(spec=index_spec), persist_result=True)
def build_index(call: StageCall, force: bool = False) -> str:
    """Write ``index/<key>/<strategy>/`` for every split strategy."""
    dirs = {k: Path(v) for k, v in call.dirs.items()}
    return execute(
        index_spec(call),
        lambda tmp: retrieval.write_indexes(
            dirs["ingest"], dirs["label"], dirs["splits"], call.cfg.retrieval, tmp
        ),
        force,
    )
