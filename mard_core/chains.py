"""Reasoning chains in structured form, shared by training, the PRM and the metrics.

A trajectory row (``schemas.TRAJECTORIES``) answers the ordered query (A, B) named by the header lines of its
prompt (:func:`prompt_drugs`); :class:`Completion` holds its steps and answer and renders the canonical
student text, with the direction written as one token (``<dir_ab>`` ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from mard_core.errors import InputError
from mard_core.prompts import DIRECTION_TOKENS, DrugRef, render_answer
from mard_core.taxonomy import Label, LabelError

Row = Mapping[str, Any]

_HEADER = re.compile(r"^Drug (A|B): (.+) \(([^()]+)\)$")


def row_name(row: Row) -> str:
    """A trajectory's identity for error messages."""
    return (
        f"trajectory ({row.get('drug_a')}, {row.get('drug_b')}) teacher {row.get('teacher')!r} "
        f"sample {row.get('sample')}"
    )


@dataclass(frozen=True)
class Completion:
    """A completion in structured form: step texts (citations inline, no ``Step i:`` prefix) and the
    answer."""

    steps: tuple[str, ...]
    label: str
    confidence: float | None = None

    @classmethod
    def from_row(cls, row: Row) -> Completion:
        """The parsed steps and answer of a trajectory row; the row must have a parsed answer."""
        answer = row.get("answer")
        if not answer:
            raise InputError(f"{row_name(row)}: no parsed answer, cannot build a training completion")
        steps = row.get("steps") or []
        if not steps:
            raise InputError(f"{row_name(row)}: no steps")
        try:
            Label.parse(answer)
        except LabelError as exc:
            raise InputError(f"{row_name(row)}: {exc}") from exc
        confidence = row.get("confidence")
        return cls(
            tuple(str(s["text"]) for s in steps), answer, None if confidence is None else float(confidence)
        )

    def render(self) -> str:
        """Canonical student text: ``Step i: ...`` lines, then the answer with the direction token."""
        lines = [f"Step {i}: {text}" for i, text in enumerate(self.steps, 1)]
        if self.confidence is None:
            family, subtype, direction, modality = self.label.split("/")
            lines.append(f"ANSWER: {family}/{subtype}/{DIRECTION_TOKENS[direction]}/{modality}")
        else:
            lines.append(render_answer(self.label, self.confidence, direction_token=True))
        return "\n".join(lines) + "\n"

    def mirrored(self) -> Completion:
        """The same completion for the swapped query: only the answer's direction changes."""
        return replace(self, label=Label.parse(self.label).mirrored().slash())


def prompt_drugs(prompt: str) -> tuple[DrugRef, DrugRef]:
    """(A, B) from the ``Drug A:`` / ``Drug B:`` header lines of a prompt."""
    lines = prompt.split("\n", 2)
    found = [_HEADER.match(line) for line in lines[:2]]
    if len(lines) < 3 or not all(found) or [m.group(1) for m in found if m] != ["A", "B"]:
        raise InputError(
            f"prompt does not start with 'Drug A: name (id)' and 'Drug B: name (id)' lines: {prompt[:120]!r}"
        )
    a, b = (DrugRef(m.group(3), m.group(2)) for m in found if m)
    return a, b
