"""Index stage: one leakage-free retrieval index per split strategy, built from that split's training part."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task

from mard_core import retrieval
from mard_core.stage import StageRun, read_manifest
from tasks._stage import StageCache, execute

INDEX_VERSION = "1"


def index_spec(ingest_dir: str, label_dir: str, splits_dir: str, root: str, cfg: retrieval.RetrievalConfig) -> StageRun:
    inputs = {"ingest": Path(ingest_dir).name, "label": Path(label_dir).name, "splits": Path(splits_dir).name}
    return StageRun("index", INDEX_VERSION, cfg, inputs, Path(root))


def _build(ingest_dir: Path, label_dir: Path, splits_dir: Path, cfg: retrieval.RetrievalConfig, tmp: Path) -> dict[str, Any]:
    drugs = pl.read_parquet(ingest_dir / "drugs.parquet")
    proteins = pl.read_parquet(ingest_dir / "drug_proteins.parquet")
    pairs = pl.read_parquet(label_dir / "ddi_pairs.parquet")
    speed = {}
    for strategy in (read_manifest(splits_dir) or {})["strategies"]:
        train = pl.read_parquet(splits_dir / strategy / "train.parquet")
        hidden = retrieval.split_hidden_drugs(strategy, drugs["drugbank_id"].to_list(), train)
        index = retrieval.RetrievalIndex.build(drugs, proteins, pairs, train, hidden, cfg)
        index.save(tmp / strategy)
        test = pl.read_parquet(splits_dir / strategy / "test.parquet").head(200)
        start = time.perf_counter()
        for a, b in test.select("drug_a", "drug_b").iter_rows():
            index.retrieve(a, b)
        speed[strategy] = round(test.height / max(time.perf_counter() - start, 1e-9), 1)
    return {"strategies": sorted(speed), "queries_per_s": speed}


@task(name="index", cache_policy=StageCache(spec=index_spec), persist_result=True)
def build_index(ingest_dir: str, label_dir: str, splits_dir: str, root: str, cfg: retrieval.RetrievalConfig,
                force: bool = False) -> str:
    """Write ``index/<key>/<strategy>/`` for every split strategy."""
    run = index_spec(ingest_dir, label_dir, splits_dir, root, cfg)
    return execute(run, lambda tmp: _build(Path(ingest_dir), Path(label_dir), Path(splits_dir), cfg, tmp), force)
