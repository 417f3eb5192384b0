"""Settings of the demo models stage (``mard_core.tiny``); torch-free, so loading a config stays fast."""

from __future__ import annotations

from dataclasses import field, replace
from typing import Literal, Self

from pydantic import model_validator
from pydantic.dataclasses import dataclass

from mard_core.validation import CONFIG, NonNegativeInt, PositiveFloat, PositiveInt

Arch = Literal["llama", "qwen2", "mistral"]


@dataclass(frozen=True, config=CONFIG)
class TinyModelConfig:
    """Shape of a tiny model. head_dim = hidden_size / num_heads (vLLM's CPU attention needs e.g. 64)."""

    arch: Arch = "llama"
    hidden_size: PositiveInt = 128
    num_heads: PositiveInt = 2
    num_layers: PositiveInt = 2
    intermediate_size: PositiveInt = 256
    vocab_size: PositiveInt = 2048  # demo prompts (a few dozen evidence lines) fit in ~1,000 tokens
    max_position_embeddings: PositiveInt = 4096
    seed: NonNegativeInt = 0

    @model_validator(mode="after")
    def _heads_divide_hidden_size(self) -> Self:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True, config=CONFIG)
class WarmupConfig:
    """A short causal-LM training of a demo model on train-part prompts and gold chains: it stands in for the
    pre-training a real checkpoint has, so that a tiny base knows the prompt and answer format. ``models``:
    which demo models get it (names as in :meth:`ModelsConfig.model_names`); ``steps`` 0 turns it off."""

    steps: NonNegativeInt = 400
    lr: PositiveFloat = 3e-3
    batch_size: PositiveInt = 8
    models: tuple[str, ...] = ("student-base",)


@dataclass(frozen=True, config=CONFIG)
class ModelsConfig:
    """The demo's locally built models: three teacher architectures, the student base and the PRM base.

    Production names real checkpoints in the teachers file and the PRM/SFT configs instead; the sizes here
    only shape the random-init demo models (vocabulary and context sized so demo prompts fit).
    """

    teacher_archs: tuple[Arch, ...] = ("llama", "qwen2", "mistral")
    size: TinyModelConfig = field(default_factory=TinyModelConfig)
    corpus_pairs: PositiveInt = 200
    warmup: WarmupConfig = field(default_factory=WarmupConfig)

    @model_validator(mode="after")
    def _warmup_models_are_built(self) -> Self:
        unknown = sorted(set(self.warmup.models) - set(self.model_names()))
        if unknown:
            raise ValueError(
                f"warmup.models: unknown {unknown}; the demo models are {sorted(self.model_names())}"
            )
        return self

    def model_names(self) -> tuple[str, ...]:
        """What ``tiny.build_demo_models`` builds: ``tiny-<arch>`` teachers, ``student-base`` and
        ``prm-base``."""
        return (*(f"tiny-{arch}" for arch in self.teacher_archs), "student-base", "prm-base")

    def shape(self, arch: Arch) -> TinyModelConfig:
        return replace(self.size, arch=arch)
