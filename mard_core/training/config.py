"""Student trainer settings: what SFT and DPO share (:class:`TrainerSettings`), :class:`SFTConfig` and
:class:`DPOConfig`. Importing them imports no torch, transformers, peft or TRL (torch only checks a ``cuda``
device)."""
from __future__ import annotations

from dataclasses import dataclass

from mard_core.errors import InputError

DEVICES = ("auto", "cpu", "cuda")
REPORT_TO = ("auto", "none", "mlflow")


@dataclass(frozen=True)
class TrainerSettings:
    """What every student trainer shares. ``device``: auto | cpu | cuda; ``report_to``: auto (MLflow when
    MLFLOW_TRACKING_URI is set) | none | mlflow; ``output_dir`` is set by the caller (the pipeline: the stage's
    work directory)."""

    output_dir: str = ""
    lr: float = 1e-3
    epochs: int = 1
    max_steps: int = -1
    seed: int = 0
    save_steps: int = 50
    max_length: int = 2048
    bf16: bool = False
    gradient_checkpointing: bool = False
    device: str = "auto"
    logging_steps: int = 5
    report_to: str = "auto"

    def __post_init__(self) -> None:
        where = type(self).__name__
        for name in ("epochs", "save_steps", "max_length", "logging_steps"):
            if getattr(self, name) < 1:
                raise InputError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise InputError(f"{where}.max_steps must be -1 (use epochs) or >= 1, got {self.max_steps}")
        if not self.lr > 0:
            raise InputError(f"{where}.lr must be > 0, got {self.lr}")
        check_runtime(self.device, self.report_to, where)


@dataclass(frozen=True)
class SFTConfig(TrainerSettings):
    """Student SFT: LoRA shape, mirror-KL weight, pairs per batch. ``target_modules``: names or ``"all-linear"``."""

    base_model: str = ""  # a checkpoint path or name; "" in the pipeline: the models stage's student-base
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] | str = ("q_proj", "v_proj")
    batch_pairs: int = 4
    mirror_lambda: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lora_r", "lora_alpha", "batch_pairs"):
            if getattr(self, name) < 1:
                raise InputError(f"SFTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.lora_dropout < 1 or self.mirror_lambda < 0:
            raise InputError(f"SFTConfig: need 0 <= lora_dropout < 1, mirror_lambda >= 0; got "
                             f"lora_dropout={self.lora_dropout}, mirror_lambda={self.mirror_lambda}")


def check_runtime(device: str, report_to: str, where: str) -> None:
    if device not in DEVICES:
        raise InputError(f"{where}.device must be one of {DEVICES}, got {device!r}")
    if device == "cuda":
        import torch  # here only: the settings import no torch

        if not torch.cuda.is_available():
            raise InputError(f"{where}.device is 'cuda' but no CUDA device is available")
    if report_to not in REPORT_TO:
        raise InputError(f"{where}.report_to must be one of {REPORT_TO}, got {report_to!r}")


@dataclass(frozen=True)
class DPOConfig(TrainerSettings):
    """Student DPO: beta, pairs per batch, and how strongly the PRM margin weights a pair (0: plain DPO). The
    LoRA shape comes from the SFT adapter."""

    lr: float = 5e-4
    beta: float = 0.1
    batch_size: int = 4
    weight_beta: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1 or not self.beta > 0 or self.weight_beta < 0:
            raise InputError(f"DPOConfig: need batch_size >= 1, beta > 0, weight_beta >= 0; got "
                             f"batch_size={self.batch_size}, beta={self.beta}, weight_beta={self.weight_beta}")
