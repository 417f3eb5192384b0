"""Stage flow: teacher trajectories, then the process reward model and screening (gated)."""
from __future__ import annotations

from prefect import flow

from flows.teachers import teachers_flow
from mard_core.config import load_config
from mard_core.plan import STAGES, Plan
from mard_core.runtime import data_root
from tasks.prm import train_prm
from tasks.quality import quality_gate


@flow(name="mard-prm")
def prm_flow(root: str | None = None, config: str | None = None, force: list[str] | None = None,
             stop_after: str | None = None, source: str | None = None, version: str | None = None) -> dict[str, str]:
    """PRM training and trajectory screening; returns every stage's output directory."""
    cfg = load_config(config)
    root = str(data_root(root))
    plan = Plan(frozenset(force or ()), stop_after)
    out = teachers_flow(root=root, config=config, force=force, stop_after=stop_after, source=source, version=version)
    if stop_after in STAGES[: STAGES.index("teachers") + 1]:
        return out
    out["prm"] = train_prm(out["ingest"], out["splits"], out["models"], out["teachers"], root, cfg.prm, cfg.screen,
                           force=plan.forced("prm"))
    out["gate-prm"] = quality_gate(out["prm"], root, cfg.quality)
    return out
