"""Models stage (demo): build tiny random-init models locally, loadable through `from_pretrained`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from prefect import task

from mard_core import tiny
from mard_core.generate import corpus_texts
from mard_core.prompts import DIRECTION_TOKENS
from mard_core.retrieval import RetrievalIndex
from mard_core.stage import StageRun
from mard_core.stages import StageCall
from mard_core.tiny_config import ModelsConfig
from tasks._stage import StageCache, execute

MODELS_VERSION = "2"  # 2: warm-up of the models named in models.warmup


def models_spec(call: StageCall) -> StageRun:
    return StageRun(
        "models",
        MODELS_VERSION,
        call.cfg.models,
        {**call.keys(), "split": call.cfg.teachers.split},
        Path(call.root),
    )


def _build(
    ingest_dir: Path, splits_dir: Path, index_dir: Path, cfg: ModelsConfig, split: str, work: Path
) -> dict[str, Any]:
    texts = corpus_texts(
        pl.read_parquet(splits_dir / split / "train.parquet"),
        RetrievalIndex.load(index_dir / split),
        pl.read_parquet(ingest_dir / "drugs.parquet"),
        cfg.corpus_pairs,
        cfg.size.seed,
    )
    docs = [prompt + completion for prompt, completion in zip(texts[::2], texts[1::2], strict=True)]
    models = tiny.build_demo_models(work, texts, docs, cfg, tuple(DIRECTION_TOKENS.values()))
    return {"models": models, "corpus_texts": len(texts)}


@task(name="models", cache_policy=StageCache(spec=models_spec), persist_result=True)
def build_models(call: StageCall, force: bool = False) -> str:
    """Write ``models/<key>/{tiny-llama,tiny-qwen2,tiny-mistral,student-base,prm-base}``."""
    dirs = {k: Path(v) for k, v in call.dirs.items()}
    return execute(
        models_spec(call),
        lambda work: _build(
            dirs["ingest"], dirs["splits"], dirs["index"], call.cfg.models, call.cfg.teachers.split, work
        ),
        force,
    )
