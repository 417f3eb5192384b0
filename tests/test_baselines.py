"""Baselines on hand-made toy splits: majority, per-drug prior, similarity and knowledge rules in the query
orientation; the feature MLP and the bag-of-evidence model learn a separable toy set (direction included)
above the majority; all fit on train only."""

from __future__ import annotations

import itertools

import polars as pl
import pyarrow as pa
import pytest
import torch

from mard_core.baselines import (
    BagOfEvidenceBaseline,
    BagOfEvidenceConfig,
    DrugPriorBaseline,
    FeatureMLPBaseline,
    KnowledgeRulesBaseline,
    MajorityBaseline,
    MLPConfig,
    SimilarityBaseline,
    evidence_document,
    majority_label,
)
from mard_core.errors import InputError
from mard_core.evaluation.systems import Query, SystemContext
from mard_core.metrics.labels import mirror_label
from mard_core.retrieval import Evidence, RetrievalIndex
from mard_core.taxonomy import load_taxonomy
from mard_core.validation import parse_config
from schemas import DRUG_PROTEINS, DRUGS

MET = "PK Metabolism/Metabolism/A to B/Inhibition"
BLEED = "PD Additive/Bleeding/Bidirectional/Increase"
QT = "PD Additive/QTc prolongation/Bidirectional/Increase"


def pairs(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["drug_a", "drug_b", "label"], orient="row")


def q(a: str, b: str, evidence: tuple[Evidence, ...] = ()) -> Query:
    return Query(a, b, (f"Drug {a}",), (f"Drug {b}",), evidence)


# ---------------------------------------------------------------- majority and per-drug prior


def test_majority_predicts_the_most_frequent_training_label_as_is() -> None:
    train = pairs([("D1", "D2", MET), ("D1", "D3", MET), ("D2", "D3", BLEED)])
    system = MajorityBaseline(train)
    out = system.predict([q("D2", "D1"), q("D9", "D8")])
    assert [p.label for p in out] == [MET, MET]  # not mirrored for the reversed query
    assert out[0].confidence == pytest.approx(2 / 3)
    assert majority_label(train, bidirectional=True) == BLEED
    with pytest.raises(InputError, match="empty"):
        MajorityBaseline(train.head(0))


def test_drug_prior_sums_both_drugs_in_the_query_orientation() -> None:
    train = pairs(
        [("D1", "D2", MET), ("D1", "D3", MET), ("D2", "D3", BLEED), ("D4", "D5", QT), ("D4", "D6", QT)]
    )
    system = DrugPriorBaseline(train)
    # Query (D2, D1): D2 as A has MET mirrored (B to A) once and BLEED once; D1 as A has MET twice, which in
    # the query orientation (D1 is B) is MET mirrored: 3 votes of 4.
    out = system.predict([q("D2", "D1"), q("D1", "D2"), q("D7", "D8")])
    assert out[0].label == mirror_label(MET) and out[0].confidence == pytest.approx(3 / 4)
    assert out[1].label == MET
    assert out[2].label == MajorityBaseline(train).label  # no training pair: the majority fallback


# ---------------------------------------------------------------- similarity and knowledge rules


def analogue(eid: str, similar: str, partner: str, similar_to: str, label: str, sim: float) -> Evidence:
    return Evidence(
        id=eid,
        kind="similar_interaction",
        drug_id=similar,
        sentence=f"{similar} with {partner}.",
        field="interactions",
        value=label,
        partner_id=partner,
        similar_to=similar_to,
        similarity=sim,
    )


def test_similarity_takes_the_closest_training_pair_oriented_to_the_query() -> None:
    system = SimilarityBaseline(pairs([("D1", "D2", QT)]))
    # (S, D2) is a training pair with S similar to the query's B = D1: seen from (A=D2, B=D1) the label
    # mirrors.
    direct = analogue("E1", "S", "D2", "D1", MET, 0.4)
    closer_but_indirect = analogue("E2", "T", "U", "D2", BLEED, 0.9)
    out = system.predict(
        [q("D2", "D1", (closer_but_indirect, direct)), q("D2", "D1", (closer_but_indirect,)), q("D2", "D1")]
    )
    assert out[0].label == mirror_label(MET) and out[0].confidence == pytest.approx(0.4)
    assert out[1].label == BLEED and out[1].confidence == pytest.approx(0.9)
    assert out[2].label == QT  # no analogue: majority


def test_knowledge_rules_write_a_chain_and_fall_back_to_the_bidirectional_majority() -> None:
    cyp = {
        "kind": "protein",
        "field": "enzymes",
        "protein_kind": "enzyme",
        "gene_name": "CYP3A4",
        "uniprot_id": "P08684",
    }
    evidence = (
        Evidence(
            id="E1", drug_id="D1", sentence="Drug D1 is an inhibitor of CYP3A4", actions=("inhibitor",), **cyp
        ),
        Evidence(
            id="E2", drug_id="D2", sentence="Drug D2 is a substrate of CYP3A4", actions=("substrate",), **cyp
        ),
    )
    train = pairs([("D1", "D2", MET), ("D3", "D4", QT), ("D3", "D5", QT), ("D4", "D5", BLEED)])
    ctx = SystemContext("random", train, pl.DataFrame(), pl.DataFrame(), load_taxonomy())
    system = KnowledgeRulesBaseline.from_context(ctx, "knowledge_rules")
    out = system.predict([q("D2", "D1", evidence), q("D3", "D5")])
    assert out[0].label == "PK Metabolism/Metabolism/B to A/Inhibition"
    assert "Drug D1 is an inhibitor of CYP3A4 [E1]" in out[0].text and "ANSWER:" in out[0].text
    assert out[1].label == QT  # no evidence: the most frequent Bidirectional training label


def test_knowledge_rules_answer_in_the_query_orientation_from_pharmacology() -> None:
    """Voriconazole (strong CYP3A4 inhibitor) + axitinib (CYP3A4 substrate) in both orders, and two
    QTc-prolonging agents (categories only): a Bidirectional PD label in both orders."""
    cyp = {"kind": "protein", "field": "enzymes", "protein_kind": "enzyme", "gene_name": "CYP3A4"}
    pk = (
        Evidence(
            id="E1",
            drug_id="DB00582",
            sentence="Voriconazole is a strong inhibitor of CYP3A4",
            actions=("inhibitor",),
            **cyp,
        ),
        Evidence(
            id="E2",
            drug_id="DB06626",
            sentence="Axitinib is a substrate of CYP3A4",
            actions=("substrate",),
            **cyp,
        ),
    )
    qt = tuple(
        Evidence(
            id=f"E{i}",
            kind="category",
            drug_id=d,
            field="categories",
            sentence="",
            value="QTc Prolonging Agents",
        )
        for i, d in ((3, "D8"), (4, "D9"))
    )
    system = KnowledgeRulesBaseline()
    out = system.predict(
        [q("DB00582", "DB06626", pk), q("DB06626", "DB00582", pk), q("D8", "D9", qt), q("D9", "D8", qt)]
    )
    assert [p.label for p in out] == [MET, mirror_label(MET), QT, QT]
    assert out[0].confidence == out[1].confidence == pytest.approx(0.8)
    assert "Drug DB00582 is an inhibitor of CYP3A4 [E1]" in (out[0].text or "")


# ---------------------------------------------------------------- feature MLP


def toy_world() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Inhibitors (I) and substrates (S) of one enzyme with group-specific categories and SMILES. Labels: I-S
    pairs metabolism with the inhibitor acting; S-S bleeding; I-I QTc prolongation. A seeded third of the
    pairs is test."""
    groups = {f"DB9{i:04d}": ("I" if i % 3 == 0 else "S") for i in range(24)}
    drugs = pl.from_arrow(
        pa.Table.from_pylist(
            [
                {f.name: None for f in DRUGS}
                | {
                    "drugbank_id": d,
                    "name": f"Drug{d}",
                    "categories": ["Enzyme Inhibitors" if g == "I" else "Substrates"],
                    "smiles": ("CCN1C=NC=N1" if g == "I" else "OC(=O)C1=CC") + "C" * (int(d[3:]) % 5),
                }
                for d, g in groups.items()
            ],
            schema=DRUGS,
        )
    )
    proteins = pl.from_arrow(
        pa.Table.from_pylist(
            [
                {f.name: None for f in DRUG_PROTEINS}
                | {
                    "drug_id": d,
                    "kind": "enzyme",
                    "uniprot_id": "P08684",
                    "gene_name": "CYP3A4",
                    "position": 1,
                    "actions": ["inhibitor" if g == "I" else "substrate"],
                }
                for d, g in groups.items()
            ],
            schema=DRUG_PROTEINS,
        )
    )
    rows = []
    for a, b in itertools.combinations(sorted(groups), 2):
        ga, gb = groups[a], groups[b]
        if ga != gb:
            rows.append((a, b, MET if ga == "I" else mirror_label(MET)))
        else:
            rows.append((a, b, QT if ga == "I" else BLEED))
    all_pairs = pairs(rows).with_columns(
        test=pl.Series([i % 3 == 0 for i in range(len(rows))]).shuffle(seed=0)
    )
    return (
        drugs,
        proteins,
        all_pairs.filter(~pl.col("test")).drop("test"),
        all_pairs.filter("test").drop("test"),
    )


def accuracy(system: object, test: pl.DataFrame) -> float:
    out = system.predict([q(a, b) for a, b in test.select("drug_a", "drug_b").iter_rows()])  # type: ignore[attr-defined]
    return sum(p.label == g for p, g in zip(out, test["label"].to_list(), strict=True)) / test.height


def test_feature_mlp_learns_a_separable_toy_set_above_the_majority() -> None:
    drugs, proteins, train, test = toy_world()
    cfg = MLPConfig(svd_components=8, hidden=32, epochs=60, batch_size=32, seed=0)
    mlp = FeatureMLPBaseline(train, drugs, proteins, cfg)
    majority = accuracy(MajorityBaseline(train), test)
    learnt = accuracy(mlp, test)
    assert majority < 0.6 and learnt > 0.9
    # Order-aware: the reversed query gets the mirrored label.
    a, b = test.filter(pl.col("label") == MET).row(0)[:2]
    forward, backward = mlp.predict([q(a, b), q(b, a)])
    assert forward.label == MET and backward.label == mirror_label(MET)
    assert 0.0 < forward.confidence <= 1.0
    # Seeded: a refit is bit-identical, and so are its answers to the same batch.
    again = FeatureMLPBaseline(train, drugs, proteins, cfg)
    assert all(
        torch.equal(w, v)
        for w, v in zip(again.model.state_dict().values(), mlp.model.state_dict().values(), strict=True)
    )
    assert again.predict([q(a, b), q(b, a)]) == [forward, backward]
    # Alone in its batch the query keeps its label; BLAS may round the confidence differently for another
    # batch shape (MKL takes another kernel for one row).
    alone = again.predict([q(a, b)])[0]
    assert alone.label == forward.label and alone.confidence == pytest.approx(
        forward.confidence, rel=0, abs=1e-6
    )


def test_feature_mlp_fits_on_train_only_and_rejects_unknown_drugs() -> None:
    drugs, proteins, train, _ = toy_world()
    seen = set(train["drug_a"].to_list()) | set(train["drug_b"].to_list())
    small = train.filter(pl.col("drug_a").is_in(sorted(seen)[:6]) & pl.col("drug_b").is_in(sorted(seen)[:6]))
    mlp = FeatureMLPBaseline(small, drugs, proteins, MLPConfig(svd_components=64, hidden=8, epochs=1))
    # The SVD is fitted on the training drugs only: at most (number of training drugs - 1) components.
    n_train_drugs = len(set(small["drug_a"].to_list()) | set(small["drug_b"].to_list()))
    assert len(next(iter(mlp.vectors.values()))) <= n_train_drugs - 1
    assert set(mlp.classes) <= set(small["label"].to_list()) | {
        mirror_label(x) for x in small["label"].to_list()
    }
    with pytest.raises(InputError, match="not in the drugs table"):
        mlp.predict([q("DB90000", "DB00000")])
    with pytest.raises(InputError, match=r"^system 'feature_mlp': epochs: must be > 0, got 0$"):
        parse_config(MLPConfig, {"epochs": 0}, "system 'feature_mlp'")
    with pytest.raises(InputError, match=r"^system 'feature_mlp': epoch: unknown key; allowed: batch_size, "):
        parse_config(MLPConfig, {"epoch": 3}, "system 'feature_mlp'")


# ---------------------------------------------------------------- bag of evidence


def test_evidence_document_writes_drug_roles_in_the_query_orientation() -> None:
    protein = Evidence(
        id="E1", kind="protein", drug_id="D1", sentence="Alpha is an inhibitor of CYP3A4", field="enzymes"
    )
    similar = Evidence(
        id="E2",
        kind="similar_interaction",
        drug_id="S",
        sentence="Alphanol (similar to ALPHA) with Gamma: Label: PK Metabolism / Gamma to Alphanol",
        field="interactions",
        partner_id="G",
        similar_to="D1",
    )
    names = {"D1": ("Alpha",), "D2": ("Beta",), "S": ("Alphanol",), "G": ("Gamma",)}
    assert evidence_document((protein, similar), names, "D1", "D2").splitlines() == [
        "druga is an inhibitor of CYP3A4",
        "likea (similar to druga) with partner: Label: PK Metabolism / partner to likea",
    ]
    # The reversed query: the same evidence, the roles swapped.
    assert (
        evidence_document((protein, similar), names, "D2", "D1")
        .splitlines()[1]
        .startswith("likeb (similar to drugb)")
    )


def test_bag_of_evidence_learns_the_toy_set_with_its_direction() -> None:
    drugs, proteins, train, test = toy_world()
    fields = pl.col("label").str.split("/")
    ddi = pl.concat([train, test]).with_columns(
        family=fields.list.get(0),
        subtype=fields.list.get(1),
        direction=fields.list.get(2),
        modality=fields.list.get(3),
    )
    index = RetrievalIndex.build(
        drugs, proteins, ddi, ddi.join(test, on=["drug_a", "drug_b"], how="anti"), ()
    )
    cfg = BagOfEvidenceConfig(min_df=1, seed=0)
    model = BagOfEvidenceBaseline(train, drugs, index, cfg)

    def asked(a: str, b: str) -> Query:
        return Query(a, b, (f"Drug{a}",), (f"Drug{b}",), tuple(index.retrieve(a, b)))

    rows = test.select("drug_a", "drug_b", "label").rows()
    forward = model.predict([asked(a, b) for a, b, _ in rows])
    backward = model.predict([asked(b, a) for a, b, _ in rows])
    n = len(rows)
    assert sum(p.label == g for p, (_, _, g) in zip(forward, rows, strict=True)) / n > 0.9
    assert sum(p.label == mirror_label(g) for p, (_, _, g) in zip(backward, rows, strict=True)) / n > 0.9
    assert accuracy(MajorityBaseline(train), test) < 0.6
    assert all(0.0 < p.confidence <= 1.0 for p in forward)
    assert BagOfEvidenceBaseline(train, drugs, index, cfg).predict([asked(*rows[0][:2])]) == forward[:1]
