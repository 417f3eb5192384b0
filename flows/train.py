"""Stage flow: PRM-screened trajectories -> SFT (mirror KL) -> PRM-weighted DPO."""
from __future__ import annotations

import dataclasses

from prefect import flow

from flows._chain import after
from flows.prm import prm_flow
from tasks.train import dpo, sft


@flow(name="mard-train")
def train_flow(root: str | None = None, config: str | None = None, force: list[str] | None = None,
               stop_after: str | None = None, source: str | None = None, version: str | None = None) -> dict[str, str]:
    """Train the student; returns every stage's output directory."""
    up = after(prm_flow, "prm", root, config, force, stop_after, source, version)
    if up.done:
        return up.out
    cfg, root, plan, out = up.cfg, up.root, up.plan, up.out
    out["sft"] = sft(out["prm"], out["models"], root, cfg.sft, force=plan.forced("sft"))
    out["sft-no-mirror"] = sft(out["prm"], out["models"], root, dataclasses.replace(cfg.sft, mirror_lambda=0.0),
                               name="sft-no-mirror", force=plan.forced("sft"))
    if plan.stops_at("sft"):
        return out
    out["dpo"] = dpo(out["sft"], out["prm"], out["ingest"], root, cfg.dpo, force=plan.forced("dpo"))
    return out
