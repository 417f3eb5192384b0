"""Settings of the data-quality gates (``mard_core.quality``); torch-free, so loading a config stays fast."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictFloat
from pydantic.dataclasses import dataclass

from mard_core.validation import CONFIG, NonNegativeFloat


@dataclass(frozen=True, config=CONFIG)
class QualityConfig:
    """Settings of the data-quality gates.

    max_row_change: allowed relative change of a table's row count against the previous release.
    partner_resolvable_mostly: least share of interaction partners that must be known drug ids.
    docs: whether gates write GX Data Docs HTML beside results.json.
    """

    max_row_change: NonNegativeFloat = 0.5
    partner_resolvable_mostly: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.99
    docs: StrictBool = True
