"""The teacher-backend protocol: sampling parameters, completions, and a factory from config mappings."""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

from mard_core.errors import InputError, MardError

FINISH_STOP, FINISH_LENGTH = "stop", "length"


class TeacherError(MardError):
    """A generation backend failed (server died, endpoint kept failing, model could not be loaded)."""


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings shared by every backend (OpenAI semantics; temperature 0 means greedy).

    ``stop`` strings end a completion and are not part of its text.
    """

    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InputError(f"GenerationParams.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise InputError(f"GenerationParams.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"GenerationParams.top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise InputError(f"GenerationParams.max_tokens must be >= 1, got {self.max_tokens}")
        if self.stop is not None:
            stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
            if not stop or any(not s for s in stop):
                raise InputError(f"GenerationParams.stop must be non-empty strings, got {self.stop!r}")
            object.__setattr__(self, "stop", stop)


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


ConfigT = TypeVar("ConfigT")


_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")


def fill_placeholders(value: Any, placeholders: Mapping[str, str], where: str) -> Any:
    """``value`` with the ``{name}`` placeholders of every string replaced, recursively; an unknown name is an
    error naming ``where`` (and the key path below it)."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in placeholders:
                raise InputError(f"{where}: unknown placeholder {{{m.group(1)}}}; known: {sorted(placeholders)}")
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


def config_from_mapping(cls: type[ConfigT], mapping: Mapping[str, Any], what: str) -> ConfigT:
    """Build the dataclass ``cls`` from ``mapping``; unknown or missing keys raise an error naming ``what``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise InputError(f"{what}: unknown keys {unknown}; allowed: {sorted(fields)}")
    missing = sorted(
        name
        for name, f in fields.items()
        if name not in mapping
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise InputError(f"{what}: missing required keys {missing}")
    return cls(**mapping)


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
    return backend_cls(config_from_mapping(backend_cls.config_cls, options, f"teacher spec for {kind!r}"))
