"""Stage selection for `mard run --from/--only/--force`."""
from __future__ import annotations

import pytest

from mard_core.errors import InputError
from mard_core.plan import STAGES, make_plan


def test_from_rebuilds_the_stage_and_everything_after() -> None:
    plan = make_plan(from_stage="splits")
    assert plan.force == frozenset(STAGES[STAGES.index("splits"):]) and plan.stop_after is None
    assert not plan.forced("label") and plan.forced("evaluate")


def test_only_rebuilds_one_stage_and_stops_there() -> None:
    plan = make_plan(only="label", force=["ingest"])
    assert plan.force == {"label", "ingest"} and plan.stops_at("label") and not plan.stops_at("splits")


def test_default_rebuilds_nothing() -> None:
    plan = make_plan()
    assert plan.force == frozenset() and plan.stop_after is None


@pytest.mark.parametrize("kwargs", [{"from_stage": "nope"}, {"only": "nope"}, {"force": ["nope"]}])
def test_unknown_stage_names_the_stages(kwargs: dict) -> None:
    with pytest.raises(InputError, match="unknown stage 'nope'; stages are: demo-release, ingest"):
        make_plan(**kwargs)


def test_from_and_only_are_exclusive() -> None:
    with pytest.raises(InputError, match="either --from or --only"):
        make_plan(from_stage="label", only="splits")
