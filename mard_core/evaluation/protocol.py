"""How one system is evaluated on one split strategy (:func:`evaluate_system`):

* Test pairs: ``<split_dir>/<strategy>/test.parquet`` (canonical order, label relative to it), capped at
  ``max_test_pairs`` by a seeded sample, each presented in a seeded random A/B order
  (:func:`~mard_core.metrics.present_in_random_order`); the gold label is mirrored for swapped pairs.
* Evidence: the strategy's retrieval index (built from that split's training part only).
* Mirror consistency: a seeded random ``max_mirror_pairs`` of the test queries are asked again as (B, A),
  with the evidence retrieved for that order.
* Calibration: when the system gives confidences, an isotonic map is fitted on its predictions for the VALID
  part (``max_valid_pairs`` of it, presented the same way) and applied to the test confidences; ECE and Brier
  are reported raw and calibrated (``ece``/``brier`` vs ``ece_calibrated``/``brier_calibrated``). A
  no-answer counts with confidence 0; an answer without a confidence is left out of calibration
  (``calibration_missing``). With no valid part, or ``calibrate_on_valid`` off, only raw values appear.
* MFS (:mod:`mard_core.metrics.mfs`) over the chains of systems that write them.
* Intervals: every headline metric (accuracies, macro-F1, no-answer rate, mirror consistency, ECE, MFS
  aggregates) carries a 95% percentile bootstrap interval, ``<metric>_ci95_lo``/``_hi``, from
  ``n_resamples`` resamples of its pairs seeded by ``seed`` (:mod:`mard_core.metrics.stats`).
* Rare-drug strata by the rarer drug's interaction listings in the release (:func:`drug_listing_counts`), a
  count that held-out drugs have too.
* Cost per 1k test predictions (:func:`~mard_core.metrics.cost.cost_per_1k`): the system's own token counts at
  the stated self-hosted throughput, GPT-4o's o200k_base tokens of the same prompts plus the stated completion
  length at its list prices, and the measured wall time (``cost_measured_usd_per_1k``, the one value that is
  not reproducible).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from mard_core.errors import InputError, MardError
from mard_core.evaluation.catalog import build_system
from mard_core.evaluation.config import EvalConfig
from mard_core.evaluation.data import read_part, read_table
from mard_core.evaluation.systems import Prediction, Query, System, SystemContext
from mard_core.metrics.calibration import brier, calibrate, ece, ece_statistic, reliability_table
from mard_core.metrics.cost import api_prompt_tokens, cost_per_1k
from mard_core.metrics.labels import (
    LabelFormatError,
    confusion,
    interval_columns,
    label_metrics,
    mirror_agreement,
    present_in_random_order,
    rare_drug_bins,
    split_label,
)
from mard_core.metrics.mfs import ChainVerifier, aggregate_mfs, mfs_intervals
from mard_core.metrics.stats import bootstrap_ci, bootstrap_interval
from mard_core.prompts import render_prompt
from mard_core.retrieval import RetrievalIndex
from mard_core.taxonomy import Taxonomy, load_taxonomy
from mard_core.teachers.base import fill_placeholders
from mard_core.verifier import Facts


class EvalResult(NamedTuple):
    """Metrics of one system on one strategy (scalars plus the tables ``reliability``, ``rare_drug_bins``,
    ``confusion_family`` and ``calibration_data``) and its per-query predictions."""

    metrics: dict[str, Any]
    predictions: pl.DataFrame


def make_queries(pairs: Sequence[tuple[str, str]], index: RetrievalIndex, facts: Facts) -> list[Query]:
    """Queries for ordered (A, B) pairs, with names from ``facts`` and evidence from ``index``."""
    return [
        Query(a, b, facts.drug_names(a), facts.drug_names(b), tuple(index.retrieve(a, b))) for a, b in pairs
    ]


def drug_listing_counts(interactions: pl.DataFrame) -> dict[str, int]:
    """Each drug's number of interaction partners listed in the release (in its own record or in the
    partner's): the rare-drug strata's count, which drugs held out of training have as well."""
    missing = [c for c in ("drug_id", "partner_id") if c not in interactions.columns]
    if missing:
        raise InputError(f"interactions table: missing columns {missing}")
    pairs = interactions.select(pl.col("drug_id").alias("a"), pl.col("partner_id").alias("b"))
    both = pl.concat([pairs, pairs.select(pl.col("b").alias("a"), pl.col("a").alias("b"))]).unique()
    counts = both.group_by("a").len()
    return dict(zip(counts["a"].to_list(), counts["len"].to_list(), strict=True))


def _sample(df: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """At most ``n`` rows, a seeded sample independent of the input row order."""
    df = df.sort("drug_a", "drug_b", "label")
    return df if df.height <= n else df.sample(n, seed=seed).sort("drug_a", "drug_b", "label")


def checked_predictions(system: System, queries: Sequence[Query]) -> list[Prediction]:
    """The system's predictions, checked; a malformed label counts as no answer."""
    preds = system.predict(queries)
    if len(preds) != len(queries):
        raise MardError(f"system {system.name!r}: {len(preds)} predictions for {len(queries)} queries")
    out = []
    for p in preds:
        if p.confidence is not None and not 0.0 <= p.confidence <= 1.0:
            raise MardError(f"system {system.name!r}: confidence {p.confidence} outside [0, 1]")
        if p.label is not None:
            try:
                split_label(p.label)
            except LabelFormatError:
                p = replace(p, label=None, confidence=None)
        out.append(p)
    return out


def _ordered(df: pl.DataFrame) -> list[tuple[str, str]]:
    return list(df.select("query_a", "query_b").iter_rows())


def _confidences(
    preds: Sequence[Prediction], correct: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(confidence, correct, n left out) for calibration; None when the system gives no confidences."""
    if not any(p.label is not None and p.confidence is not None for p in preds):
        return None
    conf, flags, missing = [], [], 0
    for p, ok in zip(preds, correct, strict=True):
        if p.label is None:
            conf.append(0.0)
            flags.append(False)
        elif p.confidence is None:
            missing += 1
        else:
            conf.append(p.confidence)
            flags.append(ok)
    return np.asarray(conf), np.asarray(flags), missing


def _valid_calibrator(
    system: System, split_dir: Path, strategy: str, index: RetrievalIndex, facts: Facts, cfg: EvalConfig
) -> tuple[Callable[[Any], np.ndarray], pl.DataFrame] | None:
    """Isotonic map fitted on the system's VALID predictions, and the (confidence, correct) rows it used."""
    path = split_dir / strategy / "valid.parquet"
    if not cfg.calibrate_on_valid or cfg.max_valid_pairs == 0 or not path.is_file():
        return None
    valid = read_part(split_dir, strategy, "valid")
    if valid.height == 0:
        return None
    shown = present_in_random_order(_sample(valid, cfg.max_valid_pairs, cfg.seed), cfg.seed)
    preds = checked_predictions(system, make_queries(_ordered(shown), index, facts))
    correct = [p.label == g for p, g in zip(preds, shown["gold"].to_list(), strict=True)]
    rows = _confidences(preds, correct)
    if rows is None or rows[0].size == 0:
        return None
    conf, flags, _ = rows
    return calibrate(conf, flags), pl.DataFrame({"confidence": conf, "correct": flags})


def _calibration_metrics(
    preds: Sequence[Prediction],
    correct: Sequence[bool],
    cfg: EvalConfig,
    calibrator: Callable[[Any], np.ndarray] | None,
) -> tuple[dict[str, Any], list[float | None]]:
    """Calibration scalars with the ECE intervals, plus the reliability table (of the calibrated confidences
    when a calibrator is given), and each prediction's calibrated confidence (None without a calibrator or a
    confidence)."""
    rows = _confidences(preds, correct)
    if rows is None or rows[0].size == 0:
        return {}, [None] * len(preds)
    conf, flags, missing = rows
    n_bins = cfg.n_bins

    def interval(values: np.ndarray) -> tuple[float | None, float | None]:
        return bootstrap_interval(
            ece_statistic(values, flags, n_bins), values.size, cfg.n_resamples, cfg.seed
        )

    out: dict[str, Any] = {
        "calibration_n": int(conf.size),
        "calibration_missing": missing,
        "ece": ece(conf, flags, n_bins),
        "brier": brier(conf, flags),
    }
    intervals = {"ece": interval(conf)}
    final = conf
    calibrated: list[float | None] = [None] * len(preds)
    if calibrator is not None:
        final = calibrator(conf)
        out.update(ece_calibrated=ece(final, flags, n_bins), brier_calibrated=brier(final, flags))
        intervals["ece_calibrated"] = interval(final)
        answered = [i for i, p in enumerate(preds) if p.label is not None and p.confidence is not None]
        mapped: np.ndarray | list[float] = (
            calibrator([preds[i].confidence for i in answered]) if answered else []
        )
        for i, value in zip(answered, mapped, strict=True):
            calibrated[i] = float(value)
    out.update(interval_columns(intervals), calibrated=calibrator is not None)
    out["reliability"] = reliability_table(final, flags, n_bins)
    return out, calibrated


def evaluate_system(
    system: System,
    split_dir: str | Path,
    strategy: str,
    index: RetrievalIndex,
    facts: Facts,
    drug_counts: Mapping[str, int],
    cfg: EvalConfig,
    taxonomy: Taxonomy | None = None,
    test: pl.DataFrame | None = None,
) -> EvalResult:
    """Score ``system`` on the test part of ``<split_dir>/<strategy>`` (see the module doc for the protocol).

    ``index``: that strategy's retrieval index; ``facts``: DrugBank facts for names and MFS;
    ``drug_counts``: interaction listings per drug (:func:`drug_listing_counts`) for the rare-drug strata;
    ``test``: a subset of the test part to score on instead of all of it.
    """
    split_dir = Path(split_dir)
    test = read_part(split_dir, strategy, "test") if test is None else test
    if test.height == 0:
        raise InputError(f"{split_dir / strategy / 'test.parquet'}: no test pairs to evaluate")
    shown = present_in_random_order(_sample(test, cfg.max_test_pairs, cfg.seed), cfg.seed)
    queries = make_queries(_ordered(shown), index, facts)
    start = time.perf_counter()
    preds = checked_predictions(system, queries)
    wall_s = time.perf_counter() - start
    gold = shown["gold"].to_list()
    labels = [p.label for p in preds]
    correct = [lab == g for lab, g in zip(labels, gold, strict=True)]

    metrics: dict[str, Any] = {
        "system": system.name,
        "strategy": strategy,
        "kind": system.kind,
        "possibly_contaminated": system.possibly_contaminated,
    }
    metrics.update(label_metrics(gold, labels, n_resamples=cfg.n_resamples, seed=cfg.seed))

    mirror_labels: list[str | None] = [None] * len(preds)
    n_mirror = min(len(queries), cfg.max_mirror_pairs) if cfg.mirror else 0
    if n_mirror:
        asked = np.sort(np.random.default_rng(cfg.seed).choice(len(queries), n_mirror, replace=False))
        reversed_pairs = [(queries[i].drug_b, queries[i].drug_a) for i in asked]
        mirrored = checked_predictions(system, make_queries(reversed_pairs, index, facts))
        for i, p in zip(asked, mirrored, strict=True):
            mirror_labels[i] = p.label
        consistent = mirror_agreement([labels[i] for i in asked], [p.label for p in mirrored])
        metrics["mirror_consistency"] = float(consistent.mean())
        metrics.update(
            interval_columns({"mirror_consistency": bootstrap_ci(consistent, cfg.n_resamples, cfg.seed)})
        )
    metrics["n_mirror"] = n_mirror

    tax = taxonomy or load_taxonomy()
    verifier = ChainVerifier(facts, tax)
    chains = [
        verifier.score(p.text, q.ref_a, q.ref_b, q.evidence) if p.text else None
        for p, q in zip(preds, queries, strict=True)
    ]
    if any(c is not None for c in chains):
        metrics.update(aggregate_mfs(chains, correct))
        metrics.update(interval_columns(mfs_intervals(chains, correct, cfg.n_resamples, cfg.seed)))

    fitted = _valid_calibrator(system, split_dir, strategy, index, facts, cfg)
    calibration, calibrated = _calibration_metrics(preds, correct, cfg, fitted[0] if fitted else None)
    metrics.update(calibration)
    if fitted is not None:
        metrics["calibration_data"] = fitted[1]

    cost = cost_per_1k(
        sum(p.prompt_tokens for p in preds),
        sum(p.completion_tokens for p in preds),
        sum(api_prompt_tokens([render_prompt(q.ref_a, q.ref_b, q.evidence) for q in queries])),
        wall_s,
        len(preds),
        cfg.prices,
        cfg.device,
    )
    metrics.update({f"cost_{k}": v for k, v in cost.items()}, wall_s=wall_s)
    metrics["rare_drug_bins"] = rare_drug_bins(shown, drug_counts, correct)
    metrics["confusion_family"] = confusion(gold, labels, "family")

    predictions = shown.select("drug_a", "drug_b", "query_a", "query_b", "swapped", "gold").with_columns(
        pl.lit(system.name).alias("system"),
        pl.lit(strategy).alias("strategy"),
        pl.Series("pred", labels, dtype=pl.String),
        pl.Series("correct", correct, dtype=pl.Boolean),
        pl.Series("confidence", [p.confidence for p in preds], dtype=pl.Float64),
        pl.Series("confidence_calibrated", calibrated, dtype=pl.Float64),
        pl.Series("pred_mirror", mirror_labels, dtype=pl.String),
        pl.Series("text", [p.text for p in preds], dtype=pl.String),
        pl.Series("prompt_tokens", [p.prompt_tokens for p in preds], dtype=pl.Int64),
        pl.Series("completion_tokens", [p.completion_tokens for p in preds], dtype=pl.Int64),
        pl.Series("mfs", [c.mfs if c else None for c in chains], dtype=pl.Float64),
        pl.Series("mfs_checkable", [c.n_checkable if c else None for c in chains], dtype=pl.Int64),
        pl.Series("mfs_unverifiable", [c.n_unverifiable if c else None for c in chains], dtype=pl.Int64),
    )
    return EvalResult(metrics, predictions)


def planned_runs(
    cfg: EvalConfig, placeholders: Mapping[str, str] | None = None
) -> list[tuple[dict[str, Any], str]]:
    """(system spec, strategy) for every configured system on every strategy it runs on (its ``strategies``
    option, placeholders filled, restricts them); the returned specs no longer carry ``strategies``."""
    runs = []
    for strategy in cfg.strategies:
        for spec in cfg.system_specs():
            only = spec.pop("strategies", None)
            if only is None or strategy in fill_placeholders(
                list(only), placeholders or {}, f"system {spec['name']!r}"
            ):
                runs.append((spec, strategy))
    return runs


def evaluate_one(
    spec: Mapping[str, Any],
    strategy: str,
    cfg: EvalConfig,
    ingest_dir: str | Path,
    split_dir: str | Path,
    index_dir: str | Path,
    placeholders: Mapping[str, str] | None = None,
    test: pl.DataFrame | None = None,
) -> EvalResult:
    """One system on one strategy (index at ``<index_dir>/<strategy>``), on its test part or on ``test``; the
    system is built (and, for baselines, fitted on that split's train part) here and closed after."""
    taxonomy = load_taxonomy()
    drugs, proteins, interactions = (
        read_table(Path(ingest_dir) / name)
        for name in ("drugs.parquet", "drug_proteins.parquet", "interactions.parquet")
    )
    train = read_part(split_dir, strategy, "train")
    index = RetrievalIndex.load(Path(index_dir) / strategy)
    ctx = SystemContext(strategy, train, drugs, proteins, taxonomy, dict(placeholders or {}), index)
    system = build_system(spec, ctx)
    try:
        return evaluate_system(
            system,
            split_dir,
            strategy,
            index,
            Facts.from_tables(drugs, proteins),
            drug_listing_counts(interactions),
            cfg,
            taxonomy,
            test,
        )
    finally:
        system.close()


def evaluate_all(
    cfg: EvalConfig,
    ingest_dir: str | Path,
    split_dir: str | Path,
    index_dir: str | Path,
    placeholders: Mapping[str, str] | None = None,
) -> list[EvalResult]:
    """Every configured system on every strategy it runs on."""
    return [
        evaluate_one(spec, strategy, cfg, ingest_dir, split_dir, index_dir, placeholders)
        for spec, strategy in planned_runs(cfg, placeholders)
    ]
