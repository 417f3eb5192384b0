"""Evaluate stages: each (system, split strategy) is its own cached stage; the leaderboard gathers them.

A system's stage key covers its spec, the strategy, the evaluation settings and the content addresses of the
data and of the models it uses, so retraining the student re-evaluates the student systems only.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact

from mard_core.evaluation.config import EvalConfig
from mard_core.evaluation.protocol import EvalResult, evaluate_one, planned_runs
from mard_core.evaluation.report import leaderboard, result_stem, write_leaderboard, write_report
from mard_core.stage import StageRun, read_manifest
from mard_core.stages import StageCall
from mard_core.teachers.base import placeholder_names
from mard_core.training import merged_dir
from tasks._stage import StageCache, execute
from tasks._tracking import log_stage

EVALUATE_VERSION = "3"  # 2: one cached stage per (system, strategy); 3: intervals, paired differences
DATA = ("ingest", "splits", "index")
# Which upstream stage each placeholder of a system spec stands for.
PLACEHOLDER_STAGE = {"models": "models", "sft": "sft", "sft_no_mirror": "sft-no-mirror", "dpo": "dpo"}
METRICS_FILE = "metrics.json"


def placeholders(dirs: Mapping[str, str], split: str) -> dict[str, str]:
    """The values of a system spec's placeholders: the split and the model directories of the stages in
    ``dirs``."""
    models = {
        name: dirs[stage] if stage == "models" else str(merged_dir(dirs[stage]))
        for name, stage in PLACEHOLDER_STAGE.items()
        if stage in dirs
    }
    return {"split": split, **models}


def system_spec(
    dirs: Mapping[str, str], root: str, cfg: EvalConfig, split: str, system: dict[str, Any], strategy: str
) -> StageRun:
    used = placeholder_names(system)
    stages = [*DATA, *sorted(PLACEHOLDER_STAGE[p] for p in used if p in PLACEHOLDER_STAGE)]
    config = {
        "system": system,
        "strategy": strategy,
        "split": split,
        "evaluation": dataclasses.replace(cfg, strategies=(strategy,), systems=()),
    }
    stem = result_stem({"system": system["name"], "strategy": strategy})
    return StageRun(
        f"eval-{stem}", EVALUATE_VERSION, config, {s: Path(dirs[s]).name for s in stages}, Path(root)
    )


@task(name="evaluate-system", cache_policy=StageCache(spec=system_spec), persist_result=True)
def evaluate_system_task(
    dirs: Mapping[str, str],
    root: str,
    cfg: EvalConfig,
    split: str,
    system: dict[str, Any],
    strategy: str,
    force: bool = False,
) -> str:
    """One system on one strategy: metrics.json, predictions, calibration rows, plots; logged to MLflow (every
    scalar metric, its interval bounds ``<metric>_ci95_lo``/``_hi`` among them)."""
    run = system_spec(dirs, root, cfg, split, system, strategy)

    def build(work: Path) -> dict[str, Any]:
        result = evaluate_one(
            system, strategy, cfg, dirs["ingest"], dirs["splits"], dirs["index"], placeholders(dirs, split)
        )
        paths = write_report([result], work)
        scalars = leaderboard([result]).to_dicts()[0]
        (work / METRICS_FILE).write_text(json.dumps(scalars, indent=2, default=str))
        log_stage(
            run,
            metrics={k: v for k, v in scalars.items() if k not in ("system", "strategy")},
            artifacts=[p for p in paths.values() if p.suffix == ".png"],
        )
        return {"system": system["name"], "strategy": strategy}

    return execute(run, build, force)


def evaluate_spec(system_dirs: list[str], root: str, world: dict[str, Any] | None = None) -> StageRun:
    world = world or {}
    return StageRun(
        "evaluate",
        EVALUATE_VERSION,
        {"ceiling": world.get("ceiling"), "per_split_ceiling": "misses" in world},
        {Path(d).parent.name: Path(d).name for d in system_dirs},
        Path(root),
    )


def _load_result(system_dir: Path) -> EvalResult:
    """A system stage's scalar metrics and its predictions."""
    metrics = json.loads((system_dir / METRICS_FILE).read_text())
    return EvalResult(
        metrics, pl.read_parquet(system_dir / "predictions" / f"{result_stem(metrics)}.parquet")
    )


@task(name="evaluate", cache_policy=StageCache(spec=evaluate_spec), persist_result=True)
def gather(
    system_dirs: list[str], root: str, world: dict[str, Any] | None = None, force: bool = False
) -> str:
    """The leaderboard of every (system, strategy) with intervals, the paired student-vs-baseline differences
    (``paired.parquet``), their calibration rows, plots and predictions side by side, and the synthetic
    ``world``'s oracle ceiling, overall and on each strategy's scored pairs, when the release has one."""
    run = evaluate_spec(system_dirs, root, world)

    def build(work: Path) -> dict[str, Any]:
        results = [_load_result(Path(d)) for d in system_dirs]
        paths = write_leaderboard(results, work, world)
        for d in system_dirs:
            for sub in ("calibration", "plots", "predictions"):
                if (Path(d) / sub).is_dir():
                    shutil.copytree(Path(d) / sub, work / sub, dirs_exist_ok=True)
        log_stage(run, artifacts=[paths["leaderboard_md"], paths["paired"]])
        return {"rows": len(results)}

    out = Path(execute(run, build, force))
    create_markdown_artifact(
        key="leaderboard",
        markdown=(out / "leaderboard.md").read_text(encoding="utf-8"),
        description="Every system on every split strategy (exact accuracy first, 95% intervals), and each "
        "student against each baseline on the same queries (paired intervals)",
    )
    return str(out)


def evaluation_settings(call: StageCall) -> EvalConfig:
    """``evaluate``, restricted to the split strategies the splits stage built (temporal needs a previous
    release)."""
    built = (read_manifest(Path(call.dirs["splits"])) or {})["strategies"]
    cfg: EvalConfig = call.cfg.evaluate
    return dataclasses.replace(cfg, strategies=tuple(s for s in cfg.strategies if s in built))


@task(name="evaluate")
def evaluate(call: StageCall, force: bool = False) -> str:
    """Every planned (system, strategy) as its own cached stage, then the leaderboard that gathers them."""
    split, cfg = call.cfg.teachers.split, evaluation_settings(call)
    systems = [
        evaluate_system_task(call.dirs, call.root, cfg, split, spec, strategy, force=force)
        for spec, strategy in planned_runs(cfg, placeholders(call.dirs, split))
    ]
    world = (read_manifest(Path(call.dirs["ingest"])) or {}).get("world")
    return gather(systems, call.root, world, force=force)
