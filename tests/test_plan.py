"""The stage table and the run plan derived from it: `mard run --from/--only/--until/--force`."""

from __future__ import annotations

import importlib

import pytest

from mard_core.errors import InputError
from mard_core.stages import NAMES, STAGES, Plan, make_plan, needed, stage


def test_every_input_and_gate_comes_earlier_in_the_table() -> None:
    for n, entry in enumerate(STAGES):
        for dep in (*entry.inputs, *entry.after):
            assert NAMES.index(dep) < n, f"{entry.name} needs {dep}, which comes later"


def test_every_stage_names_a_task_and_real_config_sections() -> None:
    from mard_core.config import PipelineConfig

    sections = set(PipelineConfig.__dataclass_fields__)
    for entry in STAGES:
        module, name = entry.task.split(":")
        assert callable(getattr(importlib.import_module(module), name)), entry.task
        assert entry.sections and set(entry.sections) <= sections, entry.name


def test_gates_and_the_ablation_are_stages() -> None:
    assert {"gate-ingest", "gate-label", "gate-splits", "gate-prm", "sft-no-mirror"} <= set(NAMES)


def test_from_rebuilds_the_stage_and_everything_after() -> None:
    plan = make_plan(from_stage="splits")
    assert plan.force == frozenset(NAMES[NAMES.index("splits") :]) and plan.until is None
    assert not plan.forced("label") and plan.forced("evaluate")
    assert [s.name for s in plan.stages()] == list(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_only_rebuilds_one_stage_and_runs_nothing_after_it(name: str) -> None:
    plan = make_plan(only=name)
    names = [s.name for s in plan.stages()]
    assert plan.force == {name} and names[-1] == name
    assert names == [n for n in NAMES if n in needed(name)]  # table order, only what the stage needs


def test_until_runs_what_a_stage_needs_and_rebuilds_nothing() -> None:
    plan = make_plan(until="index")
    assert plan.force == frozenset()
    assert [s.name for s in plan.stages()] == [
        "demo-release",
        "ingest",
        "gate-ingest",
        "label",
        "gate-label",
        "splits",
        "gate-splits",
        "index",
    ]


def test_a_stage_waits_for_the_gates_before_it() -> None:
    assert "gate-prm" in needed("sft") and "gate-splits" in needed("models")
    assert "sft-no-mirror" not in needed("dpo") and "sft-no-mirror" in needed("evaluate")


def test_default_runs_every_stage_and_rebuilds_nothing() -> None:
    plan = make_plan()
    assert plan.force == frozenset() and plan.until is None and plan.stages() == STAGES


def test_a_call_carries_the_declared_inputs_only() -> None:
    outputs = {n: f"/r/{n}/key-{n}" for n in NAMES}
    call = Plan().call(stage("dpo"), outputs, cfg=None, root="/r")
    assert call.dirs == {n: f"/r/{n}/key-{n}" for n in ("sft", "prm", "ingest", "index")}
    assert call.keys() == {n: f"key-{n}" for n in ("sft", "prm", "ingest", "index")}
    assert call.keys("prm") == {"prm": "key-prm"}


@pytest.mark.parametrize(
    "kwargs", [{"from_stage": "nope"}, {"only": "nope"}, {"until": "nope"}, {"force": ["nope"]}]
)
def test_unknown_stage_names_the_stages(kwargs: dict) -> None:
    with pytest.raises(InputError, match="unknown stage 'nope'; stages are: demo-release, ingest"):
        make_plan(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"from_stage": "label", "only": "splits"}, {"only": "label", "until": "index"}]
)
def test_stop_options_are_exclusive(kwargs: dict) -> None:
    with pytest.raises(InputError, match="one of --from, --only and --until"):
        make_plan(**kwargs)
