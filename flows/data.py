"""Stage flow: ingest -> quality gate -> label -> gate -> splits -> gate -> retrieval index."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows._chain import after
from flows.ingest import ingest_flow
from mard_core.ingest import previous_release
from tasks.index import build_index
from tasks.label import label
from tasks.quality import quality_gate
from tasks.splits import make_splits


@flow(name="mard-data")
def data_flow(root: str | None = None, config: str | None = None, force: list[str] | None = None,
              stop_after: str | None = None, source: str | None = None, version: str | None = None) -> dict[str, str]:
    """The data phase; returns every stage's output directory (up to ``stop_after``)."""
    up = after(ingest_flow, "gate-ingest", root, config, force, stop_after, source, version)
    if up.done:
        return up.out
    cfg, root, plan, out = up.cfg, up.root, up.plan, up.out
    out["label"] = label(out["ingest"], root, cfg.label, force=plan.forced("label"))
    if plan.stops_at("label"):
        return out
    out["gate-label"] = quality_gate(out["label"], root, cfg.quality, force=plan.forced("gate-label"))
    previous = previous_release(Path(root), Path(out["ingest"]))
    previous_label = label(str(previous), root, cfg.label) if previous else ""
    out["splits"] = make_splits(out["label"], root, cfg.splits, previous_label, force=plan.forced("splits"))
    if plan.stops_at("splits"):
        return out
    out["gate-splits"] = quality_gate(out["splits"], root, cfg.quality, force=plan.forced("gate-splits"))
    out["index"] = build_index(out["ingest"], out["label"], out["splits"], root, cfg.retrieval,
                               force=plan.forced("index"))
    return out
