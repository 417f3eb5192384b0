"""Evaluation harness: every system (baselines, teachers, the student, hosted endpoints) answers the same test
queries through the same code and is scored by the same metrics.

Protocol for one system on one split strategy (:func:`evaluate_system`):

* Test pairs: ``<split_dir>/<strategy>/test.parquet`` (canonical order, label relative to it), capped at
  ``max_test_pairs`` by a seeded sample, each presented in a seeded random A/B order
  (:func:`~mard_core.metrics.present_in_random_order`); the gold label is mirrored for swapped pairs.
* Evidence: the strategy's retrieval index (built from that split's training part only).
* Mirror consistency: the first ``max_mirror_pairs`` sampled pairs are asked again as (B, A), with the
  evidence retrieved for that order.
* Calibration: when the system gives confidences, an isotonic map is fitted on its predictions for the VALID
  part (``max_valid_pairs`` of it, presented the same way) and applied to the test confidences; ECE and Brier
  are reported raw and calibrated (``ece``/``brier`` vs ``ece_calibrated``/``brier_calibrated``). A
  no-answer counts with confidence 0; an answer without a confidence is left out of calibration
  (``calibration_missing``). With no valid part, or ``calibrate_on_valid`` off, only raw values appear.
* MFS (:mod:`mard_core.metrics.mfs`) over the chains of systems that write them.
* Cost per 1k predictions from the measured tokens and wall time of the test predictions only.

Production serving: the merged student served by vLLM's OpenAI-compatible server is a ``student:<name>`` (or
``endpoint:<name>``) system whose ``backend`` is ``{"backend": "vllm", ...}`` or ``{"backend": "openai",
"base_url": ...}``; :class:`BackendSystem` queries it with the very prompts and parser used here.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import polars as pl

from mard_core.errors import InputError, MardError
from mard_core.metrics import (
    LabelFormatError,
    PriceTable,
    brier,
    calibrate,
    confusion,
    cost_per_1k,
    ece,
    label_metrics,
    mirror_consistency,
    present_in_random_order,
    rare_drug_bins,
    reliability_table,
    split_label,
)
from mard_core.metrics.mfs import ChainVerifier, aggregate_mfs
from mard_core.metrics.plots import confusion_plot, rare_drug_plot, reliability_plot
from mard_core.prm.labels import Facts
from mard_core.prompts import DrugRef, parse_completion, render_prompt
from mard_core.retrieval import Evidence, RetrievalIndex
from mard_core.splits import STRATEGIES
from mard_core.stage import write_atomic
from mard_core.taxonomy import Taxonomy, load_taxonomy
from mard_core.teachers.base import (
    Backend,
    GenerationParams,
    config_from_mapping,
    fill_placeholders,
    make_backend,
)

KINDS = ("baseline", "teacher", "student", "endpoint")
_NON_SCALAR = ("reliability", "rare_drug_bins", "confusion_family", "calibration_data")
_FILE_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


# --- queries, predictions, systems -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """An ordered query as presented: A = ``drug_a``, B = ``drug_b``; names (primary first) and evidence."""

    drug_a: str
    drug_b: str
    names_a: tuple[str, ...]
    names_b: tuple[str, ...]
    evidence: tuple[Evidence, ...] = ()

    @property
    def ref_a(self) -> DrugRef:
        return DrugRef(self.drug_a, self.names_a[0])

    @property
    def ref_b(self) -> DrugRef:
        return DrugRef(self.drug_b, self.names_b[0])


@dataclass(frozen=True)
class Prediction:
    """A system's answer: label in the query orientation (None: no answer), confidence in [0, 1] (None: not
    given), the completion text with its reasoning chain (None for systems without chains) and token counts."""

    label: str | None
    confidence: float | None = None
    text: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class System(Protocol):
    """Anything that answers queries. ``kind`` is one of :data:`KINDS`; ``possibly_contaminated`` flags hosted
    models that may have seen DrugBank in pre-training."""

    name: str
    kind: str
    possibly_contaminated: bool

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        """One prediction per query, in query order."""
        ...

    def close(self) -> None:
        """Release resources (idempotent)."""
        ...


class BaseSystem:
    """Defaults for systems without resources: a clean baseline."""

    name: str = "system"
    kind: str = "baseline"
    possibly_contaminated: bool = False

    def close(self) -> None:
        """Nothing to release."""


class BackendSystem(BaseSystem):
    """A generation backend answering through the prompts format: one greedy completion per query, parsed by
    :func:`mard_core.prompts.parse_completion` (teachers zero-shot, the student, hosted endpoints, vLLM)."""

    def __init__(self, backend: Backend, name: str, kind: str, params: GenerationParams | None = None,
                 possibly_contaminated: bool = False) -> None:
        if kind not in KINDS:
            raise InputError(f"system {name!r}: kind {kind!r} is not one of {KINDS}")
        self.backend = backend
        self.name, self.kind, self.possibly_contaminated = name, kind, possibly_contaminated
        self.params = params or GenerationParams(temperature=0.0)

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        prompts = [render_prompt(q.ref_a, q.ref_b, q.evidence) for q in queries]
        outputs = self.backend.generate(prompts, replace(self.params, n=1)) if prompts else []
        if len(outputs) != len(queries):
            raise MardError(f"system {self.name!r}: backend returned {len(outputs)} results for {len(queries)} prompts")
        predictions = []
        for query, (completion, *_) in zip(queries, outputs, strict=True):
            parsed = parse_completion(completion.text, query.names_a, query.names_b)
            answer = parsed.answer
            label = answer.label if answer is not None and all(answer.label.split("/")) else None
            predictions.append(Prediction(label, answer.confidence if label else None, completion.text,
                                          completion.prompt_tokens, completion.completion_tokens))
        return predictions

    def close(self) -> None:
        self.backend.close()


def make_queries(pairs: Sequence[tuple[str, str]], index: RetrievalIndex, facts: Facts) -> list[Query]:
    """Queries for ordered (A, B) pairs, with names from ``facts`` and evidence from ``index``."""
    return [Query(a, b, facts.drug_names(a), facts.drug_names(b), tuple(index.retrieve(a, b))) for a, b in pairs]


# --- configuration and the system registry ---------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how much of it. ``systems``: names (``majority``) or mappings with a ``name`` and
    that system's options (see :data:`SYSTEMS`) plus an optional ``strategies`` list restricting where it runs (a
    student is evaluated only on the split it learned from). ``device``: what self-hosted cost is priced as
    (cpu | gpu). The default systems name the pipeline's models through placeholders ({models}, {sft},
    {sft_no_mirror}, {dpo}, {split})."""

    strategies: tuple[str, ...] = ("random", "cold_drug", "cold_pair", "temporal")  # those the splits stage built
    max_test_pairs: int = 120
    max_valid_pairs: int = 60
    seed: int = 0
    mirror: bool = True
    max_mirror_pairs: int = 60
    calibrate_on_valid: bool = True
    n_bins: int = 10
    prices: PriceTable = field(default_factory=PriceTable)
    device: str = "cpu"
    systems: tuple[str | dict[str, Any], ...] = (
        "majority", "drug_prior", "knowledge_rules", "similarity", "feature_mlp",
        {"name": "teacher:tiny-llama", "backend": {"backend": "hf", "model": "{models}/tiny-llama", "device": "auto"},
         "max_tokens": 96, "strategies": ["{split}"]},
        {"name": "student:sft-no-mirror", "model": "{sft_no_mirror}", "max_tokens": 160, "strategies": ["{split}"]},
        {"name": "student:sft", "model": "{sft}", "max_tokens": 160, "strategies": ["{split}"]},
        {"name": "student:mard", "model": "{dpo}", "max_tokens": 160, "strategies": ["{split}"]},
    )

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise InputError(f"EvalConfig.strategies: unknown {unknown}; expected some of {list(STRATEGIES)}")
        for name, minimum in (("max_test_pairs", 1), ("max_valid_pairs", 0), ("max_mirror_pairs", 0), ("n_bins", 1)):
            if getattr(self, name) < minimum:
                raise InputError(f"EvalConfig.{name}={getattr(self, name)}: must be >= {minimum}")
        if self.device not in ("cpu", "gpu"):
            raise InputError(f"EvalConfig.device {self.device!r}: expected 'cpu' or 'gpu'")
        for spec in self.system_specs():
            if spec["name"].split(":", 1)[0] not in SYSTEMS:
                raise InputError(f"EvalConfig.systems: unknown system {spec['name']!r}; known kinds: {sorted(SYSTEMS)}")

    def system_specs(self) -> list[dict[str, Any]]:
        """Every entry of ``systems`` as a mapping with a ``name``."""
        specs = [{"name": s} if isinstance(s, str) else dict(s) for s in self.systems]
        for spec in specs:
            if not isinstance(spec.get("name"), str) or not spec["name"]:
                raise InputError(f"EvalConfig.systems: entry {spec!r} needs a 'name'")
        names = [s["name"] for s in specs]
        if len(set(names)) != len(names):
            raise InputError(f"EvalConfig.systems: duplicate names in {names}")
        return specs


@dataclass(frozen=True)
class SystemContext:
    """What a system factory may use: the split's TRAIN part only (baselines fit on it), drug tables, the
    taxonomy and placeholder values (e.g. ``{"models": "/runs/models"}``) for paths in backend specs."""

    strategy: str
    train: pl.DataFrame
    drugs: pl.DataFrame
    drug_proteins: pl.DataFrame
    taxonomy: Taxonomy
    placeholders: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, ingest_dir: str | Path, split_dir: str | Path, strategy: str,
             placeholders: Mapping[str, str] | None = None) -> SystemContext:
        """From the ingest tables and ``<split_dir>/<strategy>/train.parquet``."""
        return cls(strategy, read_part(split_dir, strategy, "train"), _read(Path(ingest_dir) / "drugs.parquet"),
                   _read(Path(ingest_dir) / "drug_proteins.parquet"), load_taxonomy(), dict(placeholders or {}))


SystemFactory = Callable[[Mapping[str, Any], SystemContext], System]


_GENERATION_KEYS = ("temperature", "top_p", "max_tokens", "seed", "stop")


def _backend_system(kind: str, default_contaminated: bool) -> SystemFactory:
    """Factory of :class:`BackendSystem`: options ``backend`` (a ``make_backend`` spec), or for students
    ``model`` (+ ``device``, ``dtype``, ``batch_size``) for the transformers backend; generation options
    ``temperature`` (default 0), ``top_p``, ``max_tokens``, ``seed``, ``stop``; ``possibly_contaminated``."""

    def build(spec: Mapping[str, Any], ctx: SystemContext) -> System:
        name = spec["name"]
        options = fill_placeholders({k: v for k, v in spec.items() if k != "name"}, ctx.placeholders, f"system {name!r}")
        contaminated = bool(options.pop("possibly_contaminated", default_contaminated))
        generation = {k: options.pop(k) for k in _GENERATION_KEYS if k in options}
        params = config_from_mapping(GenerationParams, {"temperature": 0.0, **generation}, f"system {name!r}")
        if "backend" in options:
            backend_spec = options.pop("backend")
        elif kind == "student" and "model" in options:
            backend_spec = {"backend": "hf", **{k: options.pop(k) for k in ("model", "device", "dtype", "batch_size")
                                                if k in options}}
        else:
            alternative = " or a 'model'" if kind == "student" else ""
            raise InputError(f"system {name!r}: needs a 'backend' spec{alternative}")
        if options:
            raise InputError(f"system {name!r}: unknown options {sorted(options)}")
        return BackendSystem(make_backend(backend_spec), name, kind, params, contaminated)

    return build


def _baseline(class_name: str) -> SystemFactory:
    """Factory of a baseline of :mod:`mard_core.baselines` (imported here: that module imports this one)."""

    def build(spec: Mapping[str, Any], ctx: SystemContext) -> System:
        from mard_core import baselines

        options = {k: v for k, v in spec.items() if k != "name"}
        return getattr(baselines, class_name).from_context(ctx, spec["name"], **options)

    return build


SYSTEMS: dict[str, SystemFactory] = {
    "majority": _baseline("MajorityBaseline"),
    "drug_prior": _baseline("DrugPriorBaseline"),
    "knowledge_rules": _baseline("KnowledgeRulesBaseline"),
    "similarity": _baseline("SimilarityBaseline"),
    "feature_mlp": _baseline("FeatureMLPBaseline"),
    "teacher": _backend_system("teacher", default_contaminated=False),
    "student": _backend_system("student", default_contaminated=False),
    "endpoint": _backend_system("endpoint", default_contaminated=True),
}
"""System kinds by name prefix: ``teacher:<name>``, ``student:<name>`` and ``endpoint:<name>`` (hosted,
``possibly_contaminated`` unless set false) wrap a backend; the others are the baselines."""


def build_system(spec: Mapping[str, Any] | str, ctx: SystemContext) -> System:
    """The system a config entry names (``"majority"``, ``{"name": "student:mard", "model": ...}``)."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    prefix = str(spec.get("name", "")).split(":", 1)[0]
    if prefix not in SYSTEMS:
        raise InputError(f"unknown system {spec.get('name')!r}; known kinds: {sorted(SYSTEMS)}")
    return SYSTEMS[prefix](spec, ctx)


# --- evaluation ------------------------------------------------------------------------------------------------


class EvalResult(NamedTuple):
    """Metrics of one system on one strategy (scalars plus the tables named in ``_NON_SCALAR``) and its
    per-query predictions."""

    metrics: dict[str, Any]
    predictions: pl.DataFrame


def _read(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: not found")
    return pl.read_parquet(path)


def read_part(split_dir: str | Path, strategy: str, part: str) -> pl.DataFrame:
    """``<split_dir>/<strategy>/<part>.parquet``."""
    df = _read(Path(split_dir) / strategy / f"{part}.parquet")
    missing = [c for c in ("drug_a", "drug_b", "label") if c not in df.columns]
    if missing:
        raise InputError(f"{Path(split_dir) / strategy / f'{part}.parquet'}: missing columns {missing}")
    return df


def drug_train_counts(train: pl.DataFrame) -> dict[str, int]:
    """Number of training pairs each drug appears in."""
    counts = pl.concat([train["drug_a"], train["drug_b"]]).value_counts()
    return dict(zip(counts[counts.columns[0]].to_list(), counts["count"].to_list(), strict=True))


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


def _confidences(preds: Sequence[Prediction], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray, int] | None:
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


def _valid_calibrator(system: System, split_dir: Path, strategy: str, index: RetrievalIndex, facts: Facts,
                      cfg: EvalConfig) -> tuple[Callable[[Any], np.ndarray], pl.DataFrame] | None:
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


def _calibration_metrics(preds: Sequence[Prediction], correct: Sequence[bool], n_bins: int,
                         calibrator: Callable[[Any], np.ndarray] | None) -> tuple[dict[str, Any], list[float | None]]:
    """Calibration scalars plus the reliability table (of the calibrated confidences when a calibrator is
    given), and each prediction's calibrated confidence (None without a calibrator or a confidence)."""
    rows = _confidences(preds, correct)
    if rows is None or rows[0].size == 0:
        return {}, [None] * len(preds)
    conf, flags, missing = rows
    out: dict[str, Any] = {"calibration_n": int(conf.size), "calibration_missing": missing,
                           "ece": ece(conf, flags, n_bins), "brier": brier(conf, flags)}
    final = conf
    calibrated: list[float | None] = [None] * len(preds)
    if calibrator is not None:
        final = calibrator(conf)
        out.update(ece_calibrated=ece(final, flags, n_bins), brier_calibrated=brier(final, flags))
        rows = [i for i, p in enumerate(preds) if p.label is not None and p.confidence is not None]
        mapped = calibrator([preds[i].confidence for i in rows]) if rows else []
        for i, value in zip(rows, mapped, strict=True):
            calibrated[i] = float(value)
    out["calibrated"] = calibrator is not None
    out["reliability"] = reliability_table(final, flags, n_bins)
    return out, calibrated


def evaluate_system(system: System, split_dir: str | Path, strategy: str, index: RetrievalIndex, facts: Facts,
                    train_counts: Mapping[str, int], cfg: EvalConfig,
                    taxonomy: Taxonomy | None = None, test: pl.DataFrame | None = None) -> EvalResult:
    """Score ``system`` on the test part of ``<split_dir>/<strategy>`` (see the module doc for the protocol).

    ``index``: that strategy's retrieval index; ``facts``: DrugBank facts for names and MFS;
    ``train_counts``: training pairs per drug (:func:`drug_train_counts`) for the rare-drug bins;
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

    metrics: dict[str, Any] = {"system": system.name, "strategy": strategy, "kind": system.kind,
                               "possibly_contaminated": system.possibly_contaminated}
    scores = label_metrics(gold, labels, seed=cfg.seed)
    lo, hi = scores.pop("exact_accuracy_ci95")  # type: ignore[misc]
    metrics.update(scores, exact_accuracy_ci95_lo=lo, exact_accuracy_ci95_hi=hi)

    mirror_labels: list[str | None] = [None] * len(preds)
    n_mirror = min(len(queries), cfg.max_mirror_pairs) if cfg.mirror else 0
    if n_mirror:
        reversed_pairs = [(b, a) for a, b in _ordered(shown)[:n_mirror]]
        mirrored = checked_predictions(system, make_queries(reversed_pairs, index, facts))
        mirror_labels[:n_mirror] = [p.label for p in mirrored]
        metrics["mirror_consistency"] = mirror_consistency(labels[:n_mirror], mirror_labels[:n_mirror])
    metrics["n_mirror"] = n_mirror

    tax = taxonomy or load_taxonomy()
    verifier = ChainVerifier(facts, tax)
    chains = [verifier.score(p.text, q.ref_a, q.ref_b, q.evidence) if p.text else None
              for p, q in zip(preds, queries, strict=True)]
    if any(c is not None for c in chains):
        metrics.update(aggregate_mfs(chains, correct))

    fitted = _valid_calibrator(system, split_dir, strategy, index, facts, cfg)
    calibration, calibrated = _calibration_metrics(preds, correct, cfg.n_bins, fitted[0] if fitted else None)
    metrics.update(calibration)
    if fitted is not None:
        metrics["calibration_data"] = fitted[1]

    prompt_tokens = sum(p.prompt_tokens for p in preds)
    completion_tokens = sum(p.completion_tokens for p in preds)
    cost = cost_per_1k(prompt_tokens, completion_tokens, wall_s, len(preds), cfg.prices,
                       cfg.device)  # type: ignore[arg-type]
    metrics.update({f"cost_{k}": v for k, v in cost.items()}, wall_s=wall_s)
    metrics["rare_drug_bins"] = rare_drug_bins(shown, train_counts, correct)
    metrics["confusion_family"] = confusion(gold, labels, "family")

    predictions = shown.select("drug_a", "drug_b", "query_a", "query_b", "swapped", "gold").with_columns(
        pl.lit(system.name).alias("system"), pl.lit(strategy).alias("strategy"),
        pl.Series("pred", labels, dtype=pl.String), pl.Series("correct", correct, dtype=pl.Boolean),
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


def planned_runs(cfg: EvalConfig, placeholders: Mapping[str, str] | None = None) -> list[tuple[dict[str, Any], str]]:
    """(system spec, strategy) for every configured system on every strategy it runs on (its ``strategies``
    option, placeholders filled, restricts them); the returned specs no longer carry ``strategies``."""
    runs = []
    for strategy in cfg.strategies:
        for spec in cfg.system_specs():
            only = spec.pop("strategies", None)
            if only is None or strategy in fill_placeholders(list(only), placeholders or {}, f"system {spec['name']!r}"):
                runs.append((spec, strategy))
    return runs


def evaluate_one(spec: Mapping[str, Any], strategy: str, cfg: EvalConfig, ingest_dir: str | Path,
                 split_dir: str | Path, index_dir: str | Path, placeholders: Mapping[str, str] | None = None,
                 test: pl.DataFrame | None = None) -> EvalResult:
    """One system on one strategy (index at ``<index_dir>/<strategy>``), on its test part or on ``test``; the
    system is built (and, for baselines, fitted on that split's train part) here and closed after."""
    taxonomy = load_taxonomy()
    drugs, proteins = _read(Path(ingest_dir) / "drugs.parquet"), _read(Path(ingest_dir) / "drug_proteins.parquet")
    train = read_part(split_dir, strategy, "train")
    ctx = SystemContext(strategy, train, drugs, proteins, taxonomy, dict(placeholders or {}))
    system = build_system(spec, ctx)
    try:
        return evaluate_system(system, split_dir, strategy, RetrievalIndex.load(Path(index_dir) / strategy),
                               Facts.from_tables(drugs, proteins), drug_train_counts(train), cfg, taxonomy, test)
    finally:
        system.close()


def evaluate_all(cfg: EvalConfig, ingest_dir: str | Path, split_dir: str | Path, index_dir: str | Path,
                 placeholders: Mapping[str, str] | None = None) -> list[EvalResult]:
    """Every configured system on every strategy it runs on."""
    return [evaluate_one(spec, strategy, cfg, ingest_dir, split_dir, index_dir, placeholders)
            for spec, strategy in planned_runs(cfg, placeholders)]


# --- leaderboard and report ---------------------------------------------------------------------------------------


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def leaderboard(results: Sequence[EvalResult]) -> pl.DataFrame:
    """One row per system x strategy with every scalar metric and the contamination flag, best exact accuracy
    first within each strategy."""
    if not results:
        raise InputError("leaderboard: no results")
    rows = [{k: v for k, v in r.metrics.items() if k not in _NON_SCALAR and _scalar(v)} for r in results]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    df = pl.DataFrame([{c: row.get(c) for c in columns} for row in rows], infer_schema_length=None)
    return df.sort(["strategy", "exact_accuracy", "system"], descending=[False, True, False], nulls_last=True)


_MARKDOWN_COLUMNS = (
    ("system", "System"), ("strategy", "Split"), ("n", "n"), ("exact_accuracy", "Exact"),
    ("family_accuracy", "Family"), ("subtype_macro_f1", "Subtype F1"), ("direction_accuracy", "Direction"),
    ("direction_accuracy_given_mechanism", "Dir. given mech."), ("kappa", "Kappa"),
    ("mirror_consistency", "Mirror"), ("mfs_mean", "MFS"), ("mfs_on_correct", "MFS correct"),
    ("correct_and_verified", "Correct+verified"), ("ece", "ECE raw"), ("ece_calibrated", "ECE cal."),
    ("cost_self_hosted_usd_per_1k", "$ self /1k"), ("cost_api_usd_per_1k", "$ API /1k"),
)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 0.01 and value != 0 else f"{value:.3f}"
    return str(value)


def leaderboard_markdown(df: pl.DataFrame) -> str:
    """A Markdown table of the main columns; possibly contaminated systems are marked with a dagger."""
    present = [(c, h) for c, h in _MARKDOWN_COLUMNS if c in df.columns]
    lines = ["| " + " | ".join(h for _, h in present) + " |", "|" + "---|" * len(present)]
    flagged = False
    for row in df.iter_rows(named=True):
        cells = [_cell(row[c]) for c, _ in present]
        if row.get("possibly_contaminated"):
            cells[0] += " †"
            flagged = True
        lines.append("| " + " | ".join(cells) + " |")
    if flagged:
        lines += ["", "† possibly contaminated: a hosted model that may have seen DrugBank in pre-training."]
    return "\n".join(lines) + "\n"


def result_stem(metrics: Mapping[str, Any]) -> str:
    """File-name stem of one result: ``<system>__<strategy>`` with unsafe characters replaced."""
    return _FILE_SAFE.sub("_", f"{metrics['system']}__{metrics['strategy']}")


def write_report(results: Sequence[EvalResult], out_dir: str | Path) -> dict[str, Path]:
    """Write ``leaderboard.parquet``, ``leaderboard.md``, ``predictions/<stem>.parquet``, the valid-part
    calibration rows ``calibration/<stem>.parquet`` (for :func:`mard_core.predict.load_calibrator`) and
    plots ``plots/<stem>_{confusion,reliability,rare_drugs}.png``; returns every path by a name."""
    out = Path(out_dir)
    board = leaderboard(results)
    paths = {"leaderboard": write_atomic(out / "leaderboard.parquet", board.write_parquet),
             "leaderboard_md": write_atomic(out / "leaderboard.md",
                                            lambda p: p.write_text(leaderboard_markdown(board), encoding="utf-8"))}
    for metrics, predictions in results:
        stem = result_stem(metrics)
        paths[f"predictions/{stem}"] = write_atomic(out / "predictions" / f"{stem}.parquet", predictions.write_parquet)
        if "calibration_data" in metrics:
            paths[f"calibration/{stem}"] = write_atomic(out / "calibration" / f"{stem}.parquet",
                                                        metrics["calibration_data"].write_parquet)
        labels, matrix = metrics["confusion_family"]
        paths[f"plots/{stem}_confusion"] = confusion_plot(labels, matrix, out / "plots" / f"{stem}_confusion.png")
        paths[f"plots/{stem}_rare_drugs"] = rare_drug_plot(metrics["rare_drug_bins"],
                                                           out / "plots" / f"{stem}_rare_drugs.png")
        if "reliability" in metrics:
            paths[f"plots/{stem}_reliability"] = reliability_plot(metrics["reliability"],
                                                                  out / "plots" / f"{stem}_reliability.png")
    return paths
