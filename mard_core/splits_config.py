"""Settings of the splits stage (``mard_core.splits``); torch-free, so loading a config stays fast."""

from __future__ import annotations

import typing
from typing import Annotated, Literal, Self

from pydantic import Field, StrictFloat, model_validator
from pydantic.dataclasses import dataclass

from mard_core.validation import CONFIG, NonNegativeInt

Strategy = Literal["random", "cold_drug", "cold_pair", "temporal"]
STRATEGIES: tuple[str, ...] = typing.get_args(Strategy)
HeldOutFraction = Annotated[StrictFloat, Field(ge=0, lt=1)]


@dataclass(frozen=True, config=CONFIG)
class SplitConfig:
    """Which strategies to build and how much to hold out.

    ``valid_frac``/``test_frac`` are fractions of pairs for ``random`` and ``temporal`` (valid only) and
    fractions of drugs (the held-out drug sets) for ``cold_drug``. ``cold_pair`` holds out ``cold_pair_frac``
    of the drugs for each of its valid and test parts: both drugs of a pair must be held out, so only about
    cold_pair_frac² of the pairs land in each part (0.25: ~6%, 500+ test pairs in the default demo).
    """

    strategies: tuple[Strategy, ...] = ("random", "cold_drug", "cold_pair")
    valid_frac: HeldOutFraction = 0.1
    test_frac: HeldOutFraction = 0.1
    cold_pair_frac: Annotated[StrictFloat, Field(ge=0, lt=0.5)] = 0.25
    seed: NonNegativeInt = 0

    @model_validator(mode="after")
    def _leaves_a_train_part(self) -> Self:
        if self.valid_frac + self.test_frac >= 1:
            raise ValueError(f"valid_frac + test_frac = {self.valid_frac + self.test_frac}: must be < 1")
        return self
