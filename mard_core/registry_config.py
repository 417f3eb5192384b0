"""Settings of the register stage (``mard_core.registry``); torch-free, so loading a config stays fast."""

from __future__ import annotations

from pydantic.dataclasses import dataclass

from mard_core.validation import CONFIG, Fraction, NonEmptyStr, PositiveInt


@dataclass(frozen=True, config=CONFIG)
class RegisterConfig:
    """Which registered model, which metric decides, how much regression is tolerated, and how many pairs new
    in the release are enough for the temporal comparison."""

    model_name: NonEmptyStr = "mard-student"
    system: NonEmptyStr = "student:mard"
    metric: NonEmptyStr = "exact_accuracy"
    margin: Fraction = 0.02
    alias: NonEmptyStr = "champion"
    min_new_pairs: PositiveInt = 20
