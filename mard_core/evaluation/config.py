"""What to evaluate and how much of it (:class:`EvalConfig`); imports no torch, transformers or TRL."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mard_core.errors import InputError
from mard_core.evaluation.catalog import SYSTEMS
from mard_core.metrics import PriceTable
from mard_core.splits import STRATEGIES


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how much of it. ``systems``: names (``majority``) or mappings with a ``name`` and
    that system's options (see :data:`SYSTEMS`) plus an optional ``strategies`` list restricting where it runs (a
    student is evaluated only on the split it learned from). ``device``: what self-hosted cost is priced as
    (cpu | gpu). The default systems name the pipeline's models through placeholders ({models}, {sft},
    {sft_no_mirror}, {dpo}, {split})."""

    strategies: tuple[str, ...] = ("random", "cold_drug", "cold_pair", "temporal")  # those the splits stage built
    max_test_pairs: int = 120
    max_valid_pairs: int = 60
    seed: int = 0
    mirror: bool = True
    max_mirror_pairs: int = 60
    calibrate_on_valid: bool = True
    n_bins: int = 10
    prices: PriceTable = field(default_factory=PriceTable)
    device: str = "cpu"
    systems: tuple[str | dict[str, Any], ...] = (
        "majority", "drug_prior", "knowledge_rules", "similarity", "feature_mlp",
        {"name": "teacher:tiny-llama", "backend": {"backend": "hf", "model": "{models}/tiny-llama", "device": "auto"},
         "max_tokens": 96, "strategies": ["{split}"]},
        {"name": "student:sft-no-mirror", "model": "{sft_no_mirror}", "max_tokens": 160, "strategies": ["{split}"]},
        {"name": "student:sft", "model": "{sft}", "max_tokens": 160, "strategies": ["{split}"]},
        {"name": "student:mard", "model": "{dpo}", "max_tokens": 160, "strategies": ["{split}"]},
    )

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise InputError(f"EvalConfig.strategies: unknown {unknown}; expected some of {list(STRATEGIES)}")
        for name, minimum in (("max_test_pairs", 1), ("max_valid_pairs", 0), ("max_mirror_pairs", 0), ("n_bins", 1)):
            if getattr(self, name) < minimum:
                raise InputError(f"EvalConfig.{name}={getattr(self, name)}: must be >= {minimum}")
        if self.device not in ("cpu", "gpu"):
            raise InputError(f"EvalConfig.device {self.device!r}: expected 'cpu' or 'gpu'")
        for spec in self.system_specs():
            if spec["name"].split(":", 1)[0] not in SYSTEMS:
                raise InputError(f"EvalConfig.systems: unknown system {spec['name']!r}; known kinds: {sorted(SYSTEMS)}")

    def system_specs(self) -> list[dict[str, Any]]:
        """Every entry of ``systems`` as a mapping with a ``name``."""
        specs = [{"name": s} if isinstance(s, str) else dict(s) for s in self.systems]
        for spec in specs:
            if not isinstance(spec.get("name"), str) or not spec["name"]:
                raise InputError(f"EvalConfig.systems: entry {spec!r} needs a 'name'")
        names = [s["name"] for s in specs]
        if len(set(names)) != len(names):
            raise InputError(f"EvalConfig.systems: duplicate names in {names}")
        return specs
