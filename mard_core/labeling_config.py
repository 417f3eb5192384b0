"""Settings of the label stage (``mard_core.labeling``); torch-free, so loading a config stays fast."""

from __future__ import annotations

from pydantic.dataclasses import dataclass

from mard_core.validation import CONFIG, Fraction, PositiveInt


@dataclass(frozen=True, config=CONFIG)
class LabelConfig:
    """Knobs of the label stage."""

    chunk_rows: PositiveInt = 100_000
    min_coverage: Fraction = 0.995  # share of interaction elements that must get a label, else the gate fails
