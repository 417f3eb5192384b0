"""The Prefect side of the stage pattern: a cache policy keyed by the stage's content address.

The manifest in the output directory says whether a stage is done (see ``mard_core.stage``); Prefect's cache
is only a fast path on top: the policy returns the stage key when the output is complete and intact, and no
key otherwise, so a deleted or damaged output is always rebuilt and a wiped Prefect database costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.exceptions import TerminationSignal
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from mard_core import runlog
from mard_core.stage import StageRun, read_manifest, run_stage


def _record(run: StageRun, **fields: Any) -> None:
    runlog.record(run.root, str(flow_run.root_flow_run_id or "adhoc"), run.stage, out=str(run.out), **fields)


@dataclass
class StageCache(CachePolicy):
    """Cache key = ``<stage>-<key>`` of the StageRun that ``spec`` builds from the task's parameters.

    ``spec`` takes the task's parameters except ``force``: a stage task of the table takes
    ``(call: StageCall, force)`` and its spec ``(call)``; a task a stage fans out to (one evaluated system,
    the leaderboard) has a spec with its own parameters. A spec returning None: the call builds nothing.
    """

    spec: Callable[..., StageRun | None] | None = None

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        if self.spec is None or inputs.get("force"):
            return None
        run = self.spec(**{k: v for k, v in inputs.items() if k != "force"})
        if run is None or not run.is_complete():
            return None
        _record(run, state="cached", duration_s=0.0)
        return f"{run.stage}-{run.key}"


def execute(
    run: StageRun, build: Callable[[Path], Mapping[str, Any]], force: bool = False, resume: bool = False
) -> str:
    """Run one stage inside a Prefect task: reuse an intact output, else build it atomically."""
    logger = get_run_logger()
    if not force and run.is_complete():
        logger.info("%s: output %s is complete; nothing to do", run.stage, run.out)
        _record(run, state="cached", duration_s=0.0)
        return str(run.out)
    logger.info("%s: building %s", run.stage, run.out)
    _record(run, state="running", duration_s=None)
    start = time.perf_counter()
    try:
        out = run_stage(run, build, force=force, resume=resume)
    except BaseException as exc:
        stopped = isinstance(exc, KeyboardInterrupt | TerminationSignal)  # SIGINT / SIGTERM, not a failure
        _record(
            run,
            state="interrupted" if stopped else "failed",
            duration_s=round(time.perf_counter() - start, 2),
            error=str(exc)[:500],
        )
        raise
    _record(run, state="completed", duration_s=round(time.perf_counter() - start, 2))
    logger.info("%s: done in %.1f s -> %s", run.stage, (read_manifest(out) or {}).get("wall_s", 0.0), out)
    return str(out)
