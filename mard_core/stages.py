"""The pipeline as one table of stages, read top to bottom (as Marin's ``executor_main(steps=[...])``).

Each entry names the stage, the stages whose outputs it reads (``inputs``: they go into its content address),
the gates that must pass before it runs (``after``: ordering only), the config sections it is configured by
and the task that builds it (``module:function`` in ``tasks/``, called with a :class:`StageCall`; named, not
imported, so this package stays free of the orchestrator). The run plan (``mard run --from/--only/--until/
--force``), ``mard status`` and the Prefect flow (``flows/pipeline.py``) are all derived from this table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mard_core.errors import InputError


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline."""

    name: str
    task: str  # "tasks.<module>:<function>", a task taking (call: StageCall, force: bool)
    inputs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    doc: str = ""


GATE = "tasks.quality:quality_gate"

STAGES: tuple[Stage, ...] = (
    Stage(
        "demo-release",
        "tasks.release:release",
        (),
        (),
        ("release",),
        "the configured release file, or the synthetic demo release when release.source is unset",
    ),
    Stage(
        "ingest",
        "tasks.ingest:ingest",
        ("demo-release",),
        (),
        ("release", "ingest"),
        "hash check (release.verify), then the XML streamed into Parquet tables",
    ),
    Stage(
        "gate-ingest",
        GATE,
        ("ingest",),
        (),
        ("quality",),
        "GX suites per table, row counts vs the previous release",
    ),
    Stage(
        "label",
        "tasks.label:label",
        ("ingest",),
        ("gate-ingest",),
        ("label",),
        "every DDI sentence -> Family/Subtype/Direction/Modality; one row per unordered pair",
    ),
    Stage("gate-label", GATE, ("label",), (), ("quality",), "GX suites of the labelled pairs"),
    Stage(
        "splits",
        "tasks.splits:make_splits",
        ("ingest", "label"),
        ("gate-label",),
        ("splits",),
        "random, cold_drug, cold_pair (and temporal with the previous release's labelled pairs)",
    ),
    Stage("gate-splits", GATE, ("splits",), (), ("quality",), "split audits: no leaked pairs or drugs"),
    Stage(
        "index",
        "tasks.index:build_index",
        ("ingest", "label", "splits"),
        ("gate-splits",),
        ("retrieval",),
        "leak-free retrieval index per split strategy",
    ),
    Stage(
        "models",
        "tasks.models:build_models",
        ("ingest", "splits", "index"),
        (),
        ("models", "teachers"),
        "demo models: tiny teachers, warmed-up student base, PRM base",
    ),
    Stage(
        "teachers",
        "tasks.teachers:run_teachers",
        ("ingest", "splits", "index", "models"),
        (),
        ("teachers",),
        "teacher trajectories on a stratified sample, sharded on Ray, resumable",
    ),
    Stage(
        "prm",
        "tasks.prm:train_prm",
        ("ingest", "splits", "models", "teachers"),
        (),
        ("prm", "screen"),
        "verified step labels, process reward model, trajectory screening",
    ),
    Stage("gate-prm", GATE, ("prm",), (), ("quality",), "no held-out pair among the screened trajectories"),
    Stage(
        "sft",
        "tasks.train:sft",
        ("prm", "models", "ingest", "index"),
        ("gate-prm",),
        ("sft",),
        "LoRA SFT with the mirror-symmetric KL on the direction token",
    ),
    Stage(
        "sft-no-mirror",
        "tasks.train:sft",
        ("prm", "models", "ingest", "index"),
        ("gate-prm",),
        ("sft",),
        "the same SFT with mirror_lambda 0 (the ablation)",
    ),
    Stage(
        "dpo",
        "tasks.train:dpo",
        ("sft", "prm", "ingest", "index"),
        (),
        ("dpo",),
        "PRM-weighted DPO against hard negatives and PRM rejects",
    ),
    Stage(
        "evaluate",
        "tasks.evaluate:evaluate",
        ("ingest", "splits", "index", "models", "sft", "sft-no-mirror", "dpo"),
        (),
        ("evaluate", "teachers"),
        "every system on every split strategy, one cached stage each; the leaderboard",
    ),
    Stage(
        "register",
        "tasks.register:register",
        ("ingest", "label", "splits", "index", "dpo", "evaluate"),
        (),
        ("register", "evaluate", "teachers"),
        "comparison with the champion, MLflow model version, alias when it does not regress",
    ),
)
NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
_BY_NAME = {s.name: s for s in STAGES}


def stage(name: str) -> Stage:
    """The table entry of ``name``; an unknown name is an error listing the stages."""
    if name not in _BY_NAME:
        raise InputError(f"unknown stage {name!r}; stages are: {', '.join(NAMES)}")
    return _BY_NAME[name]


def needed(name: str) -> frozenset[str]:
    """``name`` and every stage it reads or waits for, transitively."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = stage(todo.pop())
        if current.name not in seen:
            seen.add(current.name)
            todo += [*current.inputs, *current.after]
    return frozenset(seen)


@dataclass(frozen=True)
class StageCall:
    """What a stage task is called with: its name, its inputs' output directories, the config, the data
    root."""

    stage: str
    dirs: Mapping[str, str]
    cfg: Any  # mard_core.config.PipelineConfig
    root: str

    def keys(self, *names: str) -> dict[str, str]:
        """Content addresses (output directory names) of the inputs ``names`` (all declared inputs by
        default)."""
        return {n: Path(self.dirs[n]).name for n in (names or tuple(self.dirs))}


@dataclass(frozen=True)
class Plan:
    """Which stages run, in table order, and which of them are rebuilt even when their output is complete."""

    force: frozenset[str] = frozenset()
    until: str | None = None

    def stages(self) -> tuple[Stage, ...]:
        """Every stage up to and including ``until`` that it needs (all stages without ``until``)."""
        keep = needed(self.until) if self.until else frozenset(NAMES)
        return tuple(s for s in STAGES if s.name in keep)

    def forced(self, name: str) -> bool:
        return name in self.force

    def call(self, entry: Stage, outputs: Mapping[str, str], cfg: Any, root: str) -> StageCall:
        """The call of ``entry`` once the stages before it produced ``outputs``."""
        return StageCall(entry.name, {i: outputs[i] for i in entry.inputs}, cfg, root)


def make_plan(
    from_stage: str | None = None,
    only: str | None = None,
    until: str | None = None,
    force: Iterable[str] = (),
) -> Plan:
    """``from_stage``: rebuild it and every stage after it; ``only``: rebuild it and stop there; ``until``:
    run what it needs and stop there, rebuilding nothing; ``force``: rebuild these.

    Stages that are not rebuilt are reused when complete and built when missing, so a re-run after a failure
    redoes only the failed stage and what depends on it.
    """
    if sum(x is not None for x in (from_stage, only, until)) > 1:
        raise InputError("use one of --from, --only and --until")
    forced = {stage(s).name for s in force}
    if from_stage:
        forced |= set(NAMES[NAMES.index(stage(from_stage).name) :])
    if only:
        forced.add(stage(only).name)
    last = only or until
    return Plan(frozenset(forced), stage(last).name if last else None)
