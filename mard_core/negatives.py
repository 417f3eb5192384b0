"""Deterministic programmatic hard negatives: one controlled error injected into a chosen completion.

Kinds (each changes exactly one thing):

* ``direction_flipped``: the answer's direction, A to B <-> B to A (none for a Bidirectional answer).
* ``sibling_subtype``: the answer's subtype, replaced by another subtype of the same family.
* ``wrong_protein``: the protein/gene of one step's protein claim, replaced by another protein from a list.
* ``modality_inverted``: the answer's modality, Increase <-> Decrease, Inhibition <-> Induction.
* ``citation_swapped``: one cited evidence id of one step, replaced by another evidence id of the prompt.

Choices among candidates (which sibling, step, protein, citation) come from a hash of the prompt, the source
completion and the kind, so the same input always gives the same negatives. A kind with no candidate (no
sibling subtype, no protein claim, a single evidence id) yields no negative.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from mard_core.chains import Completion, prompt_drugs
from mard_core.errors import InputError
from mard_core.prompts import PROTEIN_RELATIONS, extract_claims
from mard_core.taxonomy import A_TO_B, B_TO_A, DECREASE, INCREASE, INDUCTION, INHIBITION, Label, Taxonomy

DIRECTION_FLIPPED, SIBLING_SUBTYPE, WRONG_PROTEIN = "direction_flipped", "sibling_subtype", "wrong_protein"
MODALITY_INVERTED, CITATION_SWAPPED = "modality_inverted", "citation_swapped"
NEGATIVE_KINDS = (DIRECTION_FLIPPED, SIBLING_SUBTYPE, WRONG_PROTEIN, MODALITY_INVERTED, CITATION_SWAPPED)
INVERSE_MODALITY = {INCREASE: DECREASE, DECREASE: INCREASE, INHIBITION: INDUCTION, INDUCTION: INHIBITION}
FLIPPED_DIRECTION = {A_TO_B: B_TO_A, B_TO_A: A_TO_B}

_CITE = re.compile(r"\[(E\d+)\]")
_EVIDENCE_LINE = re.compile(r"^\[(E\d+)\]", re.MULTILINE)


@dataclass(frozen=True)
class Negative:
    """A corrupted completion, its kind and what was changed."""

    kind: str
    completion: Completion
    detail: str


def family_subtypes(taxonomy: Taxonomy) -> dict[str, list[str]]:
    """Family -> its subtype names, in taxonomy order (the map :func:`hard_negatives` takes)."""
    return {fam.name: [s.name for s in fam.subtypes] for fam in taxonomy.families}


def _index(n: int, key: str) -> int:
    """A deterministic choice in ``range(n)`` keyed by ``key``."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) % n


def _pick(options: Sequence[str], key: str) -> str:
    return options[_index(len(options), key)]


def _with_label(source: Completion, **fields: str) -> Completion:
    label = Label.parse(source.label)
    return replace(source, label=replace(label, **fields).slash())


def _direction_flipped(source: Completion, key: str) -> Negative | None:
    direction = Label.parse(source.label).direction
    if direction not in FLIPPED_DIRECTION:
        return None
    return Negative(
        DIRECTION_FLIPPED,
        _with_label(source, direction=FLIPPED_DIRECTION[direction]),
        f"direction {direction} -> {FLIPPED_DIRECTION[direction]}",
    )


def _sibling_subtype(source: Completion, key: str, siblings: Mapping[str, Sequence[str]]) -> Negative | None:
    label = Label.parse(source.label)
    options = sorted({s for s in siblings.get(label.family, ()) if s != label.subtype})
    if not options:
        return None
    sibling = _pick(options, key)
    return Negative(
        SIBLING_SUBTYPE, _with_label(source, subtype=sibling), f"subtype {label.subtype} -> {sibling}"
    )


def _modality_inverted(source: Completion, key: str) -> Negative | None:
    modality = Label.parse(source.label).modality
    return Negative(
        MODALITY_INVERTED,
        _with_label(source, modality=INVERSE_MODALITY[modality]),
        f"modality {modality} -> {INVERSE_MODALITY[modality]}",
    )


def _replace_step(source: Completion, index: int, text: str) -> Completion:
    steps = list(source.steps)
    steps[index] = text
    return replace(source, steps=tuple(steps))


def _wrong_protein(source: Completion, key: str, prompt: str, proteins: Sequence[str]) -> Negative | None:
    a, b = prompt_drugs(prompt)
    candidates: list[tuple[int, str]] = []
    for i, text in enumerate(source.steps):
        for claim in extract_claims(text, [a.name], [b.name]):
            if claim.relation in PROTEIN_RELATIONS and re.search(rf"\b{re.escape(claim.obj)}\b", text):
                candidates.append((i, claim.obj))
    if not candidates:
        return None
    index, protein = candidates[_index(len(candidates), key)]
    others = sorted({p for p in proteins if p and p.casefold() != protein.casefold()})
    if not others:
        return None
    new = _pick(others, f"{key}|{index}")
    text = re.sub(rf"\b{re.escape(protein)}\b", lambda _m: new, source.steps[index], count=1)
    return Negative(
        WRONG_PROTEIN, _replace_step(source, index, text), f"step {index + 1}: {protein} -> {new}"
    )


def _citation_swapped(source: Completion, key: str, prompt: str) -> Negative | None:
    evidence = list(dict.fromkeys(_EVIDENCE_LINE.findall(prompt)))
    slots = [(i, m) for i, text in enumerate(source.steps) for m in _CITE.finditer(text)]
    slots = [(i, m) for i, m in slots if any(e not in _CITE.findall(source.steps[i]) for e in evidence)]
    if not slots:
        return None
    index, match = slots[_index(len(slots), key)]
    text = source.steps[index]
    options = [e for e in evidence if e not in _CITE.findall(text)]
    new = _pick(options, f"{key}|{index}|{match.start()}")
    text = f"{text[: match.start()]}[{new}]{text[match.end() :]}"
    return Negative(
        CITATION_SWAPPED, _replace_step(source, index, text), f"step {index + 1}: {match.group(1)} -> {new}"
    )


def hard_negatives(
    prompt: str,
    source: Completion,
    siblings: Mapping[str, Sequence[str]],
    proteins: Sequence[str],
    kinds: Sequence[str] = NEGATIVE_KINDS,
) -> list[Negative]:
    """The negatives of ``source`` (a chosen completion for ``prompt``), one per kind that applies, in
    ``kinds`` order.

    ``siblings`` maps a family to its subtype names (:func:`family_subtypes`); ``proteins`` lists the
    protein/gene names a wrong-protein negative may substitute.
    """
    unknown = [k for k in kinds if k not in NEGATIVE_KINDS]
    if unknown:
        raise InputError(f"unknown negative kinds {unknown}; expected some of {', '.join(NEGATIVE_KINDS)}")
    base = f"{prompt}\x00{source.render()}"
    makers = {
        DIRECTION_FLIPPED: lambda k: _direction_flipped(source, k),
        SIBLING_SUBTYPE: lambda k: _sibling_subtype(source, k, siblings),
        WRONG_PROTEIN: lambda k: _wrong_protein(source, k, prompt, proteins),
        MODALITY_INVERTED: lambda k: _modality_inverted(source, k),
        CITATION_SWAPPED: lambda k: _citation_swapped(source, k, prompt),
    }
    out = [makers[kind](f"{base}\x00{kind}") for kind in kinds]
    return [n for n in out if n is not None]
