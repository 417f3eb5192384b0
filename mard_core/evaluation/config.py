"""What to evaluate and how much of it (:class:`EvalConfig`); imports no torch, transformers or TRL."""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal

from pydantic import StrictBool, field_validator
from pydantic.dataclasses import dataclass

from mard_core.metrics.cost import PriceTable
from mard_core.splits_config import STRATEGIES
from mard_core.validation import CONFIG, NonNegativeInt, PositiveInt

# System kinds by name prefix (their factories: mard_core.evaluation.catalog.SYSTEMS, which imports polars).
SYSTEM_KINDS = (
    "majority",
    "drug_prior",
    "knowledge_rules",
    "similarity",
    "feature_mlp",
    "bag_of_evidence",
    "teacher",
    "student",
    "endpoint",
)


_SHARED = ["random", "cold_drug", "cold_pair"]
"""The strategies cut from one partition (``mard_core.splits``): one training part, three test parts."""


@dataclass(frozen=True, config=CONFIG)
class EvalConfig:
    """What to evaluate and how much of it: every test part whole, or a seeded sample of ``max_test_pairs``
    where it is larger; mirror consistency on a seeded sample of ``max_mirror_pairs`` of those; calibration
    fitted on ``max_valid_pairs`` valid pairs; 95% bootstrap intervals from ``n_resamples`` seeded resamples
    of the pairs. ``systems``: names (``majority``) or mappings with a ``name`` and that system's options
    (see ``catalog.SYSTEMS``) plus an optional ``strategies`` list restricting where it runs (a student runs
    on the three strategies that share its training part, not on temporal, whose test pairs it trained
    on). ``device``: what the evaluation runs on (cpu | gpu), which
    prices the measured wall time (``cost_measured_usd_per_1k``; the headline costs depend on token counts
    only, see :class:`~mard_core.metrics.cost.PriceTable`). The default systems name the pipeline's models
    through placeholders ({models}, {sft}, {sft_no_mirror}, {dpo}, {split})."""

    strategies: tuple[str, ...] = (
        "random",
        "cold_drug",
        "cold_pair",
        "temporal",
    )  # those the splits stage built
    max_test_pairs: PositiveInt = 1000
    max_valid_pairs: NonNegativeInt = 500
    seed: NonNegativeInt = 0
    mirror: StrictBool = True
    max_mirror_pairs: NonNegativeInt = 200
    n_resamples: PositiveInt = 1000
    calibrate_on_valid: StrictBool = True
    n_bins: PositiveInt = 10
    prices: PriceTable = field(default_factory=PriceTable)
    device: Literal["cpu", "gpu"] = "cpu"
    systems: tuple[str | dict[str, Any], ...] = (
        "majority",
        "drug_prior",
        "knowledge_rules",
        "similarity",
        "feature_mlp",
        "bag_of_evidence",
        {"name": "student:base", "model": "{models}/student-base", "strategies": _SHARED},
        {"name": "student:sft-no-mirror", "model": "{sft_no_mirror}", "strategies": _SHARED},
        {"name": "student:sft", "model": "{sft}", "strategies": _SHARED},
        {"name": "student:mard", "model": "{dpo}", "strategies": _SHARED},
    )

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, strategies: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown {unknown}; expected some of {list(STRATEGIES)}")
        return strategies

    @field_validator("systems")
    @classmethod
    def _known_systems(cls, systems: tuple[str | dict[str, Any], ...]) -> tuple[str | dict[str, Any], ...]:
        specs = [{"name": s} if isinstance(s, str) else dict(s) for s in systems]
        names = [spec.get("name") for spec in specs]
        for spec, name in zip(specs, names, strict=True):
            if not isinstance(name, str) or not name:
                raise ValueError(f"entry {spec!r} needs a 'name'")
            if name.split(":", 1)[0] not in SYSTEM_KINDS:
                raise ValueError(f"unknown system {name!r}; known kinds: {sorted(SYSTEM_KINDS)}")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate names in {names}")
        return systems

    def system_specs(self) -> list[dict[str, Any]]:
        """Every entry of ``systems`` as a mapping with a ``name`` (checked when the config was made)."""
        return [{"name": s} if isinstance(s, str) else dict(s) for s in self.systems]
