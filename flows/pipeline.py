"""The pipeline flow: the stage table (``mard_core.stages.STAGES``) walked top to bottom, each stage a cached,
content-addressed task named after it. Every deployment in ``prefect.yaml`` runs this flow, with a stop
point."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger

from mard_core.config import load_config
from mard_core.runtime import data_root, hold_root
from mard_core.stages import Plan, Stage


def _task(entry: Stage) -> Callable[..., str]:
    """The task that builds ``entry``, its runs named after the stage."""
    module, name = entry.task.split(":")
    return getattr(importlib.import_module(module), name).with_options(task_run_name=entry.name)


@flow(name="mard-pipeline")
def pipeline(
    root: str | None = None,
    config: str | None = None,
    force: list[str] | None = None,
    until: str | None = None,
    source: str | None = None,
    version: str | None = None,
) -> dict[str, str]:
    """Run every stage (up to ``until``) on the configured release; returns each stage's output.

    ``force`` lists stages to rebuild even when complete. ``source``/``version`` override the config's release
    (a release-triggered retrain passes them, and then the hash is always verified).
    """
    overrides: dict[str, Any] = (
        {"release": {"source": source, "version": version, "verify": True}} if source else {}
    )
    cfg, path = load_config(config, overrides), data_root(root)
    plan, logger = Plan(frozenset(force or ()), until), get_run_logger()
    out: dict[str, str] = {}
    stages = plan.stages()
    with hold_root(path):  # one writer per data root
        for n, entry in enumerate(stages, 1):
            logger.info("[%d/%d] %s", n, len(stages), entry.name)
            out[entry.name] = _task(entry)(
                plan.call(entry, out, cfg, str(path)), force=plan.forced(entry.name)
            )
    return out
