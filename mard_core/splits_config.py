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
    """Which strategies to build and how much to hold out (one partition for all, see ``mard_core.splits``).

    ``cold_test_frac``/``cold_valid_frac`` are fractions of drugs: the held-out drug sets of cold_drug and
    cold_pair. ``valid_frac``/``test_frac`` are fractions of the pairs of two seen drugs for ``random`` (and
    of the earlier release's pairs for ``temporal``, valid only). The defaults give the demo 500+ pairs in
    every test part: cold_pair's holds both drugs from the test set, about cold_test_frac² of the pairs.
    """

    strategies: tuple[Strategy, ...] = ("random", "cold_drug", "cold_pair")
    valid_frac: HeldOutFraction = 0.1
    test_frac: HeldOutFraction = 0.1
    cold_test_frac: HeldOutFraction = 0.2
    cold_valid_frac: HeldOutFraction = 0.15
    seed: NonNegativeInt = 0

    @model_validator(mode="after")
    def _leaves_a_train_part(self) -> Self:
        if self.valid_frac + self.test_frac >= 1:
            raise ValueError(f"valid_frac + test_frac = {self.valid_frac + self.test_frac}: must be < 1")
        held = self.cold_valid_frac + self.cold_test_frac
        if held >= 1:
            raise ValueError(f"cold_valid_frac + cold_test_frac = {held}: must be < 1")
        return self
