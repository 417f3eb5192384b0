"""Label-level metrics for ordered drug pairs, on plain ``Family/Subtype/Direction/Modality`` strings.

A prediction of ``None`` or ``""`` is a "no answer": it counts as wrong in every metric. Any other label must
have exactly four non-empty ``/``-separated fields and a direction in :data:`DIRECTIONS`, else
:class:`LabelFormatError` is raised.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Literal, NamedTuple

import numpy as np
import polars as pl
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score

from mard_core.errors import InputError
from mard_core.metrics.stats import N_RESAMPLES, Statistic, bootstrap_ci, bootstrap_interval

DIRECTIONS = ("A to B", "B to A", "Bidirectional")
SYMMETRIC_DIRECTION = "Bidirectional"
NO_ANSWER = "<no answer>"
_FLIP = {"A to B": "B to A", "B to A": "A to B", "Bidirectional": "Bidirectional"}
Level = Literal["family", "subtype", "direction", "modality", "exact"]
LEVELS: tuple[str, ...] = ("family", "subtype", "direction", "modality", "exact")
# Edges of the rare-drug strata by the rarer drug's interaction listings in the release.
DEFAULT_RARE_BINS: tuple[float, ...] = (0, 1, 5, 10, 25, 50, 100, math.inf)


class LabelFormatError(InputError):
    """A label string is not ``Family/Subtype/Direction/Modality`` with a known direction."""


class LabelParts(NamedTuple):
    """The four fields of a label."""

    family: str
    subtype: str
    direction: str
    modality: str


def split_label(label: str) -> LabelParts:
    """Split a label into its four fields, raising :class:`LabelFormatError` when it is malformed."""
    if not isinstance(label, str):
        raise LabelFormatError(f"label {label!r}: expected a string, got {type(label).__name__}")
    fields = label.split("/")
    if len(fields) != 4 or not all(f.strip() for f in fields):
        raise LabelFormatError(
            f"label {label!r}: expected 4 non-empty '/'-separated fields Family/Subtype/Direction/Modality"
        )
    parts = LabelParts(*fields)
    if parts.direction not in _FLIP:
        raise LabelFormatError(f"label {label!r}: direction {parts.direction!r} is not one of {DIRECTIONS}")
    return parts


def mirror_label(label: str) -> str:
    """The label of the reversed pair: "A to B" and "B to A" swap, "Bidirectional" stays."""
    parts = split_label(label)
    return "/".join(parts._replace(direction=_FLIP[parts.direction]))


def _pair_swapped(drug_a: str, drug_b: str, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}\x1f{drug_a}\x1f{drug_b}".encode()).digest()
    return bool(digest[0] & 1)


def present_in_random_order(pairs: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Present each canonical pair as (A, B) or (B, A), about half of them swapped.

    Adds ``query_a``, ``query_b``, ``gold`` (the label in query orientation: mirrored when swapped) and
    ``swapped``. Whether a pair is swapped depends only on (seed, drug_a, drug_b), so the result is
    deterministic and does not depend on row order.
    """
    missing = [c for c in ("drug_a", "drug_b", "label") if c not in pairs.columns]
    if missing:
        raise InputError(f"pairs frame: missing column(s) {missing}; it has {pairs.columns}")
    drugs_a = [str(d) for d in pairs["drug_a"].to_list()]
    drugs_b = [str(d) for d in pairs["drug_b"].to_list()]
    swapped = [_pair_swapped(a, b, seed) for a, b in zip(drugs_a, drugs_b, strict=True)]
    gold = [
        mirror_label(lab) if s else "/".join(split_label(lab))
        for lab, s in zip(pairs["label"].to_list(), swapped, strict=True)
    ]
    return pairs.with_columns(
        pl.Series(
            "query_a",
            [b if s else a for a, b, s in zip(drugs_a, drugs_b, swapped, strict=True)],
            dtype=pl.String,
        ),
        pl.Series(
            "query_b",
            [a if s else b for a, b, s in zip(drugs_a, drugs_b, swapped, strict=True)],
            dtype=pl.String,
        ),
        pl.Series("gold", gold, dtype=pl.String),
        pl.Series("swapped", swapped, dtype=pl.Boolean),
    )


def _check_lengths(what: str, **seqs: Sequence[object]) -> int:
    lengths = {name: len(s) for name, s in seqs.items()}
    if len(set(lengths.values())) != 1:
        raise InputError(f"{what}: inputs differ in length {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise InputError(f"{what}: no rows to score")
    return n


def _parse_predictions(pred: Sequence[str | None]) -> list[LabelParts | None]:
    return [split_label(p) if p else None for p in pred]


def _level_value(parts: LabelParts | None, level: str) -> str:
    if parts is None:
        return NO_ANSWER
    if level == "exact":
        return "/".join(parts)
    if level == "subtype":
        return f"{parts.family}/{parts.subtype}"
    return getattr(parts, level)


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def agreement(gold: Sequence[str], pred: Sequence[str | None]) -> dict[str, np.ndarray]:
    """Per-pair 0/1 flags: ``family``, ``subtype`` (family and subtype), ``direction``, ``modality``,
    ``exact`` agreement with gold, and ``answered``; a no-answer agrees on nothing."""
    _check_lengths("agreement", gold=gold, pred=pred)
    g = [split_label(x) for x in gold]
    p = _parse_predictions(pred)

    def agree(*fields: str) -> np.ndarray:
        return np.array(
            [
                q is not None and all(getattr(q, f) == getattr(t, f) for f in fields)
                for t, q in zip(g, p, strict=True)
            ],
            dtype=bool,
        )

    return {
        "family": agree("family"),
        "subtype": agree("family", "subtype"),
        "direction": agree("direction"),
        "modality": agree("modality"),
        "exact": agree("family", "subtype", "direction", "modality"),
        "answered": np.array([x is not None for x in p], dtype=bool),
    }


def macro_f1_statistic(gold: Sequence[str], pred: Sequence[str]) -> Statistic:
    """Macro-F1 of each bootstrap resample (see :mod:`mard_core.metrics.stats`): the mean F1 over the
    classes that occur in the resample's gold or predictions; :data:`NO_ANSWER` is no class (a gold class
    left unanswered is a miss of that class)."""
    classes = sorted((set(gold) | set(pred)) - {NO_ANSWER})
    code = {c: i for i, c in enumerate(classes)}
    g = np.array([code.get(x, -1) for x in gold])
    p = np.array([code.get(x, -1) for x in pred])

    def statistic(idx: np.ndarray) -> np.ndarray:
        total, present = np.zeros(idx.shape[0]), np.zeros(idx.shape[0])
        for k in range(len(classes)):
            in_gold, in_pred = (g == k)[idx], (p == k)[idx]
            support = in_gold.sum(axis=1) + in_pred.sum(axis=1)  # 2 tp + fp + fn
            f1 = np.zeros(idx.shape[0])
            np.divide(2 * (in_gold & in_pred).sum(axis=1), support, out=f1, where=support > 0)
            total += f1
            present += support > 0
        return total / np.maximum(present, 1)

    return statistic


# Headline metrics that are per-pair means, by the :func:`agreement` flags they average.
_MEAN_METRICS = {
    "exact_accuracy": "exact",
    "family_accuracy": "family",
    "direction_accuracy": "direction",
    "modality_accuracy": "modality",
}


def label_metrics(
    gold: Sequence[str],
    pred: Sequence[str | None],
    symmetric_subtypes: set[str] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> dict[str, float | int | None]:
    """Accuracy at every level of the label, subtype macro-F1, Cohen's kappa, and 95% percentile bootstrap
    intervals (``<metric>_ci95_lo``/``_hi``, ``n_resamples`` seeded resamples of the pairs) of the exact,
    family, direction and modality accuracies, subtype macro-F1 and the no-answer rate.

    Macro-F1 averages over the Family/Subtype classes that occur in gold or in the predictions (a predicted
    class gold never has scores 0 and lowers the mean). A gold label is symmetric when its direction is
    "Bidirectional", or, when ``symmetric_subtypes`` is given, when its Subtype field is in that set. Ratios
    over an empty subset are None.
    """
    n = _check_lengths("label_metrics", gold=gold, pred=pred)
    flags = agreement(gold, pred)
    g = [split_label(x) for x in gold]
    p = _parse_predictions(pred)
    exact, mechanism, direction = flags["exact"], flags["subtype"], flags["direction"]
    if symmetric_subtypes is None:
        symmetric = np.array([t.direction == SYMMETRIC_DIRECTION for t in g])
    else:
        symmetric = np.array([t.subtype in symmetric_subtypes for t in g])

    gold_sub = [_level_value(t, "subtype") for t in g]
    pred_sub = [_level_value(q, "subtype") for q in p]
    gold_exact = [_level_value(t, "exact") for t in g]
    pred_exact = [_level_value(q, "exact") for q in p]
    classes = sorted(set(gold_exact) | set(pred_exact))
    # Kappa is undefined when gold and prediction are one and the same constant class.
    kappa = None if len(classes) == 1 else float(cohen_kappa_score(gold_exact, pred_exact, labels=classes))
    f1_classes = sorted((set(gold_sub) | set(pred_sub)) - {NO_ANSWER})
    out: dict[str, float | int | None] = {
        "n": n,
        **{name: float(flags[level].mean()) for name, level in _MEAN_METRICS.items()},
        "subtype_macro_f1": float(
            f1_score(gold_sub, pred_sub, labels=f1_classes, average="macro", zero_division=0)
        ),
        "direction_accuracy_given_mechanism": _mean_or_none(direction[mechanism]),
        "kappa": kappa,
        "n_asymmetric": int((~symmetric).sum()),
        "accuracy_asymmetric": _mean_or_none(exact[~symmetric]),
        "n_symmetric": int(symmetric.sum()),
        "accuracy_symmetric": _mean_or_none(exact[symmetric]),
        "no_answer_rate": float(1 - flags["answered"].mean()),
    }
    intervals = {
        **{name: bootstrap_ci(flags[level], n_resamples, seed) for name, level in _MEAN_METRICS.items()},
        "no_answer_rate": bootstrap_ci(~flags["answered"], n_resamples, seed),
        "subtype_macro_f1": bootstrap_interval(macro_f1_statistic(gold_sub, pred_sub), n, n_resamples, seed),
    }
    out.update(interval_columns(intervals))
    return out


def interval_columns(intervals: Mapping[str, tuple[float | None, float | None]]) -> dict[str, float | None]:
    """``{metric: (lo, hi)}`` as the flat columns ``<metric>_ci95_lo`` and ``<metric>_ci95_hi``."""
    out: dict[str, float | None] = {}
    for name, (lo, hi) in intervals.items():
        out[f"{name}_ci95_lo"], out[f"{name}_ci95_hi"] = lo, hi
    return out


def mirror_agreement(pred_ab: Sequence[str | None], pred_ba: Sequence[str | None]) -> np.ndarray:
    """Per pair: whether the (A, B) and (B, A) predictions are exact mirror images; a no-answer never is."""
    _check_lengths("mirror_consistency", pred_ab=pred_ab, pred_ba=pred_ba)
    ab, ba = _parse_predictions(pred_ab), _parse_predictions(pred_ba)
    return np.array(
        [
            x is not None and y is not None and x._replace(direction=_FLIP[x.direction]) == y
            for x, y in zip(ab, ba, strict=True)
        ],
        dtype=bool,
    )


def mirror_consistency(pred_ab: Sequence[str | None], pred_ba: Sequence[str | None]) -> float:
    """Share of pairs whose (A, B) and (B, A) predictions are mirror images (:func:`mirror_agreement`)."""
    return float(mirror_agreement(pred_ab, pred_ba).mean())


def confusion(
    gold: Sequence[str], pred: Sequence[str | None], level: Level = "family"
) -> tuple[list[str], np.ndarray]:
    """Confusion matrix at one level (rows gold, columns predicted) over the sorted union of values seen.

    ``level`` is "family", "subtype" (Family/Subtype), "direction", "modality" or "exact"; no-answers
    appear as the class :data:`NO_ANSWER`.
    """
    if level not in LEVELS:
        raise InputError(f"confusion: level {level!r} is not one of {LEVELS}")
    _check_lengths("confusion", gold=gold, pred=pred)
    g = [_level_value(split_label(x), level) for x in gold]
    p = [_level_value(q, level) for q in _parse_predictions(pred)]
    labels = sorted(set(g) | set(p))
    return labels, confusion_matrix(g, p, labels=labels)


def _bin_label(lo: float, hi: float) -> str:
    if math.isinf(hi):
        return f"{lo:g}+"
    return f"{lo:g}" if hi - lo == 1 else f"{lo:g}-{hi - 1:g}"


def rare_drug_bins(
    pairs: pl.DataFrame,
    drug_counts: Mapping[str, int],
    correct: Sequence[bool],
    bins: Sequence[float] = DEFAULT_RARE_BINS,
) -> pl.DataFrame:
    """Accuracy by how rare the rarer drug of each pair is.

    ``drug_counts``: a count every drug has, seen in training or not (0 when absent); the evaluation passes
    each drug's interaction listings in the release
    (:func:`mard_core.evaluation.protocol.drug_listing_counts`), so that the held-out drugs of the cold
    splits spread over the strata too. ``bins`` are increasing integer edges (the last may be inf); bin
    ``[lo, hi)`` is labelled "lo", "lo-(hi-1)" or "lo+". Every bin is reported, with accuracy null where it
    has no pairs.
    """
    if "drug_a" not in pairs.columns or "drug_b" not in pairs.columns:
        raise InputError(
            f"rare_drug_bins: pairs frame needs drug_a and drug_b columns; it has {pairs.columns}"
        )
    _check_lengths("rare_drug_bins", pairs=range(pairs.height), correct=correct)
    edges = np.asarray(bins, dtype=float)
    finite = edges[np.isfinite(edges)]
    if (
        edges.size < 2
        or np.any(np.diff(edges) <= 0)
        or np.any(finite != np.round(finite))
        or np.any(np.isinf(edges[:-1]))
    ):
        raise InputError(
            f"rare_drug_bins: bins {tuple(bins)} must be >= 2 increasing integer edges "
            "(only the last may be inf)"
        )
    counts = np.array(
        [
            min(drug_counts.get(str(a), 0), drug_counts.get(str(b), 0))
            for a, b in zip(pairs["drug_a"].to_list(), pairs["drug_b"].to_list(), strict=True)
        ],
        dtype=float,
    )
    outside = counts[(counts < edges[0]) | (counts >= edges[-1])]
    if outside.size:
        raise InputError(f"rare_drug_bins: drug count {outside[0]:g} lies outside bins {tuple(bins)}")
    index = np.searchsorted(edges, counts, side="right") - 1
    flags = np.asarray(correct, dtype=bool)
    rows = []
    for k, (lo, hi) in enumerate(pairwise(edges)):
        in_bin = flags[index == k]
        rows.append(
            {
                "bin": _bin_label(lo, hi),
                "lo": float(lo),
                "hi": float(hi),
                "n": int(in_bin.size),
                "n_correct": int(in_bin.sum()),
                "accuracy": _mean_or_none(in_bin),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "bin": pl.String,
            "lo": pl.Float64,
            "hi": pl.Float64,
            "n": pl.Int64,
            "n_correct": pl.Int64,
            "accuracy": pl.Float64,
        },
    )
