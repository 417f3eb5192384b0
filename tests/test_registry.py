"""Promotion rule of the model registry."""
from __future__ import annotations

import pytest

from mard_core.registry import decide


@pytest.mark.parametrize(
    ("new", "champion", "promote"),
    [(0.5, None, True), (0.49, 0.5, True), (0.48, 0.5, True), (0.47, 0.5, False), (0.7, 0.5, True), (None, 0.5, False)],
)
def test_promotion_tolerates_only_the_margin(new: float | None, champion: float | None, promote: bool) -> None:
    decision = decide(new, champion, margin=0.02)
    assert decision.promote is promote and decision.reason
