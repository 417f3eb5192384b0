"""Settings of teacher generation (``mard_core.generate``): the teachers stage of the pipeline config, and the
teachers file it names (its ``teachers:`` list and ``generate:`` knobs); torch-free, so loading a config
stays fast."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, StrictBool, StrictFloat, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

from mard_core.splits_config import Strategy
from mard_core.teachers.base import GenerationParams
from mard_core.teachers.config import KnowledgeConfig
from mard_core.validation import (
    CONFIG,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    error_line,
    readable,
)

Family = Literal["llama", "qwen2", "mistral", "knowledge", "api"]
FAMILIES: tuple[str, ...] = typing.get_args(Family)
MODEL_BACKENDS = ("hf", "openai", "vllm")
KNOWLEDGE = "knowledge"
DEMO_TEACHERS = Path(__file__).resolve().parent / "data" / "teachers.yaml"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass(frozen=True, config=CONFIG)
class TeacherSpec:
    """One teacher: ``backend`` is a ``make_backend`` spec (``{"backend": "hf", "model": ...}``) or
    ``{"backend": "knowledge", **KnowledgeConfig fields}``; ``n`` samples per prompt; ``num_gpus`` per task
    (None: ``GenerateConfig.num_gpus_per_teacher`` for local models, 0 for the knowledge and API teachers)."""

    name: str
    family: Family
    backend: dict[str, Any]
    n: PositiveInt = 1
    temperature: NonNegativeFloat = 0.8
    top_p: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.95
    max_tokens: PositiveInt = 256
    num_gpus: NonNegativeFloat | None = None

    @field_validator("name")
    @classmethod
    def _names_a_directory(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(f"{name!r}: must be letters, digits, '_', '.', '-' (it names a directory)")
        return name

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, backend: dict[str, Any]) -> dict[str, Any]:
        kind = backend.get("backend")
        if kind != KNOWLEDGE and kind not in MODEL_BACKENDS:
            raise ValueError(f"backend {kind!r} is not one of {[*MODEL_BACKENDS, KNOWLEDGE]}")
        if kind == KNOWLEDGE:
            try:
                KnowledgeConfig(**_options(backend))
            except ValidationError as exc:
                raise ValueError(f"knowledge options: {error_line(exc, KnowledgeConfig)}") from None
        return backend

    @model_validator(mode="after")
    def _knowledge_family(self) -> Self:
        kind = self.backend["backend"]
        if (kind == KNOWLEDGE) != (self.family == KNOWLEDGE):
            raise ValueError(
                f"family 'knowledge' goes with backend 'knowledge' and only with it "
                f"(family {self.family!r}, backend {kind!r})"
            )
        if kind == KNOWLEDGE and self.n != 1:
            raise ValueError(f"the knowledge teacher is deterministic; n must be 1, got {self.n}")
        return self

    @property
    def is_knowledge(self) -> bool:
        return self.family == KNOWLEDGE

    def knowledge_config(self) -> KnowledgeConfig:
        return KnowledgeConfig(**_options(self.backend))

    def params(self, seed: int) -> GenerationParams:
        return GenerationParams(
            n=self.n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=seed
        )

    def gpus(self, default: float) -> float:
        if self.num_gpus is not None:
            return self.num_gpus
        return 0.0 if self.is_knowledge or self.backend["backend"] == "openai" else default


def _options(backend: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in backend.items() if k != "backend"}


@dataclass(frozen=True, config=CONFIG)
class GenerateConfig:
    """Sampling and execution knobs. A pair is rare when its rarer drug has at most ``rare_max_count``
    training pairs; with ``include_rare`` a ``rare_share`` of ``max_pairs`` is reserved for rare pairs.
    ``executor``: "ray" (``ray.init(num_cpus=ray_num_cpus)`` unless Ray is running; the cluster at RAY_ADDRESS
    when set) or "local" (same shard function, in process)."""

    teachers: tuple[TeacherSpec, ...] = ()
    per_stratum: PositiveInt = 4
    max_pairs: PositiveInt = 400
    include_rare: StrictBool = True
    rare_max_count: NonNegativeInt = 2
    rare_share: Fraction = 0.25
    shard_size: PositiveInt = 50
    seed: NonNegativeInt = 0
    max_retries: NonNegativeInt = 2
    executor: Literal["ray", "local"] = "ray"
    ray_num_cpus: PositiveInt = 2
    num_gpus_per_teacher: NonNegativeFloat = 0.0

    @model_validator(mode="after")
    def _unique_teacher_names(self) -> Self:
        names = [t.name for t in self.teachers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"teachers: duplicate names {dupes}")
        return self


@dataclass(frozen=True, config=CONFIG)
class TeachersConfig:
    """The teachers stage: which teachers file, which split strategy the student learns from, and how many
    validation queries are generated (for PRM evaluation and threshold choice only, never for training)."""

    file: str = ""  # a teachers YAML (relative: to the working directory); empty: the bundled demo ensemble
    split: Strategy = "cold_drug"
    valid_pairs: PositiveInt = 40

    @field_validator("file")
    @classmethod
    def _file_exists(cls, file: str) -> str:
        return readable(file) if file else file

    @property
    def path(self) -> Path:
        """The teachers file this config names."""
        return Path(self.file) if self.file else DEMO_TEACHERS
