"""The end-to-end flow: each stage flow in order, every stage a cached, content-addressed task."""
from __future__ import annotations

from prefect import flow

from flows.data import data_flow


@flow(name="mard-pipeline", log_prints=True)
def pipeline(root: str | None = None, config: str | None = None, force: list[str] | None = None) -> dict[str, str]:
    """Run every stage on the configured release; returns each stage's output directory."""
    return data_flow(root=root, config=config, force=force)
