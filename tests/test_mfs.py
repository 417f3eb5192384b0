"""Mechanism Fidelity Score: per-chain counts by hand, citation fidelity, aggregation, and the validation of MFS
itself: gold chains of the knowledge teacher score near 1, corrupted chains clearly lower."""
from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from mard_core.metrics.labels import present_in_random_order
from mard_core.metrics.mfs import (
    CORRUPTIONS,
    WRONG_DIRECTION,
    Chain,
    ChainScore,
    aggregate_mfs,
    chain_corruptor,
    score_chain,
    validate_mfs,
)
from mard_core.prompts import DrugRef
from mard_core.retrieval import Evidence, RetrievalIndex
from mard_core.teachers.knowledge import KnowledgeTeacher
from mard_core.verifier import Facts

VORI, AXI = DrugRef("DB00582", "Voriconazole"), DrugRef("DB06626", "Axitinib")
GOLD = "PK Metabolism/Metabolism/A to B/Inhibition"


@pytest.fixture(scope="module")
def facts() -> Facts:
    drugs = pl.DataFrame({"drugbank_id": [VORI.drugbank_id, AXI.drugbank_id, "DB00321"],
                          "name": [VORI.name, AXI.name, "Amitriptyline"], "synonyms": [["Vfend"], [], []]})
    proteins = pl.DataFrame({"drug_id": [VORI.drugbank_id, AXI.drugbank_id, "DB00321"], "kind": ["enzyme"] * 3,
                             "name": ["Cytochrome P450 3A4"] * 2 + ["Cytochrome P450 2D6"],
                             "actions": [["inhibitor"], ["substrate"], ["substrate"]],
                             "uniprot_id": ["P08684"] * 2 + ["P10635"], "gene_name": ["CYP3A4"] * 2 + ["CYP2D6"]})
    return Facts.from_tables(drugs, proteins)


def cyp(eid: str, drug: DrugRef, action: str) -> Evidence:
    return Evidence(id=eid, kind="protein", drug_id=drug.drugbank_id, field="enzymes", protein_kind="enzyme",
                    gene_name="CYP3A4", uniprot_id="P08684", protein_name="Cytochrome P450 3A4", actions=(action,),
                    sentence=f"{drug.name} is an {action} of CYP3A4 (enzyme, P08684)")


EVIDENCE = (cyp("E1", VORI, "inhibitor"), cyp("E2", AXI, "substrate"),
            Evidence(id="E3", kind="similar_interaction", drug_id="DB01026", sentence="Ketoconazole with Axitinib.",
                     field="interactions", value=GOLD, partner_id=AXI.drugbank_id, similar_to=VORI.drugbank_id,
                     similarity=0.4))
CHAIN = ("Step 1: Voriconazole is an inhibitor of CYP3A4 [E1].\n"
         "Step 2: Axitinib is a substrate of CYP2D6 [E2].\n"
         "Step 3: Vfend is an inhibitor of the CYP3A4 enzyme [E2].\n"
         "Step 4: These drugs are often given together.\n"
         "Step 5: Voriconazole decreases the metabolism of Axitinib [E3].\n"
         f"ANSWER: {GOLD} | confidence 0.9\n")


def test_chain_counts_by_hand(facts: Facts) -> None:
    # 1 confirmed; 2 wrong protein; 3 true claim citing Axitinib's record; 4 outside the grammar; 5 confirmed.
    score = score_chain(CHAIN, VORI, AXI, GOLD, facts, EVIDENCE)
    assert score == ChainScore(n_steps=5, n_confirmed=2, n_incorrect=2, n_unverifiable=1)
    assert score.mfs == pytest.approx(0.5) and score.unverifiable_share == pytest.approx(0.2)
    # Evidence unknown: citations are not checked, so step 3 is confirmed.
    assert score_chain(CHAIN, VORI, AXI, GOLD, facts, None).mfs == pytest.approx(0.75)
    # Against the reversed gold the conclusion names the wrong perpetrator.
    reversed_gold = score_chain(CHAIN, VORI, AXI, "PK Metabolism/Metabolism/B to A/Inhibition", facts, EVIDENCE)
    assert reversed_gold.n_confirmed == 1
    # A citation of a missing evidence id is incorrect; a chain without checkable steps has no MFS.
    assert score_chain("Step 1: Voriconazole is an inhibitor of CYP3A4 [E9].\n", VORI, AXI, GOLD, facts,
                       EVIDENCE).mfs == 0.0
    assert score_chain("Step 1: Nothing to check.\nANSWER: x\n", VORI, AXI, GOLD, facts, EVIDENCE).mfs is None


def test_aggregate() -> None:
    scores = [ChainScore(4, 3, 1, 0), ChainScore(2, 1, 0, 1), ChainScore(1, 0, 0, 1)]
    out = aggregate_mfs(scores)
    assert out["mfs_mean"] == pytest.approx((0.75 + 1.0) / 2)
    assert out["mfs_checkable_share"] == pytest.approx(2 / 3)
    assert out["mfs_unverifiable_mean"] == pytest.approx((0 + 0.5 + 1.0) / 3)
    assert out["mfs_n_chains"] == 3
    assert aggregate_mfs([])["mfs_mean"] is None


def test_corruptions_change_the_chain(facts: Facts) -> None:
    gold_text = KnowledgeTeacher().write(VORI, AXI, EVIDENCE, GOLD)
    chain = Chain(VORI, AXI, GOLD, gold_text, EVIDENCE)
    corrupted = dict(chain_corruptor(facts)(chain))
    assert set(corrupted) == set(CORRUPTIONS)
    assert "Axitinib decreases the metabolism of Voriconazole" in corrupted[WRONG_DIRECTION].text
    for bad in corrupted.values():
        assert bad.text != gold_text
    symmetric = Chain(VORI, AXI, "PD Additive/Bleeding/Bidirectional/Increase",
                      "Step 1: Voriconazole increases the risk or severity of bleeding when combined with Axitinib.\n"
                      "ANSWER: PD Additive/Bleeding/Bidirectional/Increase | confidence 0.3\n", EVIDENCE)
    assert WRONG_DIRECTION not in dict(chain_corruptor(facts)(symmetric))


def test_mfs_separates_gold_from_corrupted_chains(real_world: dict[str, Any]) -> None:
    facts: Facts = real_world["facts"]
    index = RetrievalIndex.load(real_world["root"] / "index" / "random")
    train = pl.read_parquet(real_world["root"] / "splits" / "random" / "train.parquet")
    teacher = KnowledgeTeacher()
    chains = []
    for qa, qb, gold in present_in_random_order(train, seed=0).select("query_a", "query_b", "gold").iter_rows():
        a, b = DrugRef(qa, facts.drug_names(qa)[0]), DrugRef(qb, facts.drug_names(qb)[0])
        evidence = tuple(index.retrieve(qa, qb))
        chains.append(Chain(a, b, gold, teacher.write(a, b, evidence, gold), evidence))
    report = validate_mfs(facts, chains, chain_corruptor(facts))
    assert report["n_gold"] == len(chains) and report["n_corrupted"] > len(chains)
    assert report["gold_mean"] > 0.9
    assert report["corrupted_mean"] < report["gold_mean"] - 0.25
    assert set(report["corrupted_mean_by_kind"]) == set(CORRUPTIONS)
    assert all(v < 0.8 for v in report["corrupted_mean_by_kind"].values())
    assert report["auroc"] > 0.9
