"""The evaluation report: the leaderboard (Parquet and Markdown), each result's predictions, valid-part
calibration rows and plots."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from mard_core.errors import InputError
from mard_core.evaluation.protocol import EvalResult
from mard_core.metrics.plots import confusion_plot, rare_drug_plot, reliability_plot
from mard_core.stage import write_atomic

_NON_SCALAR = ("reliability", "rare_drug_bins", "confusion_family", "calibration_data")
_FILE_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


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
    ("system", "System"),
    ("strategy", "Split"),
    ("n", "n"),
    ("exact_accuracy", "Exact"),
    ("family_accuracy", "Family"),
    ("subtype_macro_f1", "Subtype F1"),
    ("direction_accuracy", "Direction"),
    ("direction_accuracy_given_mechanism", "Dir. given mech."),
    ("kappa", "Kappa"),
    ("mirror_consistency", "Mirror"),
    ("mfs_mean", "MFS"),
    ("mfs_on_correct", "MFS correct"),
    ("correct_and_verified", "Correct+verified"),
    ("ece", "ECE raw"),
    ("ece_calibrated", "ECE cal."),
    ("cost_self_hosted_usd_per_1k", "$ self /1k"),
    ("cost_api_usd_per_1k", "$ API /1k"),
)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 0.01 and value != 0 else f"{value:.3f}"
    return str(value)


def leaderboard_markdown(df: pl.DataFrame, ceiling: float | None = None) -> str:
    """A Markdown table of the main columns; possibly contaminated systems are marked with a dagger; a
    synthetic world's oracle ``ceiling`` (the best exact accuracy any system can reach) is a line below."""
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
    if ceiling is not None:
        lines += [
            "",
            f"oracle: {ceiling:.3f} exact, the synthetic world's ceiling (labels equal to its own).",
        ]
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
    paths = {
        "leaderboard": write_atomic(out / "leaderboard.parquet", board.write_parquet),
        "leaderboard_md": write_atomic(
            out / "leaderboard.md", lambda p: p.write_text(leaderboard_markdown(board), encoding="utf-8")
        ),
    }
    for metrics, predictions in results:
        stem = result_stem(metrics)
        paths[f"predictions/{stem}"] = write_atomic(
            out / "predictions" / f"{stem}.parquet", predictions.write_parquet
        )
        if "calibration_data" in metrics:
            paths[f"calibration/{stem}"] = write_atomic(
                out / "calibration" / f"{stem}.parquet", metrics["calibration_data"].write_parquet
            )
        labels, matrix = metrics["confusion_family"]
        paths[f"plots/{stem}_confusion"] = confusion_plot(
            labels, matrix, out / "plots" / f"{stem}_confusion.png"
        )
        paths[f"plots/{stem}_rare_drugs"] = rare_drug_plot(
            metrics["rare_drug_bins"], out / "plots" / f"{stem}_rare_drugs.png"
        )
        if "reliability" in metrics:
            paths[f"plots/{stem}_reliability"] = reliability_plot(
                metrics["reliability"], out / "plots" / f"{stem}_reliability.png"
            )
    return paths
