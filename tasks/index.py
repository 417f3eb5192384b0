"""Index stage: one leakage-free retrieval index per split strategy, built from that split's training part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from prefect import task

from mard_core import retrieval
from mard_core.retrieval_config import RetrievalConfig
from mard_core.stage import StageRun, read_manifest
from mard_core.stages import StageCall
from tasks._stage import StageCache, execute

INDEX_VERSION = "1"


def index_spec(call: StageCall) -> StageRun:
    return StageRun("index", INDEX_VERSION, call.cfg.retrieval, call.keys(), Path(call.root))


def _build(
    ingest_dir: Path, label_dir: Path, splits_dir: Path, cfg: RetrievalConfig, tmp: Path
) -> dict[str, Any]:
    drugs = pl.read_parquet(ingest_dir / "drugs.parquet")
    proteins = pl.read_parquet(ingest_dir / "drug_proteins.parquet")
    pairs = pl.read_parquet(label_dir / "ddi_pairs.parquet")
    strategies = (read_manifest(splits_dir) or {})["strategies"]
    for strategy in strategies:
        train = pl.read_parquet(splits_dir / strategy / "train.parquet")
        hidden = retrieval.split_hidden_drugs(strategy, drugs["drugbank_id"].to_list(), train)
        retrieval.RetrievalIndex.build(drugs, proteins, pairs, train, hidden, cfg).save(tmp / strategy)
    return {"strategies": sorted(strategies)}


@task(name="index", cache_policy=StageCache(spec=index_spec), persist_result=True)
def build_index(call: StageCall, force: bool = False) -> str:
    """Write ``index/<key>/<strategy>/`` for every split strategy."""
    dirs = {k: Path(v) for k, v in call.dirs.items()}
    return execute(
        index_spec(call),
        lambda tmp: _build(dirs["ingest"], dirs["label"], dirs["splits"], call.cfg.retrieval, tmp),
        force,
    )
