"""Baseline systems, evaluated by the same harness as the student (:mod:`mard_core.evaluation`).

All baselines are leak-free: they fit on the split's train part only (the evidence they read comes from the
strategy's retrieval index, itself built from that train part). Labels in the split are relative to the
canonical order (drug_a < drug_b); queries come in either order, so every baseline maps what it learnt into
the query orientation, except the majority class:

* ``majority``: the most frequent training label, predicted as is for every query (presentation order is
  random, so no orientation is better informed); confidence = its training share.
* ``drug_prior``: each drug's training labels seen with the drug as A (mirrored when it was drug_b); a query
  (A, B) sums A's counts and B's counts mirrored into the query orientation and predicts the most frequent
  label (confidence = its vote share); drugs without training pairs fall back to the majority.
* ``knowledge_rules``: :func:`mard_core.teachers.knowledge.infer_label` (the pharmacology rules of
  :mod:`mard_core.teachers.pharmacology`, analogue votes choosing among them) on the retrieved evidence, with
  a verified reasoning chain (its fallback is the most frequent Bidirectional training label).
* ``similarity``: the label of the most similar training pair among the retrieval index's
  ``similar_interaction`` evidence (neighbours by protein/category Jaccard and SMILES fingerprints), oriented
  by :func:`mard_core.teachers.knowledge.query_label`; analogues whose partner is the other query drug rank
  first, then by similarity (= the confidence). No analogue: the majority.
* ``feature_mlp`` (DeepDDI style): per-drug vectors from retrieval's binary features (protein-action pairs,
  categories, SMILES n-gram fingerprint; each block L2-normalised, TruncatedSVD fitted on training drugs),
  pair input = [A, B] (order-aware), a one-hidden-layer torch MLP trained on training pairs in both
  orientations (the label mirrored for (B, A)); softmax probability = confidence.
* ``bag_of_evidence``: a logistic regression on TF-IDF word 1-2-grams of the evidence sentences the student's
  prompt shows, the drugs' names replaced by role words (A, B, a drug similar to A or B, its partner) so that
  the direction is learnable; trained on the train part's pairs in both orientations with the evidence the
  strategy's index retrieves for them; probability of the predicted label = confidence.
"""

from __future__ import annotations

import re
from collections import ChainMap, Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl
import torch
from pydantic.dataclasses import dataclass
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from mard_core.errors import InputError
from mard_core.evaluation.systems import BaseSystem, Prediction, Query, SystemContext
from mard_core.metrics.labels import mirror_label
from mard_core.prompts import render_completion
from mard_core.retrieval import Evidence, RetrievalIndex, drug_features
from mard_core.taxonomy import BIDIRECTIONAL, Label, Taxonomy, load_taxonomy
from mard_core.teachers.config import KnowledgeConfig
from mard_core.teachers.knowledge import KnowledgeTeacher, query_label
from mard_core.validation import (
    CONFIG,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    parse_config,
)


def _check_train(train: pl.DataFrame) -> None:
    missing = [c for c in ("drug_a", "drug_b", "label") if c not in train.columns]
    if missing:
        raise InputError(f"baseline training pairs: missing columns {missing}")
    if train.height == 0:
        raise InputError("baseline training pairs: the train part is empty")


def _capped(train: pl.DataFrame, max_pairs: int, seed: int) -> pl.DataFrame:
    """At most ``max_pairs`` training pairs: a seeded sample, independent of the table's row order."""
    if train.height <= max_pairs:
        return train
    return train.sort("drug_a", "drug_b", "label").sample(max_pairs, seed=seed)


def _no_options(name: str, options: Mapping[str, Any]) -> None:
    if options:
        raise InputError(f"system {name!r}: takes no options, got {sorted(options)}")


def _most_common(counts: Mapping[str, float]) -> tuple[str, float]:
    """The most frequent label (ties: the alphabetically first) and its share."""
    label = min(counts, key=lambda k: (-counts[k], k))
    return label, counts[label] / sum(counts.values())


def majority_label(train: pl.DataFrame, bidirectional: bool = False) -> str | None:
    """The most frequent training label (only among Bidirectional labels with ``bidirectional``)."""
    labels = [
        lab
        for lab in train["label"].to_list()
        if not bidirectional or Label.parse(lab).direction == BIDIRECTIONAL
    ]
    return _most_common(Counter(labels))[0] if labels else None


class MajorityBaseline(BaseSystem):
    """The most frequent training label for every query."""

    def __init__(self, train: pl.DataFrame, name: str = "majority") -> None:
        _check_train(train)
        self.name = name
        self.label, self.share = _most_common(Counter(train["label"].to_list()))

    @classmethod
    def from_context(cls, ctx: SystemContext, name: str, **options: Any) -> MajorityBaseline:
        _no_options(name, options)
        return cls(ctx.train, name)

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        return [Prediction(self.label, self.share) for _ in queries]


class DrugPriorBaseline(BaseSystem):
    """Per-drug label frequencies from training, mapped into the query orientation."""

    def __init__(self, train: pl.DataFrame, name: str = "drug_prior") -> None:
        _check_train(train)
        self.name = name
        self.fallback = MajorityBaseline(train)
        self.as_a: dict[str, Counter[str]] = {}
        for a, b, label in train.select("drug_a", "drug_b", "label").iter_rows():
            self.as_a.setdefault(a, Counter())[label] += 1
            self.as_a.setdefault(b, Counter())[mirror_label(label)] += 1

    @classmethod
    def from_context(cls, ctx: SystemContext, name: str, **options: Any) -> DrugPriorBaseline:
        _no_options(name, options)
        return cls(ctx.train, name)

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        out = []
        for q in queries:
            votes = Counter(self.as_a.get(q.drug_a, Counter()))
            for label, n in self.as_a.get(q.drug_b, Counter()).items():
                votes[mirror_label(label)] += n
            if votes:
                label, share = _most_common(votes)
                out.append(Prediction(label, share))
            else:
                out.append(Prediction(self.fallback.label, self.fallback.share))
        return out


class KnowledgeRulesBaseline(BaseSystem):
    """The knowledge-grounded teacher's rules on the retrieved evidence, with their chain."""

    def __init__(
        self,
        config: KnowledgeConfig | None = None,
        taxonomy: Taxonomy | None = None,
        name: str = "knowledge_rules",
    ) -> None:
        self.name = name
        self.teacher = KnowledgeTeacher(
            config or KnowledgeConfig(use_gold=False), taxonomy or load_taxonomy()
        )

    @classmethod
    def from_context(cls, ctx: SystemContext, name: str, **options: Any) -> KnowledgeRulesBaseline:
        """Options: ``min_confidence``; the fallback label is the most frequent Bidirectional training
        label."""
        fallback = majority_label(ctx.train, bidirectional=True) if ctx.train.height else None
        settings = {"use_gold": False, **({"majority_label": fallback} if fallback else {}), **options}
        return cls(parse_config(KnowledgeConfig, settings, f"system {name!r}"), ctx.taxonomy, name)

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        out = []
        for q in queries:
            label, confidence, steps = self.teacher.infer_label(q.ref_a, q.ref_b, q.evidence)
            out.append(Prediction(label, confidence, render_completion(steps, label, confidence)))
        return out


class SimilarityBaseline(BaseSystem):
    """The label of the most similar training pair in the query's ``similar_interaction`` evidence."""

    def __init__(self, train: pl.DataFrame, name: str = "similarity") -> None:
        self.name = name
        self.fallback = MajorityBaseline(train)

    @classmethod
    def from_context(cls, ctx: SystemContext, name: str, **options: Any) -> SimilarityBaseline:
        _no_options(name, options)
        return cls(ctx.train, name)

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        out = []
        for q in queries:
            a, b = q.ref_a, q.ref_b
            best: tuple[bool, float, str] | None = None
            for item in q.evidence:
                label = query_label(item, a, b)
                if label is None:
                    continue
                other = q.drug_b if item.similar_to == q.drug_a else q.drug_a
                rank = (item.partner_id == other, item.similarity or 0.0, label)
                if best is None or rank[:2] > best[:2]:
                    best = rank
            if best is None:
                out.append(Prediction(self.fallback.label, self.fallback.share))
            else:
                out.append(Prediction(best[2], min(1.0, max(0.0, best[1]))))
        return out


@contextmanager
def _single_thread() -> Iterator[None]:
    """One torch thread: a model this small trains faster so, and does not stall on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True, config=CONFIG)
class MLPConfig:
    """Feature MLP settings. ``max_train_pairs``: a seeded sample of training pairs caps the fit (each pair is
    used in both orientations)."""

    svd_components: PositiveInt = 64
    hidden: PositiveInt = 128
    epochs: PositiveInt = 40
    batch_size: PositiveInt = 256
    lr: PositiveFloat = 3e-3
    weight_decay: NonNegativeFloat = 1e-4
    max_train_pairs: PositiveInt = 100_000
    seed: NonNegativeInt = 0


def drug_vectors(
    drugs: pl.DataFrame,
    drug_proteins: pl.DataFrame,
    fit_drugs: Sequence[str],
    n_components: int,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Dense per-drug vectors: retrieval's binary feature blocks, each L2-normalised, concatenated, reduced by
    a TruncatedSVD fitted on ``fit_drugs`` only, then standardised with those drugs' mean and spread."""
    table = drugs.sort("drugbank_id")
    ids: list[str] = table["drugbank_id"].to_list()
    pos = {d: i for i, d in enumerate(ids)}
    fit_rows = sorted({pos[d] for d in fit_drugs if d in pos})
    if len(fit_rows) < 2:
        raise InputError(f"feature MLP: {len(fit_rows)} training drugs found in the drugs table; need >= 2")
    blocks = sparse.hstack([normalize(m) for m in drug_features(table, drug_proteins, ids)]).tocsr()
    k = min(n_components, blocks.shape[1] - 1, len(fit_rows) - 1)
    if k < 1:
        raise InputError(f"feature MLP: {blocks.shape[1]} feature columns; need >= 2")
    svd = TruncatedSVD(n_components=k, random_state=seed).fit(blocks[fit_rows])
    vectors = svd.transform(blocks)
    mean, std = vectors[fit_rows].mean(axis=0), vectors[fit_rows].std(axis=0) + 1e-6
    return {d: ((vectors[i] - mean) / std).astype(np.float32) for d, i in pos.items()}


class FeatureMLPBaseline(BaseSystem):
    """An order-aware MLP on concatenated drug feature vectors, trained mirror-augmented."""

    def __init__(
        self,
        train: pl.DataFrame,
        drugs: pl.DataFrame,
        drug_proteins: pl.DataFrame,
        config: MLPConfig | None = None,
        name: str = "feature_mlp",
    ) -> None:
        _check_train(train)
        self.name = name
        self.config = cfg = config or MLPConfig()
        train = _capped(train, cfg.max_train_pairs, cfg.seed)
        rows = train.select("drug_a", "drug_b", "label").rows()
        self.vectors = drug_vectors(
            drugs, drug_proteins, [d for a, b, _ in rows for d in (a, b)], cfg.svd_components, cfg.seed
        )
        examples = [(a, b, lab) for a, b, lab in rows] + [(b, a, mirror_label(lab)) for a, b, lab in rows]
        self.classes = sorted({lab for _, _, lab in examples})
        code = {c: i for i, c in enumerate(self.classes)}
        x = torch.from_numpy(self._inputs([(a, b) for a, b, _ in examples]))
        y = torch.tensor([code[lab] for _, _, lab in examples])
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            self.model = torch.nn.Sequential(
                torch.nn.Linear(x.shape[1], cfg.hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(cfg.hidden, len(self.classes)),
            )
        self._fit(x, y)

    @classmethod
    def from_context(cls, ctx: SystemContext, name: str, **options: Any) -> FeatureMLPBaseline:
        """Options: the fields of :class:`MLPConfig`."""
        return cls(
            ctx.train,
            ctx.drugs,
            ctx.drug_proteins,
            parse_config(MLPConfig, options, f"system {name!r}"),
            name,
        )

    def _inputs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        unknown = sorted({d for pair in pairs for d in pair if d not in self.vectors})
        if unknown:
            raise InputError(f"feature MLP: drugs {unknown[:5]} are not in the drugs table")
        return np.stack([np.concatenate([self.vectors[a], self.vectors[b]]) for a, b in pairs])

    def _fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed)
        optimiser = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss()
        self.model.train()
        with _single_thread():
            for _ in range(cfg.epochs):
                for batch in torch.randperm(len(y), generator=generator).split(cfg.batch_size):
                    optimiser.zero_grad()
                    loss_fn(self.model(x[batch]), y[batch]).backward()
                    optimiser.step()
        self.model.eval()

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        if not queries:
            return []
        with torch.no_grad():
            probs = torch.softmax(
                self.model(torch.from_numpy(self._inputs([(q.drug_a, q.drug_b) for q in queries]))), dim=1
            )
        best = probs.max(dim=1)
        return [
            Prediction(self.classes[i], float(p))
            for p, i in zip(best.values.tolist(), best.indices.tolist(), strict=True)
        ]


@dataclass(frozen=True, config=CONFIG)
class BagOfEvidenceConfig:
    """Bag-of-evidence settings: word n-grams up to ``ngram_max`` seen in at least ``min_df`` training
    documents (TF-IDF, sublinear), an L2 logistic regression with inverse strength ``c``; a seeded sample of
    ``max_train_pairs`` training pairs caps the fit (each used in both orientations)."""

    ngram_max: PositiveInt = 2
    min_df: PositiveInt = 2
    c: PositiveFloat = 1.0
    max_iter: PositiveInt = 200
    max_train_pairs: PositiveInt = 20_000
    seed: NonNegativeInt = 0


# Role words that stand for the drugs in an evidence document: the query's A and B, a training drug similar to
# A or to B (``similar_interaction`` evidence), and that drug's training partner when it is neither.
_ROLE = {"A": "druga", "B": "drugb"}
_LIKE = {"A": "likea", "B": "likeb"}
_PARTNER = "partner"


def evidence_document(
    evidence: Sequence[Evidence], names: Mapping[str, Sequence[str]], drug_a: str, drug_b: str
) -> str:
    """The evidence sentences the prompt shows for the ordered query (A, B), one per line, each drug's names
    (``names``: by DrugBank id) replaced by its role word: ``druga``, ``drugb``, ``likea``/``likeb`` for a
    training drug similar to A/B (``similar_interaction`` evidence) and ``partner`` for that drug's training
    partner when it is neither; so who acts on whom, and where a similar pair's label points, is in the
    words."""
    roles = {drug_a: _ROLE["A"], drug_b: _ROLE["B"]}
    for item in evidence:
        if item.similar_to in (drug_a, drug_b):
            roles.setdefault(item.drug_id, _LIKE["A" if item.similar_to == drug_a else "B"])
    for item in evidence:
        if item.similar_to in (drug_a, drug_b) and item.partner_id is not None:
            roles.setdefault(item.partner_id, _PARTNER)
    by_name = {n.lower(): word for d, word in roles.items() for n in names.get(d, ()) if n}
    text = "\n".join(item.sentence for item in evidence)
    if not by_name:
        return text
    return _names_pattern(tuple(sorted(by_name))).sub(lambda m: by_name[m.group(0).lower()], text)


@lru_cache(maxsize=4096)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    """Whole-word, any-case matches of ``names``, longest first (both orientations of a query share it)."""
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"\b({alternatives})\b", re.IGNORECASE)


class BagOfEvidenceBaseline(BaseSystem):
    """A logistic regression on TF-IDF word n-grams of the evidence the student sees
    (:func:`evidence_document`), trained on the train part's pairs in both orientations, with the evidence
    the strategy's index retrieves for them; predicted-class probability = confidence."""

    def __init__(
        self,
        train: pl.DataFrame,
        drugs: pl.DataFrame,
        index: RetrievalIndex,
        config: BagOfEvidenceConfig | None = None,
        name: str = "bag_of_evidence",
    ) -> None:
        _check_train(train)
        self.name = name
        self.config = cfg = config or BagOfEvidenceConfig()
        self.names: dict[str, Sequence[str]] = {
            d: (n,) for d, n in drugs.select("drugbank_id", "name").iter_rows() if n
        }
        train = _capped(train, cfg.max_train_pairs, cfg.seed)
        docs, labels = [], []
        for a, b, label in train.select("drug_a", "drug_b", "label").iter_rows():
            evidence = index.retrieve(
                a, b
            )  # the reversed query sees the same items: its document swaps roles
            docs += [
                evidence_document(evidence, self.names, a, b),
                evidence_document(evidence, self.names, b, a),
            ]
            labels += [label, mirror_label(label)]
        self.vectorizer = TfidfVectorizer(
            ngram_range=(1, cfg.ngram_max), min_df=cfg.min_df, sublinear_tf=True, dtype=np.float32
        )
        x = self.vectorizer.fit_transform(docs)
        self.model = LogisticRegression(C=cfg.c, max_iter=cfg.max_iter, random_state=cfg.seed)
        self.model.fit(x, labels)

    @classmethod
    def from_context(cls, ctx: SystemContext, name: str, **options: Any) -> BagOfEvidenceBaseline:
        """Options: the fields of :class:`BagOfEvidenceConfig`; needs the context's retrieval index."""
        if ctx.index is None:
            raise InputError(f"system {name!r}: needs the strategy's retrieval index in its context")
        return cls(
            ctx.train,
            ctx.drugs,
            ctx.index,
            parse_config(BagOfEvidenceConfig, options, f"system {name!r}"),
            name,
        )

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        if not queries:
            return []
        docs = [
            evidence_document(
                q.evidence,
                ChainMap({q.drug_a: q.names_a, q.drug_b: q.names_b}, self.names),
                q.drug_a,
                q.drug_b,
            )
            for q in queries
        ]
        probs = self.model.predict_proba(self.vectorizer.transform(docs))
        best = probs.argmax(axis=1)
        return [Prediction(str(self.model.classes_[i]), float(probs[row, i])) for row, i in enumerate(best)]
