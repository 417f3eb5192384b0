"""Knowledge-grounded teacher: gold chains per mechanism, verified by the PRM step verifier; rule inference;
and, on a small synthetic release, every gold chain of every train pair verifies."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mard_core.errors import InputError
from mard_core.metrics.labels import present_in_random_order
from mard_core.metrics.mfs import ChainVerifier
from mard_core.metrics.mfs_validation import gold_chain
from mard_core.prompts import DrugRef, parse_completion
from mard_core.retrieval import Evidence, RetrievalIndex
from mard_core.teachers.config import KnowledgeConfig
from mard_core.teachers.knowledge import MECHANISMS, KnowledgeTeacher, infer_label, query_label
from mard_core.teachers.pharmacology import PHARMACOLOGY_PATH, load_pharmacology
from mard_core.validation import parse_config
from mard_core.verifier import CORRECT, Facts, parse_step, verify_step

VORI = DrugRef("DB00582", "Voriconazole")
AXI = DrugRef("DB06626", "Axitinib")
RIF = DrugRef("DB01045", "Rifampicin")
DIG = DrugRef("DB00390", "Digoxin")
VERA = DrugRef("DB00661", "Verapamil")
WARF = DrugRef("DB00682", "Warfarin")
PHEN = DrugRef("DB08794", "Phenprocoumon")
NALOX = DrugRef("DB01183", "Naloxone")
MORPH = DrugRef("DB00295", "Morphine")
KETO = DrugRef("DB01026", "Ketoconazole")
CITA = DrugRef("DB00215", "Citalopram")
DOFE = DrugRef("DB00204", "Dofetilide")
HALO = DrugRef("DB00502", "Haloperidol")
DRUGS = (VORI, AXI, RIF, DIG, VERA, WARF, PHEN, NALOX, MORPH, KETO, CITA, DOFE, HALO)

# (drug, kind, gene, uniprot, actions, strength): one DrugBank drug-protein row each.
PROTEINS: list[tuple[DrugRef, str, str, str, tuple[str, ...], str | None]] = [
    (VORI, "enzyme", "CYP3A4", "P08684", ("inhibitor",), "strong"),
    (VORI, "enzyme", "CYP2C19", "P33261", ("substrate",), None),
    (AXI, "enzyme", "CYP3A4", "P08684", ("substrate",), None),
    (AXI, "target", "KDR", "P35968", ("inhibitor",), None),
    (RIF, "enzyme", "CYP3A4", "P08684", ("inducer",), None),
    (DIG, "transporter", "ABCB1", "P08183", ("substrate",), None),
    (VERA, "transporter", "ABCB1", "P08183", ("inhibitor",), None),
    (WARF, "target", "VKORC1", "Q9BQB6", ("inhibitor",), None),
    (PHEN, "target", "VKORC1", "Q9BQB6", ("inhibitor",), None),
    (NALOX, "target", "OPRM1", "P35372", ("antagonist",), None),
    (MORPH, "target", "OPRM1", "P35372", ("agonist",), None),
    (KETO, "enzyme", "CYP3A4", "P08684", ("inhibitor",), None),
    (CITA, "enzyme", "CYP3A4", "P08684", ("substrate",), None),
    (DOFE, "target", "KCNH2", "Q12809", ("inhibitor",), None),
    (HALO, "target", "KCNH2", "Q12809", ("inhibitor",), None),
]


def protein_evidence(a: DrugRef, b: DrugRef) -> list[Evidence]:
    """The protein rows of A then B, numbered E1..., with sentences like the retrieval index writes."""
    rows = [r for who in (a, b) for r in PROTEINS if r[0] == who]
    return [
        Evidence(
            id=f"E{i}",
            kind="protein",
            drug_id=d.drugbank_id,
            field=f"{kind}s",
            protein_kind=kind,
            gene_name=gene,
            uniprot_id=uniprot,
            actions=actions,
            sentence=f"{d.name} is a {(strength + ' ') if strength else ''}{actions[0]} of {gene} "
            f"({kind}, {uniprot})",
        )
        for i, (d, kind, gene, uniprot, actions, strength) in enumerate(rows, 1)
    ]


def analogue(eid: str, similar: DrugRef, partner: DrugRef, similar_to: DrugRef, label: str) -> Evidence:
    """A training interaction (similar, partner) whose label is oriented as (similar, partner)."""
    return Evidence(
        id=eid,
        kind="similar_interaction",
        drug_id=similar.drugbank_id,
        field="interactions",
        sentence=f"{similar.name} with {partner.name} in training data.",
        value=label,
        partner_id=partner.drugbank_id,
        similar_to=similar_to.drugbank_id,
        similarity=0.5,
    )


def category(eid: str, drug: DrugRef, value: str) -> Evidence:
    """A DrugBank category of ``drug`` as the retrieval index shows it."""
    return Evidence(
        id=eid,
        kind="category",
        drug_id=drug.drugbank_id,
        field="categories",
        sentence=f"{drug.name} is in the category {value}",
        value=value,
    )


@pytest.fixture(scope="module")
def facts() -> Facts:
    drugs = pl.DataFrame(
        {
            "drugbank_id": [d.drugbank_id for d in DRUGS],
            "name": [d.name for d in DRUGS],
            "synonyms": [[] for _ in DRUGS],
        }
    )
    proteins = pl.DataFrame(
        {
            "drug_id": [r[0].drugbank_id for r in PROTEINS],
            "kind": [r[1] for r in PROTEINS],
            "name": [r[2] for r in PROTEINS],
            "actions": [list(r[4]) for r in PROTEINS],
            "uniprot_id": [r[3] for r in PROTEINS],
            "gene_name": [r[2] for r in PROTEINS],
        }
    )
    return Facts.from_tables(drugs, proteins)


@pytest.fixture(scope="module")
def teacher() -> KnowledgeTeacher:
    return KnowledgeTeacher()


def verdicts(
    text: str, a: DrugRef, b: DrugRef, gold: str, evidence: list[Evidence], facts: Facts
) -> list[str]:
    ids = [e.id for e in evidence]
    parsed = parse_completion(text, facts.drug_names(a.drugbank_id), facts.drug_names(b.drugbank_id), ids)
    assert parsed.ok, parsed.errors
    assert parsed.answer is not None and parsed.answer.label == gold
    return [
        verify_step(
            parse_step(s, a.drugbank_id, b.drugbank_id, facts), a.drugbank_id, b.drugbank_id, gold, facts, ids
        ).label
        for s in parsed.steps
    ]


@pytest.mark.parametrize(
    ("a", "b", "gold", "expected"),
    [
        (
            VORI,
            AXI,
            "PK Metabolism/Metabolism/A to B/Inhibition",
            [
                "Step 1: Voriconazole is an inhibitor of CYP3A4 [E1].",
                "Step 2: Axitinib is a substrate of CYP3A4 [E3].",
                "Step 3: Voriconazole decreases the metabolism of Axitinib.",
                "ANSWER: PK Metabolism/Metabolism/A to B/Inhibition | confidence 0.80",
            ],
        ),
        (
            AXI,
            VORI,
            "PK Metabolism/Metabolism/B to A/Inhibition",
            [  # the perpetrator is the query's B
                "Step 1: Voriconazole is an inhibitor of CYP3A4 [E3].",
                "Step 2: Axitinib is a substrate of CYP3A4 [E1].",
                "Step 3: Voriconazole decreases the metabolism of Axitinib.",
                "ANSWER: PK Metabolism/Metabolism/B to A/Inhibition | confidence 0.80",
            ],
        ),
        (
            RIF,
            AXI,
            "PK Metabolism/Metabolism/A to B/Induction",
            [
                "Step 1: Rifampicin is an inducer of CYP3A4 [E1].",
                "Step 2: Axitinib is a substrate of CYP3A4 [E2].",
                "Step 3: Rifampicin increases the metabolism of Axitinib.",
                "ANSWER: PK Metabolism/Metabolism/A to B/Induction | confidence 0.60",
            ],
        ),
        (
            DIG,
            VERA,
            "PK Exposure/Serum concentration/B to A/Increase",
            [
                "Step 1: Verapamil is an inhibitor of ABCB1 [E2].",
                "Step 2: Digoxin is a substrate of ABCB1 [E1].",
                "Step 3: Verapamil increases the serum concentration of Digoxin.",
                "ANSWER: PK Exposure/Serum concentration/B to A/Increase | confidence 0.60",
            ],
        ),
        (
            WARF,
            PHEN,
            "PD Additive/Bleeding/Bidirectional/Increase",
            [
                "Step 1: Warfarin targets VKORC1 [E1].",
                "Step 2: Phenprocoumon targets VKORC1 [E2].",
                (
                    "Step 3: Warfarin increases the risk or severity of bleeding when combined with "
                    "Phenprocoumon."
                ),
                "ANSWER: PD Additive/Bleeding/Bidirectional/Increase | confidence 0.75",
            ],
        ),
        (
            NALOX,
            MORPH,
            "PD Antagonistic/Analgesic/A to B/Decrease",
            [
                "Step 1: Naloxone targets OPRM1 [E1].",
                "Step 2: Morphine targets OPRM1 [E2].",
                "Step 3: Naloxone decreases the analgesic activities of Morphine.",
                "ANSWER: PD Antagonistic/Analgesic/A to B/Decrease | confidence 0.35",
            ],
        ),
    ],
)
def test_gold_chains_cite_the_mechanism_and_verify(
    teacher: KnowledgeTeacher, facts: Facts, a: DrugRef, b: DrugRef, gold: str, expected: list[str]
) -> None:
    evidence = protein_evidence(a, b)
    text = teacher.write(a, b, evidence, gold)
    assert text.splitlines() == expected
    assert verdicts(text, a, b, gold, evidence, facts) == [CORRECT] * (len(expected) - 1)


def test_gold_chain_without_supporting_evidence_is_minimal_and_cites_agreeing_analogues(
    teacher: KnowledgeTeacher, facts: Facts
) -> None:
    gold = "PK Distribution/Protein binding/A to B/Decrease"
    evidence = [
        *protein_evidence(WARF, VORI),
        # Ketoconazole resembles Voriconazole (the query's B): its label (Keto, Warfarin) is mirrored.
        analogue("E9", KETO, WARF, VORI, "PK Distribution/Protein binding/B to A/Decrease"),
        analogue("E10", PHEN, VORI, WARF, "PD Additive/Bleeding/Bidirectional/Increase"),
    ]
    text = teacher.write(WARF, VORI, evidence, gold)
    assert text.splitlines() == [
        "Step 1: Warfarin decreases the protein binding of Voriconazole [E9].",
        f"ANSWER: {gold} | confidence 0.27",
    ]  # 0.8 * 1 agreeing / (2 analogues + 1)
    assert verdicts(text, WARF, VORI, gold, evidence, facts) == [CORRECT]
    bare = teacher.write(WARF, VORI, protein_evidence(WARF, VORI), gold)
    assert bare.splitlines() == [
        "Step 1: Warfarin decreases the protein binding of Voriconazole.",
        f"ANSWER: {gold} | confidence 0.10",
    ]


def test_query_label_maps_analogues_into_the_query_orientation() -> None:
    label = "PK Metabolism/Metabolism/A to B/Inhibition"
    assert query_label(analogue("E1", KETO, AXI, VORI, label), VORI, AXI) == label
    assert query_label(analogue("E1", KETO, AXI, VORI, label), AXI, VORI) == label.replace("A to B", "B to A")
    assert query_label(protein_evidence(VORI, AXI)[0], VORI, AXI) is None


@pytest.mark.parametrize(
    ("a", "b", "extra", "label", "confidence"),
    [
        (VORI, AXI, [], "PK Metabolism/Metabolism/A to B/Inhibition", 0.8),  # a strong CYP3A4 inhibitor
        (AXI, VORI, [], "PK Metabolism/Metabolism/B to A/Inhibition", 0.8),
        (AXI, RIF, [], "PK Metabolism/Metabolism/B to A/Induction", 0.6),
        (VERA, DIG, [], "PK Exposure/Serum concentration/A to B/Increase", 0.6),
        # analogue votes choose among the labels a transporter mechanism explains: 0.6 * 0.75 for the
        # alternative label, combined with 0.8 * 1 agreeing / (1 analogue + 1)
        (
            VERA,
            DIG,
            [("E9", KETO, DIG, VERA, "PK Excretion/Excretion rate/A to B/Decrease")],
            "PK Excretion/Excretion rate/A to B/Decrease",
            0.67,
        ),
        # no mechanism: the most common analogue label, mapped into the query orientation
        (
            WARF,
            MORPH,
            [
                ("E9", PHEN, MORPH, WARF, "PD Additive/Sedative/B to A/Increase"),
                ("E10", NALOX, WARF, MORPH, "PD Additive/Sedative/A to B/Increase"),
                ("E11", PHEN, NALOX, WARF, "PD Additive/Bleeding/Bidirectional/Increase"),
            ],
            "PD Additive/Sedative/B to A/Increase",
            0.4,
        ),
        # nothing at all: the configured majority label
        (WARF, MORPH, [], "PD Additive/Adverse effects/Bidirectional/Increase", 0.1),
    ],
)
def test_infer_label_rules(
    facts: Facts, a: DrugRef, b: DrugRef, extra: list[tuple[Any, ...]], label: str, confidence: float
) -> None:
    evidence = protein_evidence(a, b) + [analogue(*x) for x in extra]
    got, conf, steps = infer_label(a, b, evidence)
    assert (got, conf) == (label, confidence)
    texts = "".join(
        f"Step {i}: {t} {' '.join(f'[{c}]' for c in cites)}\n" for i, (t, cites) in enumerate(steps, 1)
    )
    parsed = parse_completion(texts + f"ANSWER: {got}", [a.name], [b.name], [e.id for e in evidence])
    assert parsed.ok and all(s.claims for s in parsed.steps)  # only the claim grammar
    assert verdicts(KnowledgeTeacher().write(a, b, evidence), a, b, label, evidence, facts) == [
        CORRECT
    ] * len(steps)


def test_majority_label_is_configurable_and_validated() -> None:
    cfg = KnowledgeConfig(majority_label="PD Additive/Bleeding/Bidirectional/Increase")
    assert infer_label(WARF, MORPH, [], cfg)[0] == "PD Additive/Bleeding/Bidirectional/Increase"
    with pytest.raises(
        InputError,
        match="^knowledge: majority_label: 'PK Metabolism/Metabolism/A to B/Inhibition' "
        "must be Bidirectional",
    ):
        parse_config(
            KnowledgeConfig, {"majority_label": "PK Metabolism/Metabolism/A to B/Inhibition"}, "knowledge"
        )
    with pytest.raises(
        InputError, match="^knowledge: majority_label: label 'nonsense': expected Family/Subtype/"
    ):
        parse_config(KnowledgeConfig, {"majority_label": "nonsense"}, "knowledge")
    with pytest.raises(InputError, match=r"^knowledge: min_confidence: must be <= 0.95, got 1.5$"):
        parse_config(KnowledgeConfig, {"min_confidence": 1.5}, "knowledge")


# ---------------------------------------------------------------- pharmacology: real cases


QT = "PD Additive/QTc prolongation/Bidirectional/Increase"


def test_two_qt_prolonging_drugs_outrank_a_cyp3a4_inhibition(facts: Facts) -> None:
    """Voriconazole + citalopram: a strong CYP3A4 inhibitor and a CYP3A4 substrate, both QTc-prolonging
    agents; DrugBank records the QTc risk (torsades outranks the exposure change), a pharmacodynamic,
    Bidirectional label whichever drug comes first."""
    qt = [
        category("E8", VORI, "QTc Prolonging Agents"),
        category("E9", CITA, "Highest Risk QTc-Prolonging Agents"),
    ]
    for a, b in ((VORI, CITA), (CITA, VORI)):
        label, confidence, _ = infer_label(a, b, protein_evidence(a, b) + qt)
        assert (label, confidence) == (QT, 0.85)
    # without the QT classes the CYP3A4 inhibition is the answer again
    assert (
        infer_label(VORI, CITA, protein_evidence(VORI, CITA))[0]
        == "PK Metabolism/Metabolism/A to B/Inhibition"
    )


def test_a_shared_qt_target_gives_a_verified_pharmacodynamic_chain(facts: Facts) -> None:
    evidence = protein_evidence(DOFE, HALO)
    label, confidence, steps = infer_label(DOFE, HALO, evidence)
    assert (label, confidence) == (QT, 0.85)
    assert steps[:2] == [("Dofetilide targets KCNH2", ["E1"]), ("Haloperidol targets KCNH2", ["E2"])]
    text = KnowledgeTeacher().write(DOFE, HALO, evidence)
    assert verdicts(text, DOFE, HALO, QT, evidence, facts) == [CORRECT] * 3
    chain = gold_chain(DOFE, HALO, QT, evidence, KnowledgeTeacher())
    assert chain is not None
    assert ChainVerifier(facts).score(chain.text, DOFE, HALO, evidence).mfs == 1.0


def test_a_category_alone_names_the_mechanism_but_proves_no_step(facts: Facts) -> None:
    """DrugBank's CYP categories carry the mechanism where the protein rows are missing; the chain then states
    only the conclusion (a protein claim must be in the drug's rows to verify)."""
    evidence = [
        category("E1", KETO, "Cytochrome P-450 CYP3A4 Inhibitors (strong)"),
        category("E2", WARF, "Cytochrome P-450 CYP3A4 Substrates"),
    ]
    label, confidence, steps = infer_label(WARF, KETO, evidence)
    assert (label, confidence) == ("PK Metabolism/Metabolism/B to A/Inhibition", 0.8)
    assert steps == [("Ketoconazole decreases the metabolism of Warfarin", [])]


def test_no_mechanism_evidence_abstains_at_the_lowest_confidence(facts: Facts) -> None:
    """Warfarin (VKORC1) and axitinib (CYP3A4 substrate, KDR): nothing links them; the configured
    unspecific label at ``min_confidence``, with only its conclusion."""
    label, confidence, steps = infer_label(WARF, AXI, protein_evidence(WARF, AXI))
    assert (label, confidence) == (KnowledgeConfig().majority_label, KnowledgeConfig().min_confidence)
    assert len(steps) == 1 and steps[0][1] == []


def test_the_real_fixture_labels_of_voriconazole_rifampicin_and_axitinib(real_world: dict[str, Any]) -> None:
    """On the real DrugBank records: "The metabolism of Axitinib can be decreased when combined with
    Voriconazole" and "... increased when combined with Rifampicin", in both query orders."""
    pairs, names = real_world["pairs"], dict(real_world["drugs"].select("drugbank_id", "name").iter_rows())
    index = RetrievalIndex.load(real_world["root"] / "index" / "cold_drug")
    gold = {(a, b): lab for a, b, lab in pairs.select("drug_a", "drug_b", "label").iter_rows()}
    assert gold[(VORI.drugbank_id, AXI.drugbank_id)] == "PK Metabolism/Metabolism/A to B/Inhibition"
    assert gold[(RIF.drugbank_id, AXI.drugbank_id)] == "PK Metabolism/Metabolism/A to B/Induction"
    teacher = KnowledgeTeacher(KnowledgeConfig(use_gold=False))
    for perpetrator in (VORI, RIF):
        expected = gold[(perpetrator.drugbank_id, AXI.drugbank_id)]
        for a, b, want in (
            (perpetrator, AXI, expected),
            (AXI, perpetrator, expected.replace("A to B", "B to A")),
        ):
            refs = DrugRef(a.drugbank_id, names[a.drugbank_id]), DrugRef(b.drugbank_id, names[b.drugbank_id])
            label, _, steps = teacher.infer_label(*refs, index.retrieve(a.drugbank_id, b.drugbank_id))
            assert label == want
            assert any("CYP3A4" in text for text, _ in steps)


def test_the_pharmacology_table_is_checked_against_the_taxonomy(tmp_path: Path) -> None:
    table = load_pharmacology()
    assert table is load_pharmacology(PHARMACOLOGY_PATH)  # cached
    exposure = {
        m.protein_kinds for m in MECHANISMS if (m.subtype, m.relation) == ("Serum concentration", "inhibitor")
    }
    assert exposure == {("enzyme", "transporter")}  # CYP and P-gp/OATP inhibition both raise serum levels
    bad = tmp_path / "pharmacology.yaml"
    bad.write_text(
        PHARMACOLOGY_PATH.read_text().replace(
            "PK Metabolism/Metabolism/Inhibition", "PK Metabolism/Nope/Inhibition", 1
        )
    )
    with pytest.raises(
        InputError,
        match=rf"^{re.escape(str(bad))}: pk\.metabolism\.inhibitor: family 'PK Metabolism' has no subtype",
    ):
        load_pharmacology(bad)
    bad.write_text(
        PHARMACOLOGY_PATH.read_text().replace(
            "classes: [qt_prolonging, qt_prolonging]", "classes: [qt, qt]", 1
        )
    )
    with pytest.raises(InputError, match=r": class_rules\[0\]: unknown class 'qt'$"):
        load_pharmacology(bad)
    bad.write_text(
        PHARMACOLOGY_PATH.read_text().replace("strength: {strong: 0.8", "strength: {strong: 1.8", 1)
    )
    with pytest.raises(InputError, match=r": strength\.strong: must be <= 1"):
        load_pharmacology(bad)


# ---------------------------------------------------------------- a synthetic release


def test_every_gold_chain_of_a_synthetic_release_verifies(
    synthetic_world: dict[str, Any], teacher: KnowledgeTeacher
) -> None:
    facts = Facts.from_tables(synthetic_world["drugs"], synthetic_world["drug_proteins"])
    index = RetrievalIndex.load(synthetic_world["index_dir"])
    names = dict(synthetic_world["drugs"].select("drugbank_id", "name").iter_rows())
    labels, hits, mechanism_chains = [], 0, 0
    queries = present_in_random_order(synthetic_world["parts"]["train"], seed=0)
    for qa, qb, gold in queries.select("query_a", "query_b", "gold").iter_rows():
        a, b = DrugRef(qa, names[qa]), DrugRef(qb, names[qb])
        evidence = index.retrieve(qa, qb)
        text = teacher.write(a, b, evidence, gold)
        labels += verdicts(text, a, b, gold, evidence, facts)
        mechanism_chains += text.count("Step 3:")
        hits += teacher.infer_label(a, b, evidence)[0] == gold
    assert labels and set(labels) == {CORRECT}
    assert mechanism_chains > queries.height / 4  # many pairs get a full enzyme/transporter chain
    assert hits / queries.height > 0.5  # the rules recover most labels of this rule-generated release
