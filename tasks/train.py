"""Student stages: LoRA SFT with the mirror KL term, then PRM-weighted DPO. Each resumes from its
checkpoints."""

from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task

from mard_core.generate import drug_names
from mard_core.negatives import family_subtypes
from mard_core.prm.model import PRM
from mard_core.retrieval import RetrievalIndex
from mard_core.stage import StageRun
from mard_core.stages import StageCall
from mard_core.student_prompt import StudentView
from mard_core.taxonomy import load_taxonomy
from mard_core.training import MERGED_DIR, RUN_DIR, student_dir
from mard_core.training.config import SFTConfig
from mard_core.training.data import build_sft_examples, student_examples
from mard_core.training.dpo import build_preference_pairs, prm_score_fn, student_pairs, train_dpo
from mard_core.training.sft import train_sft
from mard_core.training.student import save_merged
from tasks._stage import StageCache, execute
from tasks._tracking import log_stage

TRAIN_VERSION = "2"  # 2: merged student saved beside the adapter


def _finish(work: Path) -> None:
    """Merge the final student for serving; drop checkpoints (they only serve resumption)."""
    save_merged(student_dir(work), work / MERGED_DIR)
    for checkpoint in (work / RUN_DIR).glob("checkpoint-*"):
        shutil.rmtree(checkpoint)


def _summary(result: Any) -> dict[str, Any]:
    return {
        "steps": result.steps,
        "train_loss": result.train_loss,
        "train_tokens": result.train_tokens,
        "train_s": round(result.train_s, 2),
        "tokens_per_s": round(result.tokens_per_s, 1),
        **result.extra,
    }


def _view(call: StageCall) -> StudentView:
    """The student's view of the queries of the split it learns from (that split's retrieval index)."""
    index = RetrievalIndex.load(Path(call.dirs["index"]) / call.cfg.teachers.split)
    return StudentView(
        index.retrieve, drug_names(pl.read_parquet(Path(call.dirs["ingest"]) / "drugs.parquet"))
    )


def _sft_config(call: StageCall) -> SFTConfig:
    """``sft``; the ablation stage ``sft-no-mirror`` is the same SFT with mirror_lambda 0."""
    cfg: SFTConfig = call.cfg.sft
    return dataclasses.replace(cfg, mirror_lambda=0.0) if call.stage == "sft-no-mirror" else cfg


def sft_spec(call: StageCall) -> StageRun:
    return StageRun(call.stage, TRAIN_VERSION, _sft_config(call), call.keys(), Path(call.root))


@task(name="sft", cache_policy=StageCache(spec=sft_spec), persist_result=True)
def sft(call: StageCall, force: bool = False) -> str:
    """Mirror-augmented LoRA SFT on the screened trajectories; resumes from the last checkpoint after a
    crash."""
    run, cfg = sft_spec(call), _sft_config(call)
    prm_dir, models_dir = call.dirs["prm"], call.dirs["models"]

    def build(work: Path) -> dict[str, Any]:
        rows = pl.read_parquet(Path(prm_dir) / "kept.parquet").to_dicts()
        examples = student_examples(build_sft_examples(rows), _view(call))
        resolved = dataclasses.replace(
            cfg,
            output_dir=str(work / RUN_DIR),
            base_model=cfg.base_model or str(Path(models_dir) / "student-base"),
        )
        result = train_sft(resolved, examples, resume=True)
        _finish(work)
        fields = {"examples": len(examples), "metrics": _summary(result)}
        log_stage(run, metrics=fields["metrics"])
        return fields

    return execute(run, build, force, resume=True)


def dpo_spec(call: StageCall) -> StageRun:
    return StageRun("dpo", TRAIN_VERSION, call.cfg.dpo, call.keys(), Path(call.root))


@task(name="dpo", cache_policy=StageCache(spec=dpo_spec), persist_result=True)
def dpo(call: StageCall, force: bool = False) -> str:
    """PRM-weighted DPO from the SFT student: screened trajectories against hard negatives and PRM rejects."""
    run, cfg = dpo_spec(call), call.cfg.dpo
    sft_dir, prm_dir, ingest_dir = call.dirs["sft"], call.dirs["prm"], call.dirs["ingest"]

    def build(work: Path) -> dict[str, Any]:
        proteins = (
            pl.read_parquet(Path(ingest_dir) / "drug_proteins.parquet")["gene_name"]
            .drop_nulls()
            .unique()
            .sort()
        )
        pairs = build_preference_pairs(
            pl.read_parquet(Path(prm_dir) / "kept.parquet").to_dicts(),
            pl.read_parquet(Path(prm_dir) / "rejected.parquet").to_dicts(),
            siblings=family_subtypes(load_taxonomy()),
            proteins=proteins.to_list(),
            score_fn=prm_score_fn(PRM.load(Path(prm_dir) / "model")),
        )
        result = train_dpo(
            dataclasses.replace(cfg, output_dir=str(work / RUN_DIR)),
            student_dir(sft_dir),
            student_pairs(pairs, _view(call)),
        )
        _finish(work)
        fields = {
            "pairs": len(pairs),
            "negative_kinds": dict(Counter(p.kind for p in pairs)),
            "metrics": _summary(result),
        }
        log_stage(run, metrics=fields["metrics"])
        return fields

    return execute(run, build, force, resume=True)
