"""The student's view of a query and its constrained answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mard_core.chains import Completion
from mard_core.constrained import LabelTrie, answer_tokens, generate_answers
from mard_core.prompts import DrugRef, parse_completion, render_prompt
from mard_core.retrieval import Evidence
from mard_core.student_prompt import (
    StudentView,
    answer_line,
    from_roles,
    student_completion,
    student_prompt,
    to_roles,
)

A, B = "DB00582", "DB06626"
NAMES_A, NAMES_B = ("Voriconazole", "VFEND"), ("Axitinib",)


def _protein(i: int, drug: str, name: str, gene: str, actions: tuple[str, ...]) -> Evidence:
    phrase = " and ".join(actions)
    return Evidence(
        f"E{i}", "protein", drug, f"{name} is a {phrase} of {gene} (enzyme, P0{i})", "enzymes",
        gene_name=gene, actions=actions,
    )  # fmt: skip


def _analogue(i: int, similar_to: str, label: str) -> Evidence:
    return Evidence(
        f"E{i}", "similar_interaction", "DB09999", "Other with Another ...", "interactions",
        value=label, partner_id="DB09998", similar_to=similar_to,
    )  # fmt: skip


EVIDENCE = [
    _protein(1, A, "Voriconazole", "ERG11", ("inhibitor",)),
    _protein(2, A, "Voriconazole", "CYP2C9", ("substrate",)),
    _protein(3, A, "Voriconazole", "CYP3A4", ("substrate", "inhibitor")),
    _protein(4, B, "Axitinib", "CYP2C9", ("substrate",)),
    _protein(5, B, "Axitinib", "CYP3A4", ("substrate",)),
    Evidence(
        "E6",
        "category",
        A,
        "Voriconazole is in the category Antifungal Agents",
        "categories",
        value="Antifungal Agents",
    ),
    _analogue(7, A, "PK Metabolism/Metabolism/A to B/Inhibition"),
    _analogue(8, B, "PK Metabolism/Metabolism/B to A/Inhibition"),  # B's neighbour: the mirror of the above
    _analogue(9, A, "PD Additive/QTc prolongation/Bidirectional/Increase"),
]


def test_the_prompt_puts_the_mechanism_first_and_writes_the_drugs_by_role() -> None:
    view = student_prompt(A, B, NAMES_A, NAMES_B, EVIDENCE, max_items=10)
    lines = view.text.splitlines()
    assert lines[0] == "Query: Drug A with Drug B" and lines[-1] == "Reasoning:"
    # the perpetrator/victim protein (CYP3A4) first, then the other shared one, then analogues by count
    assert lines[1:5] == [
        "[E3] Drug A is a substrate and inhibitor of CYP3A4 (enzyme)",
        "[E5] Drug B is a substrate of CYP3A4 (enzyme)",
        "[E2] Drug A is a substrate of CYP2C9 (enzyme)",
        "[E4] Drug B is a substrate of CYP2C9 (enzyme)",
    ]
    assert lines[5] == "[E7] 2 similar pairs: PK Metabolism/Metabolism/<dir_ab>/Inhibition"
    assert lines[6] == "[E9] 1 similar pair: PD Additive/QTc prolongation/<dir_bi>/Increase"
    assert lines[7:9] == [
        "[E1] Drug A is a inhibitor of ERG11 (enzyme)",
        "[E6] Drug A category: Antifungal Agents",
    ]
    assert "Voriconazole" not in view.text and "Axitinib" not in view.text
    assert view.shown["E8"] == "E7" and view.shown["E3"] == "E3"
    short = student_prompt(A, B, NAMES_A, NAMES_B, EVIDENCE, max_items=3)
    assert len(short.text.splitlines()) == 5 and "E4" not in short.shown


def test_roles_round_trip_and_citations_follow_the_shown_lines() -> None:
    text = "Voriconazole (VFEND) inhibits CYP3A4, which metabolises Axitinib; voriconazoles is no name"
    roles = to_roles(text, NAMES_A, NAMES_B)
    assert roles == "Drug A (Drug A) inhibits CYP3A4, which metabolises Drug B; voriconazoles is no name"
    # one drug's name inside the other's: the longer name is the whole mention, whichever drug it names
    nested, e = "Estradiol increases the effects of estradiol cypionate", "Estradiol"
    assert to_roles(nested, [e], [f"{e} cypionate"]) == "Drug A increases the effects of Drug B"
    assert to_roles(nested, [f"{e} cypionate"], [e]) == "Drug B increases the effects of Drug A"
    assert (
        from_roles("Drug A inhibits Drug B", "Voriconazole", "Axitinib") == "Voriconazole inhibits Axitinib"
    )
    view = student_prompt(A, B, NAMES_A, NAMES_B, EVIDENCE, max_items=6)
    chain = Completion(
        ("Voriconazole is an inhibitor of CYP3A4 [E3]", "Similar pairs agree [E7] [E8] [E1]"),
        "PK Metabolism/Metabolism/A to B/Inhibition",
        0.9,
    )
    assert student_completion(chain, NAMES_A, NAMES_B, view.shown) == (
        "Step 1: Drug A is an inhibitor of CYP3A4 [E3]\n"
        "Step 2: Similar pairs agree [E7]\n"  # E8 is shown as E7; E1 is not shown
        "ANSWER: PK Metabolism/Metabolism/<dir_ab>/Inhibition\n"
    )


def test_the_mirrored_example_swaps_the_roles_and_the_direction() -> None:
    view = StudentView(lambda a, b: EVIDENCE, {A: NAMES_A, B: NAMES_B})
    prompt = render_prompt(DrugRef(A, "Voriconazole"), DrugRef(B, "Axitinib"), EVIDENCE)
    completion = (
        "Step 1: Voriconazole is an inhibitor of CYP3A4 [E3].\n"
        "Step 2: Axitinib is a substrate of CYP3A4 [E5].\n"
        "ANSWER: PK Metabolism/Metabolism/A to B/Inhibition | confidence 0.90\n"
    )
    forward, mirrored = view.example(prompt, completion), view.example(prompt, completion, swap=True)
    assert forward[1].endswith("ANSWER: PK Metabolism/Metabolism/<dir_ab>/Inhibition\n")
    assert mirrored[1].startswith("Step 1: Drug B is an inhibitor of CYP3A4 [E3].")
    assert mirrored[1].endswith("ANSWER: PK Metabolism/Metabolism/<dir_ba>/Inhibition\n")
    assert "[E5] Drug A is a substrate of CYP3A4 (enzyme)" in mirrored[0]


LABELS = [
    "PK Metabolism/Metabolism/A to B/Inhibition",
    "PK Metabolism/Metabolism/B to A/Inhibition",
    "PD Additive/QTc prolongation/Bidirectional/Increase",
]


@pytest.fixture(scope="module")
def model(student_base: Path) -> tuple[torch.nn.Module, object]:
    return AutoModelForCausalLM.from_pretrained(student_base).eval(), AutoTokenizer.from_pretrained(
        student_base
    )


def test_constrained_answers_are_always_valid_labels(model: tuple[torch.nn.Module, object]) -> None:
    lm, tokenizer = model
    trie = LabelTrie(tokenizer, [answer_line(label) for label in LABELS])
    prompts = [f"Query: Drug A with Drug B\n[E1] fact {i}\nReasoning:\n" for i in range(5)]
    for budget in (0, 40):  # the marker forced at once, or free text first
        for g in generate_answers(lm, tokenizer, prompts, trie, budget, batch_size=2):
            answer = parse_completion(g.text).answer
            assert answer is not None and answer.label in LABELS, g.text
            assert 0 < g.confidence <= 1 and g.completion_tokens <= budget + answer_tokens(trie)


def test_the_confidence_is_the_label_probability_among_the_allowed_labels(
    model: tuple[torch.nn.Module, object],
) -> None:
    lm, tokenizer = model
    two = LABELS[:2]  # differ in the direction token only
    trie = LabelTrie(tokenizer, [answer_line(label) for label in two])
    prompt = "Query: Drug A with Drug B\nReasoning:"
    (g,) = generate_answers(lm, tokenizer, [prompt], trie, 0, 1)
    ids = tokenizer(prompt)["input_ids"] + trie.forced  # the budget forces a new line and the marker
    marker = len(trie.marker)
    tails = [tokenizer(answer_line(x), add_special_tokens=False)["input_ids"][marker:] for x in two]
    split = next(i for i, (x, y) in enumerate(zip(*tails, strict=False)) if x != y)  # the direction token
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([ids + tails[0][:split]])).logits[0, -1]
    local = logits[[tails[0][split], tails[1][split]]].softmax(-1)  # renormalised over the two labels
    best = int(local.argmax())
    assert parse_completion(g.text).answer.label == two[best]
    assert g.confidence == pytest.approx(local[best].item(), rel=1e-4)
