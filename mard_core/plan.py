"""Which stages a pipeline run rebuilds and where it stops: `mard run --from/--only/--force`."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mard_core.errors import InputError

# Every stage of the end-to-end pipeline, in dependency order.
STAGES = (
    "demo-release", "ingest", "gate-ingest", "label", "gate-label", "splits", "gate-splits", "index",
    "models", "teachers", "prm", "sft", "dpo", "evaluate", "register",
)


@dataclass(frozen=True)
class Plan:
    """Stages to rebuild even when their output is complete, and the stage after which to stop."""

    force: frozenset[str] = frozenset()
    stop_after: str | None = None

    def forced(self, stage: str) -> bool:
        return stage in self.force

    def stops_at(self, stage: str) -> bool:
        return stage == self.stop_after

    def stops_by(self, stage: str) -> bool:
        """Whether the run ends at ``stage`` or at a stage before it."""
        return self.stop_after is not None and STAGES.index(self.stop_after) <= STAGES.index(stage)


def _check(stage: str) -> str:
    if stage not in STAGES:
        raise InputError(f"unknown stage {stage!r}; stages are: {', '.join(STAGES)}")
    return stage


def make_plan(from_stage: str | None = None, only: str | None = None, force: Iterable[str] = ()) -> Plan:
    """``from_stage``: rebuild it and everything after; ``only``: rebuild it and stop there; ``force``: rebuild these.

    Stages that are not rebuilt are reused when complete and built when missing, so a re-run after a failure
    redoes only the failed stage and what depends on it.
    """
    if from_stage and only:
        raise InputError("use either --from or --only, not both")
    forced = {_check(s) for s in force}
    if from_stage:
        forced |= set(STAGES[STAGES.index(_check(from_stage)):])
    if only:
        forced.add(_check(only))
    return Plan(frozenset(forced), only)
