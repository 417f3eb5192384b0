"""What `mard run` prints: progress and real errors on the console; chatter, library output and user-fixable
tracebacks not; the headline at the end."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import polars as pl

from flows.console import RunConsole, headline
from mard_core.errors import MardError, QualityGateError


def _record(name: str, level: int, msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord(name, level, __file__, 1, msg, (), exc_info)


def test_the_console_keeps_progress_and_real_errors_only() -> None:
    keep = RunConsole().filter
    assert keep(_record("prefect.flow_runs", logging.INFO, "[4/17] label"))
    assert keep(_record("prefect.task_runs", logging.INFO, "label: building /r/label/abc"))
    assert not keep(_record("prefect.task_runs", logging.INFO, "Finished in state Completed()"))
    assert not keep(
        _record("prefect.flow_runs", logging.INFO, "Beginning flow run 'x' for flow 'mard-pipeline'")
    )
    assert not keep(
        _record("transformers.modeling_utils", logging.WARNING, "Some weights were not initialized")
    )
    assert not keep(_record("py.warnings", logging.WARNING, "FutureWarning: ..."))
    try:
        raise QualityGateError("gate failed")
    except MardError as exc:  # the command line prints it as one line: no traceback on the console
        assert not keep(_record("prefect.task_runs", logging.ERROR, "Task run failed", exc))
    try:
        raise KeyError("a bug")
    except KeyError as exc:  # a bug keeps its traceback
        assert keep(_record("prefect.task_runs", logging.ERROR, "Task run failed", exc))
    assert keep(_record("some.library", logging.ERROR, "disk quota exceeded"))
    assert sys.exc_info() == (None, None, None)


def test_the_headline_names_the_best_systems_per_split_with_intervals(tmp_path: Path) -> None:
    board = pl.DataFrame(
        {
            "system": ["feature_mlp", "similarity", "majority", "student:mard", "knowledge_rules"],
            "strategy": ["cold_drug"] * 4 + ["random"],
            "n": [1702, 1702, 1702, 1702, 1105],
            "exact_accuracy": [0.707, 0.672, 0.198, 0.175, 0.7],
            "exact_accuracy_ci95_lo": [0.68, 0.65, 0.18, 0.155, 0.67],
            "exact_accuracy_ci95_hi": [0.73, 0.69, 0.22, 0.195, 0.73],
        }
    )
    board.write_parquet(tmp_path / "leaderboard.parquet")
    text = headline({"evaluate": str(tmp_path)}, top=2)
    assert (
        "cold_drug: feature_mlp 0.707 [0.680, 0.730] (1702); similarity 0.672 [0.650, 0.690] (1702); "
        "student:mard 0.175 [0.155, 0.195] (1702)"
    ) in text
    assert "random: knowledge_rules 0.700 [0.670, 0.730] (1105)" in text and "majority" not in text
    assert "mard predict voriconazole axitinib" in text and "make serve" in text
    assert "Leaderboard" not in headline({"index": str(tmp_path)})  # a run stopped before evaluation
