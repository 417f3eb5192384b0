"""The end-to-end flow: each stage flow in order, every stage a cached, content-addressed task."""
from __future__ import annotations

from prefect import flow

from flows.evaluate import evaluate_flow


@flow(name="mard-pipeline")
def pipeline(root: str | None = None, config: str | None = None, force: list[str] | None = None,
             stop_after: str | None = None, source: str | None = None, version: str | None = None) -> dict[str, str]:
    """Run every stage on the configured release (or ``source``/``version``); returns each stage's output.

    ``force`` lists stages to rebuild even when complete; the run ends after ``stop_after`` when given.
    """
    return evaluate_flow(root=root, config=config, force=force, stop_after=stop_after, source=source, version=version)
