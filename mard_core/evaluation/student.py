"""The student answering in its own view (:mod:`mard_core.student_prompt`) with an answer line constrained to
the taxonomy's labels (:mod:`mard_core.constrained`), batched on transformers; the confidence is the
probability of the chosen label. The chain it returns names the query's drugs (roles written back)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mard_core.constrained import LabelTrie, generate_answers
from mard_core.errors import InputError
from mard_core.evaluation.systems import BaseSystem, Prediction, Query
from mard_core.prompts import parse_completion
from mard_core.student_prompt import MAX_ITEMS, answer_line, from_roles, student_prompt
from mard_core.taxonomy import Taxonomy, load_taxonomy
from mard_core.teachers.hf import resolve_device

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class StudentSystem(BaseSystem):
    """A student model directory (merged weights and tokenizer) answering ``student:<name>`` queries;
    ``max_tokens`` is the chain's token budget (the answer line always gets room after it)."""

    kind = "student"

    def __init__(
        self,
        model: str | Path,
        name: str,
        taxonomy: Taxonomy | None = None,
        device: str = "auto",
        dtype: str = "float32",
        batch_size: int = 64,
        max_tokens: int = 64,
    ) -> None:
        self.name, self.batch_size, self.max_tokens = name, batch_size, max_tokens
        if dtype not in _DTYPES:
            raise InputError(f"system {name!r}: dtype {dtype!r} is not one of {sorted(_DTYPES)}")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            loaded = AutoModelForCausalLM.from_pretrained(model, dtype=_DTYPES[dtype])
        except OSError as exc:
            raise InputError(f"system {name!r}: cannot load student model {model}: {exc}") from exc
        self.model = loaded.to(resolve_device(device)).eval()  # type: ignore[arg-type]  # wrapped .to
        labels = (taxonomy or load_taxonomy()).labels()
        self.trie = LabelTrie(self.tokenizer, [answer_line(label.slash()) for label in labels])

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        prompts = [
            student_prompt(q.drug_a, q.drug_b, q.names_a, q.names_b, q.evidence, MAX_ITEMS).text
            for q in queries
        ]
        generated = generate_answers(
            self.model, self.tokenizer, prompts, self.trie, self.max_tokens, self.batch_size
        )
        out = []
        for query, g in zip(queries, generated, strict=True):
            text = from_roles(g.text.rstrip("\n"), query.names_a[0], query.names_b[0])
            text += f" | confidence {g.confidence:.2f}\n"
            answer = parse_completion(text, query.names_a, query.names_b).answer
            label = answer.label if answer is not None else None
            out.append(Prediction(label, g.confidence, text, g.prompt_tokens, g.completion_tokens))
        return out

    def close(self) -> None:
        """Drop the model."""
        del self.model
