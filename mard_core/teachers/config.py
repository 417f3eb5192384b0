"""Settings of the teacher backends (``hf``, ``http``, ``vllm``) and of the knowledge-grounded teacher
(``knowledge``); torch-free, so a teachers file is checked without loading any engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator
from pydantic.dataclasses import dataclass

from mard_core.validation import (
    CONFIG,
    NonEmptyStr,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)

MAX_CONFIDENCE = 0.95
"""The knowledge teacher's highest confidence."""


@dataclass(frozen=True, config=CONFIG)
class HFConfig:
    """``model``: a checkpoint directory or hub name; ``device``: "auto" (cuda when available), "cpu",
    "cuda", "cuda:1", ...; ``dtype``: "auto" (the checkpoint's) or float32/float16/bfloat16;
    ``batch_size``: prompts per ``generate`` call (each expands to n sequences)."""

    model: NonEmptyStr
    device: Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    batch_size: PositiveInt = 16


@dataclass(frozen=True, config=CONFIG)
class HTTPConfig:
    """``base_url`` includes the version prefix (``https://host/v1``); ``api``: "completions" or "chat";
    ``api_key_env``: name of the environment variable holding the key (None: no Authorization header).
    Failed requests (429, 5xx, timeouts, connection errors) are retried ``max_retries`` times with
    exponential backoff and jitter; a server's Retry-After is honoured. ``max_backoff_s`` caps any single
    wait. ``requests_per_second`` (None: unlimited) spaces request starts; ``max_concurrency`` bounds
    requests in flight. With n > 1, ``per_choice_token_counts`` asks for logprobs so each choice's token
    count is known; ``extra_body`` is merged into every request (e.g. server-specific sampling options)."""

    base_url: Annotated[str, Field(pattern=r"^https?://")]
    model: NonEmptyStr
    api: Literal["completions", "chat"] = "completions"
    api_key_env: NonEmptyStr | None = None
    timeout_s: PositiveFloat = 60.0
    max_retries: NonNegativeInt = 5
    backoff_base_s: NonNegativeFloat = 0.5
    max_backoff_s: NonNegativeFloat = 30.0
    requests_per_second: PositiveFloat | None = None
    max_concurrency: PositiveInt = 8
    per_choice_token_counts: StrictBool = True
    extra_body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, config=CONFIG)
class VLLMConfig:
    """Server settings. ``dtype``/``max_model_len``/``gpu_memory_utilization`` go to vLLM as is;
    ``cpu_kvcache_space_gb`` sets VLLM_CPU_KVCACHE_SPACE (read by the CPU build only); ``port`` None picks
    a free one; ``extra_args`` are appended to the server command line. Sampling uses only the request's
    parameters (``--generation-config vllm``), as the HF backend does."""

    model: NonEmptyStr
    venv: str | None = None
    served_model_name: str | None = None
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] = "float32"
    max_model_len: PositiveInt = 1024
    enforce_eager: StrictBool = True
    cpu_kvcache_space_gb: PositiveInt = 1
    gpu_memory_utilization: Annotated[StrictFloat, Field(gt=0, le=1)] | None = None
    host: NonEmptyStr = "127.0.0.1"
    port: Annotated[StrictInt, Field(ge=1, le=65535)] | None = None
    startup_timeout_s: PositiveFloat = 300.0
    request_timeout_s: PositiveFloat = 600.0
    max_concurrency: PositiveInt = 64
    extra_args: tuple[str, ...] = ()
    log_path: str | None = None


@dataclass(frozen=True, config=CONFIG)
class KnowledgeConfig:
    """``majority_label``: the answer when no evidence points anywhere (the training majority; the default is
    DrugBank's most frequent sentence type). ``min_confidence``: the confidence of an unsupported answer.
    ``use_gold``: in generation, explain the gold label of training pairs (False: always infer)."""

    majority_label: str = "PD Additive/Adverse effects/Bidirectional/Increase"
    min_confidence: Annotated[StrictFloat, Field(ge=0, le=MAX_CONFIDENCE)] = 0.1
    use_gold: StrictBool = True

    @field_validator("majority_label")
    @classmethod
    def _bidirectional(cls, label: str) -> str:
        from mard_core.taxonomy import BIDIRECTIONAL, Label, LabelError  # imports pyarrow: only when checked

        try:
            direction = Label.parse(label).direction
        except LabelError as exc:
            raise ValueError(str(exc)) from None
        if direction != BIDIRECTIONAL:
            raise ValueError(
                f"{label!r} must be Bidirectional (a directional label has no meaning without "
                "knowing which drug acts)"
            )
        return label
