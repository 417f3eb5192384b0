"""Prompt/trajectory format: render -> parse round trip, claims, malformed output reported not guessed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mard_core.prompts import (
    Claim,
    DrugRef,
    parse_answer,
    parse_completion,
    prompt_hash,
    render_completion,
    render_prompt,
)

LABEL = "PK Metabolism/Metabolism/A to B/Inhibition"
STEPS = [
    ("Voriconazole is an inhibitor of CYP3A4", ["E3"]),
    ("Axitinib is a substrate of CYP3A4", ["E7"]),
    ("Voriconazole decreases the metabolism of Axitinib", []),
]


@dataclass
class Ev:
    id: str
    sentence: str


def test_prompt_lists_pair_and_numbered_evidence() -> None:
    prompt = render_prompt(
        DrugRef("DB00582", "Voriconazole"),
        DrugRef("DB06626", "Axitinib"),
        [Ev("E1", "Voriconazole is an inhibitor of CYP3A4 (enzyme, P08684).")],
    )
    assert prompt.startswith("Drug A: Voriconazole (DB00582)\nDrug B: Axitinib (DB06626)\nEvidence:\n[E1] ")
    assert prompt_hash(prompt) == prompt_hash(prompt) != prompt_hash(prompt + " ")


@pytest.mark.parametrize("token", [False, True])
def test_round_trip(token: bool) -> None:
    text = render_completion(STEPS, LABEL, 0.85, direction_token=token)
    assert ("<dir_ab>" in text) is token
    parsed = parse_completion(text, ["Voriconazole"], ["Axitinib"], ["E3", "E7"])
    assert parsed.ok and parsed.answer.label == LABEL and parsed.answer.confidence == 0.85
    assert [s.citations for s in parsed.steps] == [["E3"], ["E7"], []]
    assert [s.claims for s in parsed.steps] == [
        [Claim("A", "inhibitor", "CYP3A4")],
        [Claim("B", "substrate", "CYP3A4")],
        [Claim("A", "process", "metabolism", "decrease")],
    ]


def test_claim_resolution_prefers_the_longest_name() -> None:
    text = (
        "Step 1: Estradiol valerate is a substrate of CYP3A4.\n"
        "ANSWER: PK Exposure/Serum concentration/B to A/Increase"
    )
    parsed = parse_completion(text, ["Estradiol"], ["Estradiol valerate"])
    assert parsed.steps[0].claims == [Claim("B", "substrate", "CYP3A4")] and parsed.ok


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Step 1: something.", "no ANSWER line"),
        ("Step 1: x.\nANSWER: PK Metabolism/Metabolism/Inhibition", "Family/Subtype/Direction/Modality"),
        ("ANSWER: A/B/sideways/D", "unknown direction"),
        ("ANSWER: A/B/A to B/D | confidence 1.7", "outside [0, 1]"),
        ("Step 2: x.\nANSWER: A/B/A to B/D", "out of order"),
        ("Step 1: x [E9].\nANSWER: A/B/A to B/D", "unknown evidence E9"),
        ("Blah\nANSWER: A/B/A to B/D", "unparseable line"),
        ("ANSWER: A/B/A to B/D\nANSWER: A/B/B to A/D", "more than one ANSWER"),
    ],
)
def test_malformed_output_is_reported(text: str, error: str) -> None:
    parsed = parse_completion(text, ["x"], ["y"], ["E1"])
    assert not parsed.ok and any(error in e for e in parsed.errors), parsed.errors


def test_steps_outside_the_grammar_have_no_claims() -> None:
    parsed = parse_completion(
        "Step 1: The moon is bright.\nANSWER: A/B/Bidirectional/Increase", ["Alpha"], ["Beta"]
    )
    assert parsed.ok and parsed.steps[0].claims == []
    answer, error = parse_answer("ANSWER: F/S/<dir_ba>/Decrease | confidence .5")
    assert error is None and answer.direction == "B to A" and answer.confidence == 0.5
