"""Programmatic hard negatives: each kind changes exactly one thing, deterministically."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mard_core.chains import Completion
from mard_core.errors import InputError
from mard_core.negatives import (
    CITATION_SWAPPED,
    DIRECTION_FLIPPED,
    MODALITY_INVERTED,
    NEGATIVE_KINDS,
    SIBLING_SUBTYPE,
    WRONG_PROTEIN,
    family_subtypes,
    hard_negatives,
)
from mard_core.prompts import parse_completion
from mard_core.taxonomy import load_taxonomy
from mard_core.training.data import synthetic_trajectories

PROTEINS = ["CYP3A4", "CYP2D6", "CYP2C9", "ABCB1"]
SIBLINGS = {"PK Metabolism": ["Metabolism", "Other"], "PD Additive": ["Bleeding", "Adverse effects", "Other"]}


def _source(i: int = 0) -> tuple[str, Completion]:
    row = synthetic_trajectories(3)[i]
    return row["prompt"], Completion.from_row(row)


def _answer_fields(completion: Completion) -> tuple[str, ...]:
    parsed = parse_completion(completion.render())
    assert parsed.ok, parsed.errors
    a = parsed.answer
    return a.family, a.subtype, a.direction, a.modality


def _by_kind(prompt: str, source: Completion) -> dict[str, Completion]:
    return {n.kind: n.completion for n in hard_negatives(prompt, source, SIBLINGS, PROTEINS)}


def _differing_fields(a: Completion, b: Completion) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(_answer_fields(a), _answer_fields(b), strict=True)) if x != y]


def test_every_kind_applies_to_a_cyp_inhibition_trajectory() -> None:
    prompt, source = _source()
    negatives = hard_negatives(prompt, source, SIBLINGS, PROTEINS)
    assert [n.kind for n in negatives] == list(NEGATIVE_KINDS)
    assert all(n.completion != source and n.detail for n in negatives)


@pytest.mark.parametrize(
    ("kind", "field", "expected"),
    [
        (DIRECTION_FLIPPED, 2, "B to A"),
        (SIBLING_SUBTYPE, 1, "Other"),
        (MODALITY_INVERTED, 3, "Induction"),
    ],
)
def test_answer_negatives_change_only_their_field(kind: str, field: int, expected: str) -> None:
    prompt, source = _source()
    negative = _by_kind(prompt, source)[kind]
    assert _answer_fields(source)[2:] == ("A to B", "Inhibition")
    assert negative.steps == source.steps and negative.confidence == source.confidence
    assert _differing_fields(source, negative) == [field]
    assert _answer_fields(negative)[field] == expected


def test_wrong_protein_changes_one_protein_in_one_step() -> None:
    prompt, source = _source()
    negative = _by_kind(prompt, source)[WRONG_PROTEIN]
    assert negative.label == source.label
    changed = [i for i, (a, b) in enumerate(zip(source.steps, negative.steps, strict=True)) if a != b]
    assert len(changed) == 1
    old, new = source.steps[changed[0]], negative.steps[changed[0]]
    assert "CYP3A4" in old
    replacement = next(p for p in PROTEINS if p in new and p not in old)
    assert new.replace(replacement, "CYP3A4", 1) == old


def test_citation_swap_changes_one_citation_to_another_prompt_evidence_id() -> None:
    prompt, source = _source()
    negative = _by_kind(prompt, source)[CITATION_SWAPPED]
    assert negative.label == source.label
    before = parse_completion(source.render()).steps
    after = parse_completion(negative.render()).steps
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a.text != b.text]
    assert len(changed) == 1
    i = changed[0]
    assert len(before[i].citations) == len(after[i].citations) == 1
    assert {before[i].citations[0], after[i].citations[0]} == {"E1", "E2"}
    assert (
        before[i].text.replace(f"[{before[i].citations[0]}]", f"[{after[i].citations[0]}]") == after[i].text
    )


def test_same_input_gives_same_negatives() -> None:
    prompt, source = _source()
    assert hard_negatives(prompt, source, SIBLINGS, PROTEINS) == hard_negatives(
        prompt, source, SIBLINGS, PROTEINS
    )


def test_kinds_without_candidates_are_skipped() -> None:
    prompt, source = _source(2)  # symmetric bleeding: Bidirectional, no protein claim
    kinds = set(_by_kind(prompt, source))
    assert kinds == {SIBLING_SUBTYPE, MODALITY_INVERTED, CITATION_SWAPPED}
    one_evidence = prompt.replace("[E2]", "Also:")
    only_e1 = replace(source, steps=tuple(s.replace("[E2]", "[E1]") for s in source.steps))
    assert CITATION_SWAPPED not in _by_kind(one_evidence, only_e1)
    assert WRONG_PROTEIN not in {n.kind for n in hard_negatives(*_source(), SIBLINGS, ["CYP3A4"])}


def test_modality_inverts_increase_and_sibling_comes_from_the_same_family() -> None:
    prompt, source = _source(2)
    negatives = _by_kind(prompt, source)
    assert _answer_fields(negatives[MODALITY_INVERTED])[3] == "Decrease"
    assert _answer_fields(negatives[SIBLING_SUBTYPE])[1] in {"Adverse effects", "Other"}


def test_taxonomy_map_and_bad_kind() -> None:
    siblings = family_subtypes(load_taxonomy())
    assert siblings["PK Metabolism"] == ["Metabolism", "Other"]
    prompt, source = _source()
    assert {n.kind for n in hard_negatives(prompt, source, siblings, PROTEINS)} == set(NEGATIVE_KINDS)
    with pytest.raises(InputError, match="unknown negative kinds"):
        hard_negatives(prompt, source, siblings, PROTEINS, kinds=["typo"])
    with pytest.raises(InputError, match="Drug A"):
        hard_negatives("no header\n", source, siblings, PROTEINS)
