"""Settings of the PRM stage: the step scorer (``prm.model``) and trajectory screening (``prm.screen``);
torch-free, so loading a config stays fast."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictFloat
from pydantic.dataclasses import dataclass

from mard_core.validation import CONFIG, NonEmptyStr, NonNegativeInt, PositiveFloat, PositiveInt


@dataclass(frozen=True, config=CONFIG)
class PRMConfig:
    """Backbone path and training settings. ``device``: auto (cuda when available) | cpu | cuda."""

    base_model: str = (
        ""  # a checkpoint path or name; "" in the pipeline means the demo models stage's prm-base
    )
    lora: StrictBool = False
    lora_r: PositiveInt = 8
    lr: PositiveFloat = 5e-4
    epochs: PositiveInt = 3
    batch_size: PositiveInt = 8
    max_length: PositiveInt = 512
    seed: NonNegativeInt = 0
    step_token: NonEmptyStr = "<step_end>"
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass(frozen=True, config=CONFIG)
class ScreenConfig:
    """Screening and the second (Math-Shepherd) step-label source.

    ``target_precision``: keep-threshold reaching this precision on validation; None picks the max-F1
    threshold. Rollouts: ``rollout_k`` continuations from each step prefix of ``rollout_trajectories``
    training trajectories, sampled from teacher ``rollout_teacher`` of the teachers file (0 trajectories
    disables it).
    """

    target_precision: Annotated[StrictFloat, Field(gt=0, le=1)] | None = None
    score_column: Literal["prm_min", "prm_prod"] = "prm_min"
    rollout_teacher: NonEmptyStr = "tiny-llama"
    rollout_k: PositiveInt = 2
    rollout_trajectories: NonNegativeInt = 8
    rollout_max_tokens: PositiveInt = 32
