"""The systems an evaluation config names, by name prefix (:data:`SYSTEMS`), and :func:`build_system`.

Production serving: the merged student served by vLLM's OpenAI-compatible server is a ``student:<name>`` (or
``endpoint:<name>``) system whose ``backend`` is ``{"backend": "vllm", ...}`` or ``{"backend": "openai",
"base_url": ...}``; :class:`BackendSystem` queries it with the very prompts and parser the harness uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from mard_core.errors import InputError, MardError
from mard_core.evaluation.systems import KINDS, BaseSystem, Prediction, Query, System, SystemContext
from mard_core.prompts import parse_completion, render_prompt
from mard_core.student_prompt import MAX_ITEMS, from_roles, student_prompt
from mard_core.teachers.base import Backend, GenerationParams, fill_placeholders, make_backend
from mard_core.validation import parse_config


class BackendSystem(BaseSystem):
    """A generation backend answering through the prompts format: one greedy completion per query, parsed by
    :func:`mard_core.prompts.parse_completion` (teachers zero-shot, the student, hosted endpoints, vLLM)."""

    def __init__(
        self,
        backend: Backend,
        name: str,
        kind: str,
        params: GenerationParams | None = None,
        possibly_contaminated: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise InputError(f"system {name!r}: kind {kind!r} is not one of {KINDS}")
        self.backend = backend
        self.name, self.kind, self.possibly_contaminated = name, kind, possibly_contaminated
        self.params = params or GenerationParams(temperature=0.0)

    def _prompt(self, q: Query) -> str:
        """A student reads its own view (:mod:`mard_core.student_prompt`); others the shared prompt."""
        if self.kind == "student":
            return student_prompt(q.drug_a, q.drug_b, q.names_a, q.names_b, q.evidence, MAX_ITEMS).text
        return render_prompt(q.ref_a, q.ref_b, q.evidence)

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        prompts = [self._prompt(q) for q in queries]
        outputs = self.backend.generate(prompts, replace(self.params, n=1)) if prompts else []
        if len(outputs) != len(queries):
            raise MardError(
                f"system {self.name!r}: backend returned {len(outputs)} results for {len(queries)} prompts"
            )
        predictions = []
        for query, (completion, *_) in zip(queries, outputs, strict=True):
            text = completion.text
            if self.kind == "student":
                text = from_roles(text, query.names_a[0], query.names_b[0])
            parsed = parse_completion(text, query.names_a, query.names_b)
            answer = parsed.answer
            if answer is not None and all(answer.label.split("/")):
                label, confidence = answer.label, answer.confidence
            else:
                label, confidence = None, None
            predictions.append(
                Prediction(
                    label,
                    confidence,
                    text,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                )
            )
        return predictions

    def close(self) -> None:
        self.backend.close()


SystemFactory = Callable[[Mapping[str, Any], SystemContext], System]


_GENERATION_KEYS = ("temperature", "top_p", "max_tokens", "seed", "stop")


def _backend_system(kind: str, default_contaminated: bool) -> SystemFactory:
    """Factory of :class:`BackendSystem`: options ``backend`` (a ``make_backend`` spec), or for students
    ``model`` (+ ``device``, ``dtype``, ``batch_size``) for the transformers backend; generation options
    ``temperature`` (default 0), ``top_p``, ``max_tokens``, ``seed``, ``stop``; ``possibly_contaminated``."""

    def build(spec: Mapping[str, Any], ctx: SystemContext) -> System:
        name = spec["name"]
        options = fill_placeholders(
            {k: v for k, v in spec.items() if k != "name"}, ctx.placeholders, f"system {name!r}"
        )
        contaminated = bool(options.pop("possibly_contaminated", default_contaminated))
        generation = {k: options.pop(k) for k in _GENERATION_KEYS if k in options}
        params = parse_config(GenerationParams, {"temperature": 0.0, **generation}, f"system {name!r}")
        if "backend" in options:
            backend_spec = options.pop("backend")
        elif kind == "student" and "model" in options:
            from mard_core.evaluation.student import StudentSystem  # imports torch

            student = {k: options.pop(k) for k in ("model", "device", "dtype", "batch_size") if k in options}
            if options or set(generation) - {"max_tokens"}:
                raise InputError(f"system {name!r}: unknown options {sorted(options) or sorted(generation)}")
            return StudentSystem(name=name, taxonomy=ctx.taxonomy, **student, **generation)
        else:
            alternative = " or a 'model'" if kind == "student" else ""
            raise InputError(f"system {name!r}: needs a 'backend' spec{alternative}")
        if options:
            raise InputError(f"system {name!r}: unknown options {sorted(options)}")
        return BackendSystem(make_backend(backend_spec), name, kind, params, contaminated)

    return build


def _baseline(class_name: str) -> SystemFactory:
    """Factory of a baseline of :mod:`mard_core.baselines` (imported when first built: the baselines import
    torch, and importing :class:`~mard_core.evaluation.config.EvalConfig` must not)."""

    def build(spec: Mapping[str, Any], ctx: SystemContext) -> System:
        from mard_core import baselines

        options = {k: v for k, v in spec.items() if k != "name"}
        return getattr(baselines, class_name).from_context(ctx, spec["name"], **options)

    return build


SYSTEMS: dict[str, SystemFactory] = {
    "majority": _baseline("MajorityBaseline"),
    "drug_prior": _baseline("DrugPriorBaseline"),
    "knowledge_rules": _baseline("KnowledgeRulesBaseline"),
    "similarity": _baseline("SimilarityBaseline"),
    "feature_mlp": _baseline("FeatureMLPBaseline"),
    "bag_of_evidence": _baseline("BagOfEvidenceBaseline"),
    "teacher": _backend_system("teacher", default_contaminated=False),
    "student": _backend_system("student", default_contaminated=False),
    "endpoint": _backend_system("endpoint", default_contaminated=True),
}
"""System kinds by name prefix: ``teacher:<name>``, ``student:<name>`` and ``endpoint:<name>`` (hosted,
``possibly_contaminated`` unless set false) wrap a backend; the others are the baselines."""


def build_system(spec: Mapping[str, Any] | str, ctx: SystemContext) -> System:
    """The system a config entry names (``"majority"``, ``{"name": "student:mard", "model": ...}``)."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    prefix = str(spec.get("name", "")).split(":", 1)[0]
    if prefix not in SYSTEMS:
        raise InputError(f"unknown system {spec.get('name')!r}; known kinds: {sorted(SYSTEMS)}")
    return SYSTEMS[prefix](spec, ctx)
