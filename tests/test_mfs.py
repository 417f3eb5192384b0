"""Mechanism Fidelity Score: verdicts by hand against the chain's own answer (relevance, citations, drugs of
the query), the PD shared-target rule, every label's conclusion confirmable, the aggregates, the evaluation's
MFS of an honest and a gamed system, and the validation of MFS itself: gold chains score near 1 and every
adversarial kind near 0, on the real-drug fixture and on a synthetic release."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
import pytest

from mard_core.errors import InputError
from mard_core.evaluation.catalog import build_system
from mard_core.evaluation.config import EvalConfig
from mard_core.evaluation.protocol import drug_listing_counts, evaluate_system
from mard_core.evaluation.report import leaderboard, leaderboard_markdown
from mard_core.evaluation.systems import BaseSystem, Prediction, Query, SystemContext
from mard_core.metrics.labels import present_in_random_order
from mard_core.metrics.mfs import (
    CONFIRMED,
    INCORRECT,
    UNCONFIRMED,
    UNVERIFIABLE,
    ChainScore,
    ChainVerifier,
    ClaimVerdict,
    aggregate_mfs,
)
from mard_core.metrics.mfs_validation import (
    ADVERSARIES,
    COPY_EVIDENCE,
    GENERIC_EFFECT,
    HALLUCINATED_PROTEIN,
    OTHER_PROTEIN,
    UNCITED,
    UNRELATED_CITATION,
    WRONG_ANSWERS,
    WRONG_DIRECTION,
    Chain,
    adversarial_chains,
    gold_chain,
    validate_mfs,
)
from mard_core.prompts import DrugRef, parse_completion
from mard_core.retrieval import Evidence, RetrievalIndex
from mard_core.taxonomy import load_taxonomy
from mard_core.teachers.knowledge import KnowledgeTeacher
from mard_core.verifier import Facts

VORI, AXI = DrugRef("DB00582", "Voriconazole"), DrugRef("DB06626", "Axitinib")
AMI = DrugRef("DB00321", "Amitriptyline")
MORPHINE, NALOXONE, FENTANYL = (
    DrugRef("DB00295", "Morphine"),
    DrugRef("DB01183", "Naloxone"),
    DrugRef("DB00813", "Fentanyl"),
)
GOLD = "PK Metabolism/Metabolism/A to B/Inhibition"
REVERSED = "PK Metabolism/Metabolism/B to A/Inhibition"


@pytest.fixture(scope="module")
def facts() -> Facts:
    drugs = [VORI, AXI, AMI, MORPHINE, NALOXONE, FENTANYL]
    table = pl.DataFrame(
        {
            "drugbank_id": [d.drugbank_id for d in drugs],
            "name": [d.name for d in drugs],
            "synonyms": [["Vfend"], [], [], [], [], []],
        }
    )
    rows = [
        (VORI, "enzyme", "CYP3A4", "P08684", "inhibitor"),
        (AXI, "enzyme", "CYP3A4", "P08684", "substrate"),
        (AXI, "enzyme", "CYP1A2", "P05177", "substrate"),
        (VORI, "target", "ERG11", "P10613", "inhibitor"),
        (AMI, "enzyme", "CYP2D6", "P10635", "substrate"),
        (MORPHINE, "target", "OPRM1", "P35372", "agonist"),
        (NALOXONE, "target", "OPRM1", "P35372", "antagonist"),
        (FENTANYL, "target", "OPRM1", "P35372", "agonist"),
    ]
    proteins = pl.DataFrame(
        {
            "drug_id": [r[0].drugbank_id for r in rows],
            "kind": [r[1] for r in rows],
            "name": [r[2] for r in rows],
            "actions": [[r[4]] for r in rows],
            "uniprot_id": [r[3] for r in rows],
            "gene_name": [r[2] for r in rows],
        }
    )
    return Facts.from_tables(table, proteins)


@pytest.fixture(scope="module")
def verifier(facts: Facts) -> ChainVerifier:
    return ChainVerifier(facts)


def protein(eid: str, drug: DrugRef, gene: str, uniprot: str, action: str, kind: str = "enzyme") -> Evidence:
    return Evidence(
        id=eid,
        kind="protein",
        drug_id=drug.drugbank_id,
        field=f"{kind}s",
        protein_kind=kind,
        gene_name=gene,
        uniprot_id=uniprot,
        protein_name=gene,
        actions=(action,),
        sentence=f"{drug.name} is an {action} of {gene} ({kind}, {uniprot})",
    )


def analogue(eid: str, label: str, a: DrugRef = VORI, b: DrugRef = AXI) -> Evidence:
    """A training interaction of a drug similar to ``a`` with ``b``, labelled ``label`` (query
    orientation)."""
    return Evidence(
        id=eid,
        kind="similar_interaction",
        drug_id="DB01026",
        sentence="Ketoconazole with the victim.",
        field="interactions",
        value=label,
        partner_id=b.drugbank_id,
        similar_to=a.drugbank_id,
        similarity=0.4,
    )


EVIDENCE = (
    protein("E1", VORI, "CYP3A4", "P08684", "inhibitor"),
    protein("E2", AXI, "CYP3A4", "P08684", "substrate"),
    analogue("E3", GOLD),
    Evidence(
        id="E4",
        kind="category",
        drug_id=VORI.drugbank_id,
        sentence="Voriconazole is in the category Antifungal Agents",
        field="categories",
        value="Antifungal Agents",
    ),
    protein("E5", AXI, "CYP1A2", "P05177", "substrate"),
)
STEPS = [  # (step, verdict, part of the reason)
    ("Voriconazole is an inhibitor of CYP3A4 [E1]", CONFIRMED, "stated by E1"),
    ("Axitinib is a substrate of CYP2C9 [E2]", INCORRECT, "does not record Axitinib as substrate of CYP2C9"),
    ("Vfend is an inhibitor of the CYP3A4 enzyme [E2]", UNCONFIRMED, "E2 does not state it"),
    ("These drugs are often given together", UNVERIFIABLE, "no claim"),
    ("Voriconazole decreases the metabolism of Axitinib [E3]", CONFIRMED, "stated by E3"),
    ("Axitinib is a substrate of CYP3A4", UNCONFIRMED, "cites no evidence"),
    ("Axitinib is a substrate of CYP1A2 [E5]", UNCONFIRMED, "bears on nothing in the answer"),
    (
        "Voriconazole increases the risk or severity of adverse effects when combined with Axitinib [E3]",
        UNCONFIRMED,
        "names PD Additive/Adverse effects: bears on nothing",
    ),
    ("Axitinib decreases the metabolism of Voriconazole [E3]", INCORRECT, "wrong direction"),
    (
        "Voriconazole increases the metabolism of Axitinib [E3]",
        INCORRECT,
        "states an increase of 'metabolism'",
    ),
    ("Voriconazole decreases the metabolism of Axitinib [E4]", UNCONFIRMED, "E4 does not state it"),
    ("Voriconazole is an inhibitor of CYP3A4 [E9]", INCORRECT, "cites E9, not among the evidence"),
    (
        "Amitriptyline is a substrate of CYP2D6 [E1]",
        UNCONFIRMED,
        "names Amitriptyline (DB00321), not a drug of",
    ),
    (
        "Voriconazole increases the serum concentration of amitriptyline and axitinib [E3]",
        UNCONFIRMED,
        "names Amitriptyline (DB00321)",
    ),
    ("Voriconazole causes adverse effects [E3]", UNCONFIRMED, "states no increase or decrease"),
]


def chain(steps: Sequence[str], answer: str | None = GOLD) -> str:
    lines = [f"Step {i}: {s}." for i, s in enumerate(steps, 1)]
    return "\n".join(lines + ([f"ANSWER: {answer} | confidence 0.9"] if answer else [])) + "\n"


def test_verdicts_by_hand(verifier: ChainVerifier) -> None:
    score = verifier.score(chain([s for s, _, _ in STEPS]), VORI, AXI, EVIDENCE)
    assert score.answer == GOLD and score.answer_error is None
    for claim, (_, verdict, reason) in zip(score.claims, STEPS, strict=True):
        assert (claim.verdict, reason in claim.reason) == (verdict, True), claim
    assert score.n_steps == len(STEPS) and score.n_checkable == len(STEPS) - 1
    assert score.mfs == pytest.approx(2 / len(STEPS))  # every unconfirmed step stays in the denominator


def test_the_score_is_against_the_chains_own_answer(verifier: ChainVerifier) -> None:
    honest = chain([s for s, verdict, _ in STEPS[:5] if verdict == CONFIRMED])
    assert verifier.score(honest, VORI, AXI, EVIDENCE).mfs == 1.0
    # The same steps under the reversed answer: Voriconazole is now the victim, and E3 states A to B.
    flipped = verifier.score(honest.replace(GOLD, REVERSED), VORI, AXI, EVIDENCE)
    assert [c.verdict for c in flipped.claims] == [UNCONFIRMED, INCORRECT] and flipped.mfs == 0.0
    assert (
        "needs Axitinib as inhibitor of a protein Voriconazole is a substrate of" in flipped.claims[0].reason
    )
    # Nothing to bear on: no answer line, an answer outside the taxonomy, no steps.
    for text, error in (
        (honest.split("ANSWER")[0], "no ANSWER line"),
        (honest.replace("/Metabolism/", "/Nothing/"), "not a label of the taxonomy"),
        (honest.replace("/A to B/", "/A to C/"), "unknown direction"),
    ):
        score = verifier.score(text, VORI, AXI, EVIDENCE)
        assert score.answer is None and error in (score.answer_error or "") and score.mfs == 0.0
        assert {c.verdict for c in score.claims} == {UNCONFIRMED}
    assert verifier.score(f"ANSWER: {GOLD}\n", VORI, AXI, EVIDENCE).mfs == 0.0


@pytest.mark.parametrize(
    ("b", "answer", "verdict"),
    [
        (NALOXONE, "PD Antagonistic/Therapeutic efficacy/A to B/Decrease", CONFIRMED),  # opposite actions
        (NALOXONE, "PD Additive/CNS depressant/A to B/Increase", UNCONFIRMED),
        (FENTANYL, "PD Additive/CNS depressant/A to B/Increase", CONFIRMED),  # alike
        (FENTANYL, "PD Antagonistic/Therapeutic efficacy/A to B/Decrease", UNCONFIRMED),
        (AXI, "PD Additive/CNS depressant/A to B/Increase", UNCONFIRMED),  # not a shared target
    ],
)
def test_a_shared_target_bears_on_the_pd_family_its_actions_fit(
    verifier: ChainVerifier, b: DrugRef, answer: str, verdict: str
) -> None:
    evidence = (protein("E1", MORPHINE, "OPRM1", "P35372", "agonist", "target"),)
    score = verifier.score(chain(["Morphine targets OPRM1 [E1]"], answer), MORPHINE, b, evidence)
    assert score.claims[0].verdict == verdict, score.claims[0].reason


def test_every_labels_conclusion_as_the_teacher_writes_it_is_confirmed(verifier: ChainVerifier) -> None:
    teacher = KnowledgeTeacher()
    labels = [label.slash() for label in load_taxonomy().labels()]
    for label in labels:
        evidence = (analogue("E1", label),)
        score = verifier.score(teacher.write(VORI, AXI, evidence, label), VORI, AXI, evidence)
        assert [c.verdict for c in score.claims] == [CONFIRMED], (label, score.claims)
        # The same claim under another subtype's answer (of the same family where there is one) fails.
        family, subtype = label.split("/")[:2]
        other = next(
            x
            for x in sorted(labels, key=lambda x: not x.startswith(f"{family}/"))
            if x.split("/")[:2] != [family, subtype]
        )
        assert (
            verifier.score(
                teacher.write(VORI, AXI, evidence, label).replace(label, other),
                VORI,
                AXI,
                (analogue("E1", other),),
            ).mfs
            == 0.0
        )


def score_of(verdicts: Sequence[str]) -> ChainScore:
    return ChainScore(GOLD, tuple(ClaimVerdict(i, "step", v, "why") for i, v in enumerate(verdicts, 1)))


def test_aggregates() -> None:
    scores = [
        score_of([CONFIRMED, CONFIRMED]),
        score_of([CONFIRMED, UNVERIFIABLE]),
        score_of([]),
        None,
        score_of([UNCONFIRMED, CONFIRMED, INCORRECT, UNCONFIRMED]),
    ]
    correct = [True, True, False, True, False]
    out = aggregate_mfs(scores, correct)
    assert out["mfs_mean"] == pytest.approx((1 + 0.5 + 0 + 0 + 0.25) / 5)  # no chain and no steps count as 0
    assert out["mfs_on_correct"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert out["correct_and_verified"] == pytest.approx(1 / 5)
    assert out["mfs_checkable_share"] == pytest.approx(3 / 4)
    assert out["mfs_unverifiable_mean"] == pytest.approx((0 + 0.5 + 0) / 3)
    assert out["mfs_n_chains"] == 4
    assert aggregate_mfs(scores, [False] * 5)["mfs_on_correct"] is None
    assert aggregate_mfs([], [])["mfs_mean"] is None
    with pytest.raises(InputError, match="2 chains for 1 correctness flags"):
        aggregate_mfs(scores[:2], [True])


class CopyEvidence(BaseSystem):
    """The gamed system of the issue: restates up to 3 retrieved protein facts, with a fixed wrong answer."""

    name = "copy_evidence"

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        out = []
        for q in queries:
            names = {q.drug_a: q.names_a[0], q.drug_b: q.names_b[0]}
            steps = [
                f"{names[e.drug_id]} is {'a substrate' if 'substrate' in e.actions else 'an inhibitor'} of "
                f"{e.gene_name} [{e.id}]"
                for e in q.evidence
                if e.kind == "protein" and e.gene_name
            ][:3]
            out.append(Prediction(WRONG_ANSWERS[0], 0.9, chain(steps, WRONG_ANSWERS[0])))
        return out


def test_evaluation_reports_mfs_against_answers(real_world: dict[str, Any]) -> None:
    root = real_world["root"]
    index = RetrievalIndex.load(root / "index" / "cold_drug")
    counts = drug_listing_counts(pl.read_parquet(root / "ingest" / "interactions.parquet"))
    ctx = SystemContext.load(root / "ingest", root / "splits", "cold_drug")
    cfg = EvalConfig(mirror=False, calibrate_on_valid=False)
    results = [
        evaluate_system(system, root / "splits", "cold_drug", index, real_world["facts"], counts, cfg)
        for system in (build_system("knowledge_rules", ctx), CopyEvidence())
    ]
    honest, gamed = (r.metrics for r in results)
    assert (
        gamed["mfs_mean"] <= 0.1 and gamed["correct_and_verified"] == 0.0 and gamed["mfs_on_correct"] is None
    )
    assert honest["mfs_mean"] >= 0.9 and 0.0 < honest["correct_and_verified"] <= honest["exact_accuracy"]
    rows = results[0].predictions
    assert honest["mfs_on_correct"] == pytest.approx(rows.filter(pl.col("correct"))["mfs"].mean())
    assert honest["correct_and_verified"] == pytest.approx(
        rows.filter(pl.col("correct") & (pl.col("mfs") == 1.0)).height / rows.height
    )
    for name in ("mfs_mean", "mfs_on_correct", "correct_and_verified"):
        assert honest[f"{name}_ci95_lo"] <= honest[name] <= honest[f"{name}_ci95_hi"], name
    assert gamed["mfs_on_correct_ci95_lo"] is None and gamed["mfs_mean_ci95_hi"] <= 0.1
    header = leaderboard_markdown(leaderboard(results)).splitlines()[0]
    assert "| MFS | MFS correct | Correct+verified |" in header


def test_adversarial_chains_are_what_they_claim(facts: Facts) -> None:
    gold = gold_chain(VORI, AXI, GOLD, EVIDENCE, KnowledgeTeacher())
    assert gold is not None
    bad = dict(adversarial_chains(gold, facts))
    assert set(bad) == set(ADVERSARIES)
    answers = {kind: parse_completion(c.text).answer for kind, c in bad.items()}
    assert answers[COPY_EVIDENCE].label == WRONG_ANSWERS[0] and {
        a.label for k, a in answers.items() if k != COPY_EVIDENCE
    } == {GOLD}
    assert "Voriconazole is an inhibitor of CYP3A4 [E1]" in bad[COPY_EVIDENCE].text
    assert "adverse effects when combined with Axitinib" in bad[GENERIC_EFFECT].text
    assert "Axitinib is a substrate of CYP1A2 [E5]" in bad[OTHER_PROTEIN].text
    hallucinated = parse_completion(bad[HALLUCINATED_PROTEIN].text, ["Voriconazole"], ["Axitinib"]).steps
    assert all(not facts.relations(d.drugbank_id, s.claims[0].obj) for s in hallucinated for d in (VORI, AXI))
    assert {c for s in parse_completion(bad[UNRELATED_CITATION].text).steps for c in s.citations} == {"E4"}
    assert "[E" not in bad[UNCITED].text.split("ANSWER")[0]
    assert "Axitinib decreases the metabolism of Voriconazole" in bad[WRONG_DIRECTION].text
    assert GENERIC_EFFECT not in dict(
        adversarial_chains(
            Chain(VORI, AXI, "PD Additive/Adverse effects/Bidirectional/Increase", gold.text, EVIDENCE), facts
        )
    )


def world_chains(world: dict[str, Any], index: RetrievalIndex, pairs: pl.DataFrame) -> list[Chain]:
    facts = world.get("facts") or Facts.from_tables(world["drugs"], world["drug_proteins"])
    teacher, chains = KnowledgeTeacher(), []
    for qa, qb, gold in (
        present_in_random_order(pairs, seed=0).select("query_a", "query_b", "gold").iter_rows()
    ):
        a, b = DrugRef(qa, facts.drug_names(qa)[0]), DrugRef(qb, facts.drug_names(qb)[0])
        made = gold_chain(a, b, gold, index.retrieve(qa, qb), teacher)
        chains += [made] if made else []
    assert len(chains) >= 0.75 * pairs.height  # most pairs' evidence supports their gold label
    return chains


@pytest.mark.parametrize("name", ["real_world", "synthetic_world"])
def test_gold_chains_score_high_and_every_adversarial_kind_low(
    request: pytest.FixtureRequest, name: str
) -> None:
    world = request.getfixturevalue(name)
    if name == "real_world":  # the real-drug fixture: the random split's training pairs
        index = RetrievalIndex.load(world["root"] / "index" / "random")
        pairs = pl.read_parquet(world["root"] / "splits" / "random" / "train.parquet")
    else:  # the synthetic release: the cold-drug split's test pairs
        index, pairs = RetrievalIndex.load(world["index_dir"]), world["parts"]["test"]
    facts = world.get("facts") or Facts.from_tables(world["drugs"], world["drug_proteins"])
    report = validate_mfs(world_chains(world, index, pairs), facts)
    assert report["gold_mean"] >= 0.9
    assert set(report["adversarial_mean_by_kind"]) == set(ADVERSARIES)
    assert all(n >= 5 for n in report["adversarial_n_by_kind"].values()), report
    assert all(mean <= 0.3 for mean in report["adversarial_mean_by_kind"].values()), report
    assert report["auroc"] > 0.95
