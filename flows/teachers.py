"""Stage flow: the data phase, then the demo models, then teacher trajectories."""
from __future__ import annotations

from prefect import flow

from flows.data import data_flow
from mard_core.config import load_config
from mard_core.plan import STAGES, Plan
from mard_core.runtime import data_root
from tasks.models import build_models
from tasks.teachers import run_teachers


@flow(name="mard-teachers")
def teachers_flow(root: str | None = None, config: str | None = None, force: list[str] | None = None,
                  stop_after: str | None = None, source: str | None = None, version: str | None = None) -> dict[str, str]:
    """Teacher trajectories for the configured split; returns every stage's output directory."""
    cfg = load_config(config)
    root = str(data_root(root))
    plan = Plan(frozenset(force or ()), stop_after)
    out = data_flow(root=root, config=config, force=force, stop_after=stop_after, source=source, version=version)
    if stop_after in STAGES[: STAGES.index("index") + 1]:
        return out
    out["models"] = build_models(out["ingest"], out["splits"], out["index"], root, cfg.models, cfg.teachers.split,
                                 force=plan.forced("models"))
    if plan.stops_at("models"):
        return out
    out["teachers"] = run_teachers(out["ingest"], out["splits"], out["index"], out["models"], root, cfg.teachers,
                                   force=plan.forced("teachers"))
    return out
