"""Model promotion: a new student replaces the champion only when it does not regress beyond a margin."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RegisterConfig:
    """Which registered model, which leaderboard metric decides, and how much regression is tolerated."""

    model_name: str = "mard-student"
    system: str = "student:mard"
    metric: str = "exact_accuracy"
    margin: float = 0.02
    alias: str = "champion"


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(new: float | None, champion: float | None, margin: float) -> Decision:
    """Promote when there is no champion yet, or when ``new >= champion - margin``."""
    if new is None:
        return Decision(False, "the new model has no score on the deciding metric")
    if champion is None:
        return Decision(True, f"no champion yet; new model scores {new:.4f}")
    if new >= champion - margin:
        return Decision(True, f"new {new:.4f} vs champion {champion:.4f}: within margin {margin}")
    return Decision(False, f"new {new:.4f} regresses beyond margin {margin} from champion {champion:.4f}")
