"""Stage flow: ingest -> quality gate -> label -> gate -> splits -> gate -> retrieval index."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.ingest import ingest_flow
from mard_core.config import load_config
from mard_core.ingest import previous_release
from mard_core.runtime import data_root
from tasks.index import build_index
from tasks.label import label
from tasks.quality import quality_gate
from tasks.splits import make_splits


@flow(name="mard-data", log_prints=True)
def data_flow(root: str | None = None, config: str | None = None, force: list[str] | None = None) -> dict[str, str]:
    """The data phase; returns every stage's output directory."""
    cfg = load_config(config)
    root = str(data_root(root))
    forced = frozenset(force or ())
    outputs = ingest_flow(root=root, config=config, force=list(forced))
    label_dir = label(outputs["ingest"], root, cfg.label, force="label" in forced)
    quality_gate(label_dir, root, cfg.quality, force="gate-label" in forced)
    previous = previous_release(Path(root), Path(outputs["ingest"]))
    previous_label = label(str(previous), root, cfg.label) if previous else ""
    splits_dir = make_splits(label_dir, root, cfg.splits, previous_label, force="splits" in forced)
    quality_gate(splits_dir, root, cfg.quality, force="gate-splits" in forced)
    index_dir = build_index(outputs["ingest"], label_dir, splits_dir, root, cfg.retrieval, force="index" in forced)
    return {**outputs, "label": label_dir, "splits": splits_dir, "index": index_dir}
