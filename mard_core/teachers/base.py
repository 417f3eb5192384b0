"""The teacher-backend protocol: sampling parameters, completions, and a factory from config mappings."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Annotated, Any, ClassVar, Protocol, Self, runtime_checkable

from pydantic import Field, StrictFloat, StrictInt, field_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from mard_core.errors import InputError, MardError
from mard_core.validation import CONFIG, NonEmptyStr, NonNegativeFloat, PositiveInt, parse_config

FINISH_STOP, FINISH_LENGTH = "stop", "length"


class TeacherError(MardError):
    """A generation backend failed (server died, endpoint kept failing, model could not be loaded)."""


@pydantic_dataclass(frozen=True, config=CONFIG)
class GenerationParams:
    """Sampling settings shared by every backend (OpenAI semantics; temperature 0 means greedy).

    ``stop`` strings end a completion and are not part of its text (one string is read as a list of one).
    """

    n: PositiveInt = 1
    temperature: NonNegativeFloat = 0.8
    top_p: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.95
    max_tokens: PositiveInt = 256
    seed: StrictInt = 0
    stop: Annotated[tuple[NonEmptyStr, ...], Field(min_length=1)] | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, stop: Any) -> Any:
        return (stop,) if isinstance(stop, str) else stop


@dataclass(frozen=True)
class Completion:
    """One sampled continuation. ``latency_s`` is the wall time of the request/batch that produced it."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str


@runtime_checkable
class Backend(Protocol):
    """A text-generation engine. Backends subclass this to inherit context-manager support."""

    name: str

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Completion]]:
        """Return ``params.n`` completions for each prompt, in prompt order."""
        ...

    def close(self) -> None:
        """Release the engine (idempotent)."""
        ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")


def fill_placeholders(value: Any, placeholders: Mapping[str, str], where: str) -> Any:
    """``value`` with the ``{name}`` placeholders of every string replaced, recursively; an unknown name is an
    error naming ``where`` (and the key path below it)."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in placeholders:
                raise InputError(
                    f"{where}: unknown placeholder {{{m.group(1)}}}; known: {sorted(placeholders)}"
                )
            return str(placeholders[m.group(1)])

        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: fill_placeholders(v, placeholders, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [fill_placeholders(v, placeholders, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def placeholder_names(value: Any) -> set[str]:
    """The ``{name}`` placeholders used anywhere in ``value`` (strings, mappings, lists)."""
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, list | tuple) else ()
    return set().union(*(placeholder_names(v) for v in items))


class _SpecBackend(Backend, Protocol):
    """What ``make_backend`` needs of a backend class: its config dataclass and a constructor taking it."""

    config_cls: ClassVar[type]

    def __init__(self, config: Any) -> None: ...


_BACKENDS: dict[str, tuple[str, str]] = {
    "hf": ("mard_core.teachers.hf", "HFBackend"),
    "openai": ("mard_core.teachers.http", "HTTPBackend"),
    "vllm": ("mard_core.teachers.vllm", "VLLMBackend"),
}


def make_backend(spec: Mapping[str, Any]) -> Backend:
    """Create a backend from ``{"backend": "vllm"|"hf"|"openai", "model": ..., **options}``.

    The options are the fields of that backend's config dataclass (``HFConfig``, ``HTTPConfig``,
    ``VLLMConfig``).
    """
    kind = spec.get("backend")
    if kind not in _BACKENDS:
        raise InputError(f"teacher spec: 'backend' must be one of {sorted(_BACKENDS)}, got {kind!r}")
    module_name, class_name = _BACKENDS[kind]
    backend_cls: type[_SpecBackend] = getattr(importlib.import_module(module_name), class_name)
    options = {key: value for key, value in spec.items() if key != "backend"}
    return backend_cls(parse_config(backend_cls.config_cls, options, f"teacher spec for {kind!r}"))
