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
class StudentShape(TinyModelConfig):
    """The demo student base: 4 layers of 256 (3.3 M parameters besides embeddings); its prompts and chains
    fit in 512 positions."""

    hidden_size: PositiveInt = 256
    num_heads: PositiveInt = 4
    num_layers: PositiveInt = 4
    intermediate_size: PositiveInt = 512
    max_position_embeddings: PositiveInt = 512


@dataclass(frozen=True, config=CONFIG)
class WarmupConfig:
    """The demo student base's training: every training pair of the split, both orders, in the student's
    view, with the knowledge-grounded teacher's chain for its gold label, the loss on the completion. It
    stands in for a real checkpoint's pre-training and instruction tuning (a random-init model has neither),
    so that SFT and DPO start from a base that reads the prompt and writes chains; ``student:base`` in the
    leaderboard shows what it alone scores. ``steps`` 0 turns it off. Linear warm-up (20 steps) and decay."""

    steps: NonNegativeInt = 800
    lr: PositiveFloat = 2e-3
    batch_size: PositiveInt = 16


@dataclass(frozen=True, config=CONFIG)
class ModelsConfig:
    """The demo's locally built models: three teacher architectures, the student base and the PRM base.

    Production names real checkpoints in the teachers file and the PRM/SFT configs instead; the sizes here
    only shape the random-init demo models (vocabulary and context sized so demo prompts fit).
    """

    teacher_archs: tuple[Arch, ...] = ("llama", "qwen2", "mistral")
    size: TinyModelConfig = field(default_factory=TinyModelConfig)
    student: StudentShape = field(default_factory=lambda: StudentShape())
    corpus_pairs: PositiveInt = 200
    warmup: WarmupConfig = field(default_factory=WarmupConfig)

    def model_names(self) -> tuple[str, ...]:
        """What ``tiny.build_demo_models`` builds: ``tiny-<arch>`` teachers, ``student-base`` and
        ``prm-base``."""
        return (*(f"tiny-{arch}" for arch in self.teacher_archs), "student-base", "prm-base")

    def shape(self, arch: Arch) -> TinyModelConfig:
        return replace(self.size, arch=arch)
