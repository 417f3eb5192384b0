"""The evaluation report: the leaderboard (Parquet and Markdown, every headline metric with its 95% bootstrap
interval), the paired differences between each student and each baseline on the same queries, each result's
predictions, valid-part calibration rows and plots."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from mard_core.errors import InputError, MardError
from mard_core.evaluation.protocol import EvalResult
from mard_core.metrics.labels import agreement
from mard_core.metrics.plots import confusion_plot, rare_drug_plot, reliability_plot
from mard_core.metrics.stats import N_RESAMPLES, mcnemar, paired_bootstrap
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
    ("n_mirror", "n mirror"),
    ("mfs_mean", "MFS"),
    ("mfs_on_correct", "MFS correct"),
    ("correct_and_verified", "Correct+verified"),
    ("ece", "ECE raw"),
    ("ece_calibrated", "ECE cal."),
    ("no_answer_rate", "No answer"),
    ("cost_self_hosted_usd_per_1k", "$ self /1k"),
    ("cost_api_usd_per_1k", "$ API /1k"),
)
_PAIRED_METRICS = {"exact_accuracy": "exact", "family_accuracy": "family", "direction_accuracy": "direction"}
_PAIR_KEY = ("drug_a", "drug_b", "query_a", "query_b")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 0.01 and value != 0 else f"{value:.3f}"
    return str(value)


def _with_interval(value: Any, lo: Any, hi: Any) -> str:
    """``value [lo, hi]``, or the value alone without an interval."""
    if lo is None or hi is None or value is None:
        return _cell(value)
    return f"{_cell(value)} [{_cell(lo)}, {_cell(hi)}]"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def paired_differences(
    results: Sequence[EvalResult], n_resamples: int = N_RESAMPLES, seed: int = 0
) -> pl.DataFrame:
    """For each split strategy, each student (``kind`` student) against each baseline (``kind`` baseline):
    the difference of their exact, family and direction accuracies (student minus baseline) on the same
    queries, joined on pair and orientation, with a paired 95% bootstrap interval and McNemar's p-value
    (:mod:`mard_core.metrics.stats`). Raises :class:`MardError` when two systems were not asked the same
    queries."""
    by_strategy: dict[str, dict[str, list[EvalResult]]] = {}
    for r in results:
        kind = r.metrics.get("kind")
        if kind in ("student", "baseline") and r.predictions.height:
            by_strategy.setdefault(r.metrics["strategy"], {}).setdefault(kind, []).append(r)
    rows = []
    for strategy, kinds in sorted(by_strategy.items()):
        for student in kinds.get("student", []):
            for baseline in kinds.get("baseline", []):
                rows += _paired_rows(strategy, student, baseline, n_resamples, seed)
    schema = {
        "strategy": pl.String,
        "student": pl.String,
        "baseline": pl.String,
        "metric": pl.String,
        "n": pl.Int64,
        "student_value": pl.Float64,
        "baseline_value": pl.Float64,
        "diff": pl.Float64,
        "diff_ci95_lo": pl.Float64,
        "diff_ci95_hi": pl.Float64,
        "mcnemar_p": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def _paired_rows(
    strategy: str, student: EvalResult, baseline: EvalResult, n_resamples: int, seed: int
) -> list[tuple[Any, ...]]:
    names = student.metrics["system"], baseline.metrics["system"]
    a, b = (r.predictions.select(*_PAIR_KEY, "gold", "pred") for r in (student, baseline))
    joined = a.join(b, on=list(_PAIR_KEY), how="inner", suffix="_b")
    if not joined.height == a.height == b.height or not joined["gold"].equals(joined["gold_b"]):
        raise MardError(
            f"paired comparison on {strategy}: {names[0]!r} ({a.height} queries) and {names[1]!r} "
            f"({b.height}) were not asked the same queries ({joined.height} shared)"
        )
    gold = joined["gold"].to_list()
    flags = agreement(gold, joined["pred"].to_list()), agreement(gold, joined["pred_b"].to_list())
    rows = []
    for metric, level in _PAIRED_METRICS.items():
        x, y = flags[0][level], flags[1][level]
        diff, lo, hi = paired_bootstrap(x, y, n_resamples, seed)
        rows.append(
            (
                strategy,
                *names,
                metric,
                len(gold),
                float(x.mean()),
                float(y.mean()),
                diff,
                lo,
                hi,
                mcnemar(x, y),
            )
        )
    return rows


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def paired_markdown(paired: pl.DataFrame) -> str:
    """The paired differences as a Markdown section (one row per split, student and baseline); empty when
    there are none."""
    if paired.height == 0:
        return ""
    rows = []
    for (strategy, student, baseline), group in paired.group_by(
        ["strategy", "student", "baseline"], maintain_order=True
    ):
        by_metric = {r["metric"]: r for r in group.iter_rows(named=True)}
        cells = [str(strategy), str(student), str(baseline), str(by_metric["exact_accuracy"]["n"])]
        for metric in _PAIRED_METRICS:
            r = by_metric[metric]
            cells.append(f"{_signed(r['diff'])} [{_signed(r['diff_ci95_lo'])}, {_signed(r['diff_ci95_hi'])}]")
        cells.append(_cell(by_metric["exact_accuracy"]["mcnemar_p"]))
        rows.append(cells)
    headers = ["Split", "Student", "Baseline", "n", "Δ Exact", "Δ Family", "Δ Direction", "McNemar p (exact)"]
    intro = (
        "Student minus baseline on the same queries (pair and orientation), with paired 95% bootstrap "
        f"intervals ({N_RESAMPLES} resamples of the pairs); McNemar's test on exact accuracy."
    )
    return "\n".join(["## Students against baselines", "", intro, "", *_table(headers, rows)]) + "\n"


def split_ceilings(results: Sequence[EvalResult], misses: Collection[str]) -> dict[str, float]:
    """Per strategy, the synthetic world's ceiling on the pairs its systems were scored on: the share whose
    label is the world's own (``misses``: ``drug_a|drug_b`` of the others, from the release's sidecar)."""
    out: dict[str, float] = {}
    for metrics, predictions in results:
        if metrics["strategy"] not in out and predictions.height:
            keys = (predictions["drug_a"] + "|" + predictions["drug_b"]).to_list()
            out[metrics["strategy"]] = 1.0 - sum(k in misses for k in keys) / len(keys)
    return dict(sorted(out.items()))


def leaderboard_markdown(
    df: pl.DataFrame,
    paired: pl.DataFrame | None = None,
    ceiling: float | None = None,
    split_ceiling: Mapping[str, float] | None = None,
) -> str:
    """A Markdown table of the main columns, each metric with its 95% bootstrap interval where it has one,
    then the ``paired`` differences (:func:`paired_markdown`); possibly contaminated systems are marked with a
    dagger; a synthetic world's oracle ``ceiling`` (the best exact accuracy any system can reach) is a line
    below the table, with ``split_ceiling`` (the same on each strategy's scored pairs)."""
    present = [(c, h) for c, h in _MARKDOWN_COLUMNS if c in df.columns]
    rows, flagged = [], False
    for row in df.iter_rows(named=True):
        cells = [_with_interval(row[c], row.get(f"{c}_ci95_lo"), row.get(f"{c}_ci95_hi")) for c, _ in present]
        if row.get("possibly_contaminated"):
            cells[0] += " †"
            flagged = True
        rows.append(cells)
    lines = _table([h for _, h in present], rows)
    lines += [
        "",
        "Brackets: 95% percentile bootstrap intervals over the test pairs (mirror: the mirrored pairs).",
    ]
    if flagged:
        lines += ["", "† possibly contaminated: a hosted model that may have seen DrugBank in pre-training."]
    if ceiling is not None:
        per_split = "".join(f"; {s} {c:.3f}" for s, c in (split_ceiling or {}).items())
        lines += [
            "",
            (
                f"oracle: {ceiling:.3f} exact, the synthetic world's ceiling (labels equal to its own); "
                f"on the scored test pairs{per_split or ' (not known)'}."
            ),
        ]
    text = "\n".join(lines) + "\n"
    section = paired_markdown(paired) if paired is not None else ""
    return text + ("\n" + section if section else "")


def result_stem(metrics: Mapping[str, Any]) -> str:
    """File-name stem of one result: ``<system>__<strategy>`` with unsafe characters replaced."""
    return _FILE_SAFE.sub("_", f"{metrics['system']}__{metrics['strategy']}")


def write_leaderboard(
    results: Sequence[EvalResult], out_dir: str | Path, world: Mapping[str, Any] | None = None
) -> dict[str, Path]:
    """Write ``leaderboard.parquet``, ``paired.parquet`` (:func:`paired_differences`) and ``leaderboard.md``
    (both, and a synthetic ``world``'s ceiling, overall and per strategy); returns the paths by those names
    (``leaderboard_md`` for the Markdown)."""
    out = Path(out_dir)
    board, paired = leaderboard(results), paired_differences(results)
    world = world or {}
    per_split = split_ceilings(results, set(world["misses"])) if "misses" in world else None
    markdown = leaderboard_markdown(board, paired, world.get("ceiling"), per_split)
    return {
        "leaderboard": write_atomic(out / "leaderboard.parquet", board.write_parquet),
        "paired": write_atomic(out / "paired.parquet", paired.write_parquet),
        "leaderboard_md": write_atomic(
            out / "leaderboard.md", lambda p: p.write_text(markdown, encoding="utf-8")
        ),
    }


def write_report(results: Sequence[EvalResult], out_dir: str | Path) -> dict[str, Path]:
    """Write the leaderboard (:func:`write_leaderboard`), ``predictions/<stem>.parquet``, the valid-part
    calibration rows ``calibration/<stem>.parquet`` (for :func:`mard_core.predict.load_calibrator`) and
    plots ``plots/<stem>_{confusion,reliability,rare_drugs}.png``; returns every path by a name."""
    out = Path(out_dir)
    paths = write_leaderboard(results, out)
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
