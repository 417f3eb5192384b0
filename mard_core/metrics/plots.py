"""Evaluation figures rendered with matplotlib's Agg canvas (no pyplot state), each written atomically as
PNG."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import auc

from mard_core.errors import InputError
from mard_core.stage import write_atomic

_DPI = 120
_ANNOTATE_MAX = 20  # annotate confusion cells with counts up to this many classes


def _require(what: str, df: pl.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what}: table is missing column(s) {missing}; it has {df.columns}")
    if df.height == 0:
        raise InputError(f"{what}: table has no rows")


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    return write_atomic(
        Path(path),
        lambda tmp: FigureCanvasAgg(fig).print_figure(
            tmp, format="png", dpi=_DPI, metadata={"Software": None}
        ),
    )


def reliability_plot(table: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Accuracy against confidence per bin (a :func:`reliability_table`), with the diagonal and bin counts."""
    _require("reliability_plot", table, ("bin_lo", "bin_hi", "mean_confidence", "accuracy", "n"))
    filled = table.filter(pl.col("n") > 0)
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    widths = (filled["bin_hi"] - filled["bin_lo"]).to_numpy()
    bars = ax.bar(
        filled["bin_lo"].to_numpy(),
        filled["accuracy"].to_numpy(),
        width=widths,
        align="edge",
        edgecolor="black",
        alpha=0.7,
        label="accuracy",
    )
    ax.bar_label(bars, labels=[f"n={n}" for n in filled["n"].to_list()], fontsize=7)
    ax.plot(
        filled["mean_confidence"].to_numpy(),
        filled["accuracy"].to_numpy(),
        marker="o",
        color="C1",
        label="accuracy at mean confidence",
    )
    ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence", ylabel="accuracy", title="Reliability")
    ax.legend(loc="upper left")
    return _save(fig, path)


def confusion_plot(labels: Sequence[str], matrix: ArrayLike, path: str | os.PathLike[str]) -> Path:
    """Heat map of a confusion matrix (rows gold, columns predicted), coloured by row share."""
    counts = np.asarray(matrix)
    k = len(labels)
    if k == 0 or counts.shape != (k, k):
        raise InputError(f"confusion_plot: matrix shape {counts.shape} does not match {k} labels")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    side = max(4.0, 0.45 * k + 2)
    fig = Figure(figsize=(side + 1.5, side + 1.5), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of gold row")
    ax.set_xticks(range(k), labels=list(labels), rotation=90, fontsize=7)
    ax.set_yticks(range(k), labels=list(labels), fontsize=7)
    ax.set(xlabel="predicted", ylabel="gold", title="Confusion")
    if k <= _ANNOTATE_MAX:
        for (i, j), value in np.ndenumerate(counts):
            ax.text(
                j,
                i,
                str(value),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shares[i, j] > 0.5 else "black",
            )
    return _save(fig, path)


def rare_drug_plot(df: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Accuracy per rarity bin of the rarer drug (a :func:`rare_drug_bins` frame), with counts."""
    _require("rare_drug_plot", df, ("bin", "n", "accuracy"))
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    bars = ax.bar(df["bin"].to_list(), df["accuracy"].fill_null(0.0).to_numpy(), edgecolor="black")
    ax.bar_label(bars, labels=[f"n={n}" for n in df["n"].to_list()], fontsize=7)
    ax.set(
        ylim=(0, 1.05),
        xlabel="interaction listings of the rarer drug",
        ylabel="exact accuracy",
        title="Accuracy by drug rarity",
    )
    return _save(fig, path)


def roc_plot(
    fpr_tpr_by_name: Mapping[str, tuple[ArrayLike, ArrayLike]], path: str | os.PathLike[str]
) -> Path:
    """ROC curves, one per name, each labelled with its AUC, plus the chance diagonal."""
    if not fpr_tpr_by_name:
        raise InputError("roc_plot: no curves given")
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    for name, (fpr, tpr) in fpr_tpr_by_name.items():
        x, y = np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)
        if x.ndim != 1 or x.shape != y.shape or x.size < 2 or np.any(np.diff(x) < 0):
            raise InputError(
                f"roc_plot: curve {name!r} needs equally long 1-D fpr/tpr with >= 2 points "
                "and non-decreasing fpr"
            )
        ax.plot(x, y, label=f"{name} (AUC {auc(x, y):.3f})")
    ax.set(
        xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate", ylabel="true positive rate", title="ROC"
    )
    ax.legend(loc="lower right")
    return _save(fig, path)
