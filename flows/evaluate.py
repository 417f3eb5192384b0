"""Stage flow: the trained student and every baseline evaluated on every split, then registry promotion."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from prefect import flow

from flows._chain import after
from flows.train import train_flow
from mard_core.evaluation.protocol import planned_runs
from mard_core.stage import read_manifest
from tasks.evaluate import UPSTREAM, evaluate_system_task, gather, placeholders
from tasks.register import register


@flow(name="mard-evaluate")
def evaluate_flow(root: str | None = None, config: str | None = None, force: list[str] | None = None,
                  stop_after: str | None = None, source: str | None = None, version: str | None = None) -> dict[str, str]:
    """Leaderboard and model registration; returns every stage's output directory."""
    up = after(train_flow, "dpo", root, config, force, stop_after, source, version)
    if up.done:
        return up.out
    cfg, root, plan, out = up.cfg, up.root, up.plan, up.out
    split = cfg.teachers.split
    dirs, forced = {k: out[k] for k in UPSTREAM}, plan.forced("evaluate")
    built = (read_manifest(Path(out["splits"])) or {})["strategies"]  # temporal exists only with a previous release
    eval_cfg = dataclasses.replace(cfg.evaluate, strategies=tuple(s for s in cfg.evaluate.strategies if s in built))
    systems = [evaluate_system_task(dirs, root, eval_cfg, split, spec, strategy, force=forced)
               for spec, strategy in planned_runs(eval_cfg, placeholders(dirs, split))]
    out["evaluate"] = gather(systems, root, force=forced)
    if plan.stops_at("evaluate"):
        return out
    out["register"] = register(out, root, cfg.register, eval_cfg, split, force=plan.forced("register"))
    return out
