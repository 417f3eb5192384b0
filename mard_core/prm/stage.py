"""The PRM stage's work: verified step labels (and Math-Shepherd rollouts), PRM training and evaluation,
screening of the teachers' trajectories with a held-out audit. ``tasks/prm.py`` wraps :func:`build`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import polars as pl

from mard_core.generate import TEACHERS_FILE, load_teachers, read_trajectories
from mard_core.metrics.plots import roc_plot
from mard_core.prm import labels, screen
from mard_core.prm.config import PRMConfig, ScreenConfig
from mard_core.prm.model import PRM, evaluate, examples_from_labels
from mard_core.stage import read_manifest
from mard_core.teachers.base import make_backend
from mard_core.verifier import Facts


def _rollouts(
    train: pl.DataFrame, step_labels: pl.DataFrame, teachers_file: str, models_dir: Path, cfg: ScreenConfig
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Math-Shepherd labels for a few trajectories from a sampled teacher, and their agreement with the
    verifier."""
    rows = (
        train.filter(pl.col("steps").list.len() > 0)
        .sort(labels.TRAJECTORY_KEY)
        .head(cfg.rollout_trajectories)
    )
    spec = next(
        t for t in load_teachers(teachers_file, {"models": str(models_dir)}) if t.name == cfg.rollout_teacher
    )
    backend = make_backend(spec.backend)
    try:
        params = dataclasses.replace(spec.params(seed=0), max_tokens=cfg.rollout_max_tokens)
        scores = labels.rollout_labels(
            rows.to_dicts(), labels.backend_complete_fn(backend, params), cfg.rollout_k
        )
    finally:
        backend.close()
    table = pl.DataFrame(
        [
            {**{c: r[c] for c in labels.TRAJECTORY_KEY}, "step": i + 1, "rollout_score": s}
            for r, row_scores in zip(rows.to_dicts(), scores, strict=True)
            for i, s in enumerate(row_scores)
        ]
    )
    joined = table.join(step_labels, on=[*labels.TRAJECTORY_KEY, "step"], how="inner")
    return table, labels.agreement(joined["label"].to_list(), joined["rollout_score"].to_list())


def build(
    ingest_dir: Path,
    splits_dir: Path,
    models_dir: Path,
    teachers_dir: Path,
    cfg: PRMConfig,
    screen_cfg: ScreenConfig,
    work: Path,
) -> dict[str, Any]:
    """The PRM stage's output in ``work``: step labels, rollout labels, the trained PRM, its quality against
    the verifier, the screening threshold, kept/rejected trajectories and their held-out audit."""
    teachers = read_manifest(teachers_dir) or {}
    split = teachers["split"]
    facts = Facts.from_tables(
        pl.read_parquet(ingest_dir / "drugs.parquet"), pl.read_parquet(ingest_dir / "drug_proteins.parquet")
    )
    proteins = (
        pl.read_parquet(ingest_dir / "drug_proteins.parquet")["gene_name"]
        .drop_nulls()
        .unique()
        .sort()
        .to_list()
    )
    teacher_train = read_trajectories(teachers_dir / "train", "train")
    train = labels.with_corruptions(teacher_train, proteins)  # incorrect steps to learn from
    valid = labels.with_corruptions(read_trajectories(teachers_dir / "eval", "valid"), proteins)
    train_labels, valid_labels = (
        labels.label_trajectories(train, facts),
        labels.label_trajectories(valid, facts),
    )
    train_labels.write_parquet(work / "step_labels.parquet")
    agreement: dict[str, Any] = {}
    if screen_cfg.rollout_trajectories:
        rollouts, agreement = _rollouts(
            teacher_train, train_labels, str(teachers_dir / TEACHERS_FILE), models_dir, screen_cfg
        )
        rollouts.write_parquet(work / "rollout_labels.parquet")
    prm_cfg = cfg if cfg.base_model else dataclasses.replace(cfg, base_model=str(models_dir / "prm-base"))
    prm = PRM.create(prm_cfg)
    train_stats = prm.train(examples_from_labels(train, train_labels))
    quality = evaluate(prm, valid, valid_labels)
    roc_plot(
        {name: (pts["fpr"], pts["tpr"]) for name, pts in quality.pop("roc").items() if pts["fpr"]},
        work / "roc.png",
    )
    prm.save(work / "model")
    scored_valid = prm.score_trajectories(
        valid
    )  # corrupted copies keep their answers: threshold sees bad steps
    threshold = screen.choose_threshold(
        scored_valid[screen_cfg.score_column].to_list(),
        scored_valid["correct"].fill_null(False).to_list(),
        screen_cfg.target_precision,
    )
    judged = screen.judge(prm.score_trajectories(teacher_train), threshold, screen_cfg.score_column)
    kept, rejected = screen.screen(judged, threshold, screen_cfg.score_column)
    held_out = pl.concat(
        [
            pl.read_parquet(splits_dir / split / f"{p}.parquet").select("drug_a", "drug_b")
            for p in ("valid", "test")
        ]
    )
    screen.assert_no_test_pairs(
        pl.concat([kept.select("drug_a", "drug_b"), rejected.select("drug_a", "drug_b")]), held_out
    )
    for name, frame in (("kept", kept), ("rejected", rejected)):
        frame.drop("accepted", "reject_reason").write_parquet(work / f"{name}.parquet")
    audit = pl.concat([kept, rejected]).select(
        "drug_a",
        "drug_b",
        pl.min_horizontal("drug_a", "drug_b").alias("lo"),
        pl.max_horizontal("drug_a", "drug_b").alias("hi"),
    )
    held = (
        held_out.select(
            pl.min_horizontal("drug_a", "drug_b").alias("lo"),
            pl.max_horizontal("drug_a", "drug_b").alias("hi"),
        )
        .unique()
        .with_columns(in_held_out=pl.lit(True))
    )
    (
        audit.join(held, on=["lo", "hi"], how="left")
        .with_columns(pl.col("in_held_out").fill_null(False))
        .select("drug_a", "drug_b", "in_held_out")
        .write_parquet(work / "screen_audit.parquet")
    )
    rates = screen.acceptance_rates(judged)
    rates.write_parquet(work / "acceptance.parquet")
    metrics = {
        **quality,
        "threshold": threshold,
        "kept": kept.height,
        "rejected_informative": rejected.height,
        "train": train_stats,
        "rollout_agreement": agreement,
    }
    (work / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    return {"split": split, "metrics": metrics}
