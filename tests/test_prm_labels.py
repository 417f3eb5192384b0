"""PRM step labels: verifier rules on hand-made steps, trajectory tables, rollouts with a fake sampler,
agreement."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pytest

from mard_core.errors import InputError
from mard_core.prm.labels import (
    CompleteFn,
    agreement,
    backend_complete_fn,
    label_trajectories,
    label_trajectory,
    rollout_labels,
)
from mard_core.prompts import DrugRef, Step, parse_completion, render_completion, render_prompt
from mard_core.teachers.base import Completion, GenerationParams
from mard_core.verifier import Facts, parse_step, verify_step
from schemas import TRAJECTORIES

VORI, AXI = "DB00582", "DB06626"
PK_GOLD = "PK Metabolism/Metabolism/A to B/Inhibition"
BLEEDING_GOLD = "PD Additive/Bleeding/Bidirectional/Increase"
EVIDENCE = ["E1", "E2", "E3"]


@pytest.fixture(scope="module")
def facts() -> Facts:
    drugs = pl.DataFrame(
        {"drugbank_id": [VORI, AXI], "name": ["Voriconazole", "Axitinib"], "synonyms": [["Vfend"], None]}
    )
    proteins = pl.DataFrame(
        {
            "drug_id": [VORI, VORI, AXI, AXI],
            "kind": ["enzyme", "enzyme", "enzyme", "target"],
            "name": [
                "Cytochrome P450 3A4",
                "Cytochrome P450 2C19",
                "Cytochrome P450 3A4",
                "Vascular endothelial growth factor receptor 2",
            ],
            "actions": [["inhibitor"], ["substrate", "inhibitor"], ["substrate"], ["inhibitor"]],
            "uniprot_id": ["P08684", "P33261", "P08684", "P35968"],
            "gene_name": ["CYP3A4", "CYP2C19", "CYP3A4", "KDR"],
        }
    )
    return Facts.from_tables(drugs, proteins)


def _verdict(facts: Facts, text: str, gold: str = PK_GOLD) -> tuple[str, str]:
    step = parse_completion(f"Step 1: {text}\nANSWER: {gold}").steps[0]
    v = verify_step(parse_step(step, VORI, AXI, facts), VORI, AXI, gold, facts, EVIDENCE)
    return v.label, v.reason


@pytest.mark.parametrize(
    ("text", "gold", "label", "reason"),
    [
        ("Voriconazole is an inhibitor of CYP3A4 [E1]", PK_GOLD, "correct", "DrugBank records Voriconazole"),
        ("Vfend inhibits the CYP3A4 enzyme [E1]", PK_GOLD, "correct", "inhibitor of the CYP3A4 enzyme"),
        ("Axitinib is a substrate of P08684 [E2]", PK_GOLD, "correct", "substrate of P08684"),
        ("Axitinib is metabolized by cytochrome p450 3a4", PK_GOLD, "correct", "substrate"),
        ("Axitinib targets KDR [E3]", PK_GOLD, "correct", "acting on the target KDR"),
        (
            "Voriconazole is a substrate of CYP2D6 [E1]",
            PK_GOLD,
            "incorrect",
            "Voriconazole is not recorded as a substrate of CYP2D6",
        ),
        (
            "Voriconazole is an inducer of CYP3A4",
            PK_GOLD,
            "incorrect",
            "not recorded as an inducer of CYP3A4",
        ),
        ("Voriconazole targets CYP3A4", PK_GOLD, "incorrect", "not recorded as acting on the target CYP3A4"),
        ("Voriconazole decreases the metabolism of Axitinib", PK_GOLD, "correct", "fits gold"),
        ("Axitinib decreases the metabolism of Voriconazole", PK_GOLD, "incorrect", "wrong direction"),
        ("Voriconazole increases the metabolism of Axitinib", PK_GOLD, "incorrect", "wrong modality"),
        (
            "Voriconazole decreases the absorption of Axitinib",
            PK_GOLD,
            "incorrect",
            "wrong mechanism: 'absorption' is PK Absorption, gold family is PK Metabolism",
        ),
        ("Axitinib increases the risk of bleeding", BLEEDING_GOLD, "correct", "fits gold"),
        ("Voriconazole increases the risk of bleeding", BLEEDING_GOLD, "correct", "fits gold"),
        ("Voriconazole decreases the risk of bleeding", BLEEDING_GOLD, "incorrect", "PD Antagonistic"),
        ("Voriconazole has a hepatotoxic effect", PK_GOLD, "unverifiable", "not checkable"),
        ("Both drugs look risky together", PK_GOLD, "unverifiable", "uncited claim"),
        ("Both drugs are used in oncology [E2]", PK_GOLD, "unverifiable", "outside the claim grammar"),
        ("Voriconazole is an inhibitor of CYP3A4 [E9]", PK_GOLD, "incorrect", "cites missing evidence E9"),
    ],
)
def test_verifier_rules(facts: Facts, text: str, gold: str, label: str, reason: str) -> None:
    got_label, got_reason = _verdict(facts, text, gold)
    assert got_label == label and reason in got_reason, got_reason


def test_reason_names_every_problem(facts: Facts) -> None:
    _, reason = _verdict(facts, "Axitinib increases the absorption of Voriconazole")
    assert "wrong direction" in reason and "wrong mechanism" in reason


def test_unknown_evidence_set_skips_citation_check(facts: Facts) -> None:
    step = parse_step(Step(1, "Voriconazole is an inhibitor of CYP3A4 [E9]", ["E9"], []), VORI, AXI, facts)
    assert verify_step(step, VORI, AXI, PK_GOLD, facts, None).label == "correct"


def test_facts_reject_bad_tables(facts: Facts) -> None:
    drugs = pl.DataFrame({"drugbank_id": [VORI], "name": ["Voriconazole"], "synonyms": [[]]})
    proteins = pl.DataFrame(
        {
            "drug_id": ["DB99999"],
            "kind": ["enzyme"],
            "name": ["x"],
            "actions": [["substrate"]],
            "uniprot_id": ["P1"],
            "gene_name": ["X"],
        }
    )
    with pytest.raises(InputError, match="DB99999.*not in the drugs table"):
        Facts.from_tables(drugs, proteins)
    with pytest.raises(InputError, match=r"drug_proteins table: missing columns \['gene_name'\]"):
        Facts.from_tables(drugs, proteins.drop("gene_name"))
    with pytest.raises(InputError, match="DB00001"):
        facts.drug_names("DB00001")


@dataclass
class Ev:
    id: str
    sentence: str


def _row(
    steps: Sequence[tuple[str, Sequence[str]]],
    answer: str,
    gold: str = PK_GOLD,
    sample: int = 0,
    evidence_ids: list[str] | None = EVIDENCE,
) -> dict[str, object]:
    prompt = render_prompt(
        DrugRef(VORI, "Voriconazole"), DrugRef(AXI, "Axitinib"), [Ev(e, f"evidence {e}") for e in EVIDENCE]
    )
    text = render_completion(steps, answer, 0.8)
    parsed = parse_completion(text)
    return {
        "drug_a": VORI,
        "drug_b": AXI,
        "split": "cold_drug",
        "part": "train",
        "teacher": "t1",
        "sample": sample,
        "prompt": prompt,
        "evidence_ids": evidence_ids,
        "text": text,
        "steps": [{"index": s.index, "text": s.text, "citations": s.citations} for s in parsed.steps],
        "answer": parsed.answer.label,
        "gold": gold,
        "correct": parsed.answer.label == gold,
    }


GOOD_STEPS = [
    ("Voriconazole is an inhibitor of CYP3A4", ["E1"]),
    ("Axitinib is a substrate of CYP3A4", ["E2"]),
    ("Voriconazole decreases the metabolism of Axitinib", []),
]
BAD_STEPS = [("Voriconazole is a substrate of CYP2D6", ["E9"]), ("It is hard to say", [])]


def test_label_trajectories_table(facts: Facts) -> None:
    rows = [
        _row(GOOD_STEPS, PK_GOLD),
        _row(BAD_STEPS, "PK Metabolism/Metabolism/B to A/Inhibition", sample=1),
    ]
    df = pl.from_arrow(pa.Table.from_pylist(rows, schema=TRAJECTORIES))
    out = label_trajectories(df, facts)
    assert out.columns == [
        "split",
        "part",
        "drug_a",
        "drug_b",
        "teacher",
        "sample",
        "step",
        "label",
        "reason",
        "correct",
    ]
    assert out["sample"].to_list() == [0, 0, 0, 1, 1] and out["step"].to_list() == [1, 2, 3, 1, 2]
    assert out["label"].to_list() == ["correct", "correct", "correct", "incorrect", "unverifiable"]
    assert out["correct"].to_list() == [True, True, True, False, False]
    assert out["reason"][3] == "cites missing evidence E9"
    with pytest.raises(InputError, match="trajectories table: missing columns"):
        label_trajectories(df.drop("evidence_ids"), facts)


def test_evidence_ids_fall_back_to_the_prompt(facts: Facts) -> None:
    row = _row(
        [("Voriconazole is an inhibitor of CYP3A4", ["E3"]), ("Axitinib is a substrate of CYP3A4", ["E4"])],
        PK_GOLD,
        evidence_ids=None,
    )
    assert [v.label for v in label_trajectory(row, facts)] == ["correct", "incorrect"]


def _fake_complete(calls: list[tuple[list[str], int]]) -> CompleteFn:
    """Continuations reach the gold answer 3 of 4 times after good prefixes, never after a CYP2D6 step."""

    def complete(prompts: list[str], k: int) -> list[list[str]]:
        calls.append((prompts, k))
        wrong = "ANSWER: PK Metabolism/Metabolism/B to A/Inhibition | confidence 0.5"
        right = f"Step 9: so it goes.\nANSWER: {PK_GOLD} | confidence 0.9"
        return [[wrong] * k if "CYP2D6" in p else [right, right, right, "no answer"][:k] for p in prompts]

    return complete


def test_rollout_labels_share_of_gold_answers() -> None:
    rows = [_row(GOOD_STEPS, PK_GOLD), _row(BAD_STEPS, PK_GOLD)]
    calls: list[tuple[list[str], int]] = []
    scores = rollout_labels(rows, _fake_complete(calls), 4)
    assert scores == [[0.75, 0.75, 0.75], [0.0, 0.0]]
    ((prompts, k),) = calls
    assert k == 4 and len(prompts) == 5
    assert (
        prompts[1] == rows[0]["prompt"] + "Step 1: Voriconazole is an inhibitor of CYP3A4 [E1].\n"
        "Step 2: Axitinib is a substrate of CYP3A4 [E2].\n"
    )
    assert rollout_labels(rows[:1], _fake_complete([]), 4, gold=["PK Exposure/Other/A to B/Increase"]) == [
        [0.0] * 3
    ]
    with pytest.raises(InputError, match="must return 3 completions"):
        rollout_labels(rows[:1], lambda prompts, k: [["x"]] * len(prompts), 3)


def test_backend_complete_fn_samples_k() -> None:
    class FakeBackend:
        name = "fake"

        def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Completion]]:
            return [
                [Completion(f"{p}#{i}@{params.temperature}", 1, 1, 0.0, "stop") for i in range(params.n)]
                for p in prompts
            ]

    complete = backend_complete_fn(FakeBackend(), GenerationParams(n=1, temperature=0.7))
    assert complete(["a", "b"], 2) == [["a#0@0.7", "a#1@0.7"], ["b#0@0.7", "b#1@0.7"]]


def test_agreement_by_hand() -> None:
    labels = ["correct", "correct", "incorrect", "incorrect", "unverifiable", "correct"]
    scores = [0.9, 0.2, 0.1, 0.7, 0.5, 0.6]
    out = agreement(labels, scores, threshold=0.5)
    assert (
        out["both_correct"],
        out["both_incorrect"],
        out["verifier_correct_rollout_incorrect"],
        out["verifier_incorrect_rollout_correct"],
    ) == (2, 1, 1, 1)
    assert (out["n_steps"], out["n_compared"], out["n_unverifiable"]) == (6, 5, 1)
    assert out["agreement"] == pytest.approx(0.6)
    assert out["kappa"] == pytest.approx((0.6 - 0.52) / 0.48)  # p_e = 0.6*0.6 + 0.4*0.4
    assert math.isnan(agreement(["unverifiable"], [0.3])["agreement"])
    assert math.isnan(agreement(["correct", "correct"], [0.9, 0.8])["kappa"])
    with pytest.raises(InputError, match="unknown verifier labels"):
        agreement(["right"], [0.3])
    with pytest.raises(InputError, match="2 verifier labels vs 1"):
        agreement(["correct", "correct"], [0.3])
