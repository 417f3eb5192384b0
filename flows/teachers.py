"""Stage flow: the data phase, then the demo models, then teacher trajectories."""
from __future__ import annotations

from prefect import flow

from flows._chain import after
from flows.data import data_flow
from tasks.models import build_models
from tasks.teachers import run_teachers


@flow(name="mard-teachers")
def teachers_flow(root: str | None = None, config: str | None = None, force: list[str] | None = None,
                  stop_after: str | None = None, source: str | None = None, version: str | None = None) -> dict[str, str]:
    """Teacher trajectories for the configured split; returns every stage's output directory."""
    up = after(data_flow, "index", root, config, force, stop_after, source, version)
    if up.done:
        return up.out
    cfg, root, plan, out = up.cfg, up.root, up.plan, up.out
    out["models"] = build_models(out["ingest"], out["splits"], out["index"], root, cfg.models, cfg.teachers.split,
                                 force=plan.forced("models"))
    if plan.stops_at("models"):
        return out
    out["teachers"] = run_teachers(out["ingest"], out["splits"], out["index"], out["models"], root, cfg.teachers,
                                   force=plan.forced("teachers"))
    return out
