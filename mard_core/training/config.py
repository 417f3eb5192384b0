"""Student trainer settings: what SFT and DPO share (:class:`TrainerSettings`), :class:`SFTConfig` and
:class:`DPOConfig`. Importing them imports no torch, transformers, peft or TRL (torch only checks a ``cuda``
device)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator
from pydantic.dataclasses import dataclass

from mard_core.errors import InputError
from mard_core.validation import CONFIG, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

Device = Literal["auto", "cpu", "cuda"]
ReportTo = Literal["auto", "none", "mlflow"]


@dataclass(frozen=True, config=CONFIG)
class TrainerSettings:
    """What every student trainer shares. ``device``: auto | cpu | cuda; ``report_to``: auto (MLflow when
    MLFLOW_TRACKING_URI is set) | none | mlflow; ``output_dir`` is set by the caller (the pipeline: the
    stage's work directory)."""

    output_dir: str = ""
    lr: PositiveFloat = 1e-3
    epochs: PositiveInt = 1
    max_steps: StrictInt = -1
    seed: NonNegativeInt = 0
    save_steps: PositiveInt = 50
    max_length: PositiveInt = 2048
    bf16: StrictBool = False
    gradient_checkpointing: StrictBool = False
    device: Device = "auto"
    logging_steps: PositiveInt = 5
    report_to: ReportTo = "auto"

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError(f"must be -1 (use epochs) or >= 1, got {value}")
        return value

    def __post_init__(self) -> None:
        if self.device == "cuda":
            import torch  # here only: the settings import no torch

            if not torch.cuda.is_available():
                raise InputError(f"{type(self).__name__}.device is 'cuda' but no CUDA device is available")


@dataclass(frozen=True, config=CONFIG)
class SFTConfig(TrainerSettings):
    """Student SFT: LoRA shape, mirror-KL weight, pairs per batch. ``target_modules``: names or
    ``"all-linear"``."""

    base_model: str = ""  # a checkpoint path or name; "" in the pipeline: the models stage's student-base
    lora_r: PositiveInt = 8
    lora_alpha: PositiveInt = 16
    lora_dropout: Annotated[StrictFloat, Field(ge=0, lt=1)] = 0.0
    target_modules: tuple[str, ...] | str = ("q_proj", "v_proj")
    batch_pairs: PositiveInt = 4
    mirror_lambda: NonNegativeFloat = 0.1


@dataclass(frozen=True, config=CONFIG)
class DPOConfig(TrainerSettings):
    """Student DPO: beta, pairs per batch, and how strongly the PRM margin weights a pair (0: plain DPO). The
    LoRA shape comes from the SFT adapter."""

    lr: PositiveFloat = 5e-4
    beta: PositiveFloat = 0.1
    batch_size: PositiveInt = 4
    weight_beta: NonNegativeFloat = 5.0
