"""Evaluate stage: every system on every split by the same code -> leaderboard, plots, MLflow, artifacts."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact

from mard_core.evaluate import EvalConfig, evaluate_all, leaderboard, leaderboard_markdown, write_report
from mard_core.stage import StageRun
from mard_core.training import merged_dir
from tasks._stage import StageCache, execute
from tasks._tracking import log_stage

EVALUATE_VERSION = "1"
UPSTREAM = ("ingest", "splits", "index", "models", "sft", "sft-no-mirror", "dpo")


def evaluate_spec(dirs: dict[str, str], root: str, cfg: EvalConfig, split: str) -> StageRun:
    inputs = {name: Path(dirs[name]).name for name in UPSTREAM} | {"split": split}
    return StageRun("evaluate", EVALUATE_VERSION, cfg, inputs, Path(root))


def _build(dirs: dict[str, str], cfg: EvalConfig, split: str, work: Path) -> dict[str, Any]:
    placeholders = {"models": dirs["models"], "split": split, "sft": str(merged_dir(dirs["sft"])),
                    "sft_no_mirror": str(merged_dir(dirs["sft-no-mirror"])), "dpo": str(merged_dir(dirs["dpo"]))}
    results = evaluate_all(cfg, dirs["ingest"], dirs["splits"], dirs["index"], placeholders)
    paths = write_report(results, work)
    board = leaderboard(results)
    return {"rows": board.height, "plots": sorted(str(p.relative_to(work)) for p in paths.values() if p.suffix == ".png")}


@task(name="evaluate", cache_policy=StageCache(spec=evaluate_spec), persist_result=True)
def evaluate(dirs: dict[str, str], root: str, cfg: EvalConfig, split: str, force: bool = False) -> str:
    """Write ``evaluate/<key>/`` (leaderboard.{parquet,md}, predictions, calibration, plots)."""
    run = evaluate_spec(dirs, root, cfg, split)

    def build(work: Path) -> dict[str, Any]:
        fields = _build(dirs, cfg, split, work)
        board = pl.read_parquet(work / "leaderboard.parquet")
        metrics = {f"{r['system']}/{r['strategy']}": {k: v for k, v in r.items() if k not in ("system", "strategy")}
                   for r in board.to_dicts()}
        log_stage(run, metrics=metrics, artifacts=[work / "leaderboard.md", *(work / p for p in fields["plots"])])
        return fields

    out = Path(execute(run, build, force))
    create_markdown_artifact(key="leaderboard", markdown=leaderboard_markdown(pl.read_parquet(out / "leaderboard.parquet")),
                             description="Every system on every split strategy (exact accuracy first)")
    return str(out)
