"""What every stage flow does first: run the upstream stage flow, then continue unless the run ends there."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mard_core.config import PipelineConfig, load_config
from mard_core.plan import Plan
from mard_core.runtime import data_root


@dataclass(frozen=True)
class Upstream:
    """The config, data root and plan of this run, the upstream stages' outputs, and whether the run ends there."""

    cfg: PipelineConfig
    root: str
    plan: Plan
    out: dict[str, str]
    done: bool


def after(upstream_flow: Callable[..., dict[str, str]], last: str, root: str | None, config: str | None,
          force: list[str] | None, stop_after: str | None, source: str | None, version: str | None) -> Upstream:
    """Run ``upstream_flow`` (whose last stage is ``last``) with this flow's parameters."""
    plan = Plan(frozenset(force or ()), stop_after)
    cfg, root = load_config(config), str(data_root(root))
    out = upstream_flow(root=root, config=config, force=force, stop_after=stop_after, source=source, version=version)
    return Upstream(cfg, root, plan, out, plan.stops_by(last))
