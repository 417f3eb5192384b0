"""Stage flow: teacher trajectories, then the process reward model and screening (gated)."""
from __future__ import annotations

from prefect import flow

from flows._chain import after
from flows.teachers import teachers_flow
from tasks.prm import train_prm
from tasks.quality import quality_gate


@flow(name="mard-prm")
def prm_flow(root: str | None = None, config: str | None = None, force: list[str] | None = None,
             stop_after: str | None = None, source: str | None = None, version: str | None = None) -> dict[str, str]:
    """PRM training and trajectory screening; returns every stage's output directory."""
    up = after(teachers_flow, "teachers", root, config, force, stop_after, source, version)
    if up.done:
        return up.out
    cfg, root, plan, out = up.cfg, up.root, up.plan, up.out
    out["prm"] = train_prm(out["ingest"], out["splits"], out["models"], out["teachers"], root, cfg.prm, cfg.screen,
                           force=plan.forced("prm"))
    out["gate-prm"] = quality_gate(out["prm"], root, cfg.quality)
    return out
