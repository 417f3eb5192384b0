"""Retrieval: evidence content and order, leakage rules (unit and property tests), save/load, errors."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mard_core.errors import InputError
from mard_core.retrieval import (
    NameMatcher,
    RetrievalIndex,
    split_hidden_drugs,
    split_sentences,
)
from mard_core.retrieval_config import RetrievalConfig
from mard_core.splits import PARTS, make_split
from mard_core.splits_config import SplitConfig
from schemas import DDI_PAIRS, DRUG_PROTEINS, DRUGS, INTERACTIONS


def drugs_table(rows: list[dict]) -> pl.DataFrame:
    return pl.from_arrow(
        pa.Table.from_pylist([{f.name: None for f in DRUGS} | r for r in rows], schema=DRUGS)
    )


def proteins_table(rows: list[dict]) -> pl.DataFrame:
    base = {f.name: None for f in DRUG_PROTEINS} | {"organism": "Humans", "position": 1}
    return pl.from_arrow(pa.Table.from_pylist([base | r for r in rows], schema=DRUG_PROTEINS))


def pairs_table(rows: list[tuple[str, str, str, str, str, str, str | None]]) -> pl.DataFrame:
    return pl.from_arrow(
        pa.Table.from_pylist(
            [
                {
                    "drug_a": a,
                    "drug_b": b,
                    "label": f"{f}/{s}/{d}/{m}",
                    "family": f,
                    "subtype": s,
                    "direction": d,
                    "modality": m,
                    "description": desc,
                    "n_listings": 2,
                    "listings_agree": True,
                }
                for a, b, f, s, d, m, desc in rows
            ],
            schema=DDI_PAIRS,
        )
    )


def cyp(drug: str, action: str, strength: str | None = None) -> dict:
    return {
        "drug_id": drug,
        "kind": "enzyme",
        "be_id": "BE0002638",
        "name": "Cytochrome P450 3A4",
        "uniprot_id": "P08684",
        "gene_name": "CYP3A4",
        "actions": [action],
        "inhibition_strength": strength,
    }


@pytest.fixture(scope="module")
def world() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    drugs = drugs_table(
        [
            {
                "drugbank_id": "DB00582",
                "name": "Voriconazole",
                "synonyms": ["VFEND"],
                "categories": ["Antifungals"],
                "atc_codes": ["J02AC03"],
                "smiles": "CC(C1=NC=NC=C1F)C(O)(CN1C=NC=N1)C1=CC=C(F)C=C1F",
                "description": (
                    "Voriconazole is a triazole antifungal [A1234]. It raises the levels of FK-506.\n  "
                    "Compare with   ketoconazole."
                ),
                "mechanism_of_action": "Voriconazole inhibits CYP3A4. It is unlike CICLOSPORIN in this.",
            },
            {
                "drugbank_id": "DB00864",
                "name": "Tacrolimus",
                "synonyms": ["FK-506"],
                "categories": ["Immunosuppressants"],
                "smiles": "CO[C@@H]1C[C@@H](CC[C@H]1O)",
                "description": "Tacrolimus is a macrolide.",
            },
            {
                "drugbank_id": "DB01026",
                "name": "Ketoconazole",
                "categories": ["Antifungals"],
                "smiles": "CC(=O)N1CCN(CC1)C1=CC=C(OC[C@H]2CO",
                "description": "Ketoconazole is an imidazole.",
            },
            {
                "drugbank_id": "DB00091",
                "name": "Cyclosporine",
                "synonyms": ["Ciclosporin"],
                "categories": ["Immunosuppressants"],
            },
            {"drugbank_id": "DB00683", "name": "Midazolam", "categories": ["Benzodiazepines"]},
        ]
    )
    proteins = proteins_table(
        [
            cyp("DB00582", "inhibitor", "strong"),
            cyp("DB01026", "inhibitor", "strong"),
            cyp("DB00864", "substrate"),
            cyp("DB00091", "substrate"),
            cyp("DB00683", "substrate"),
            {
                "drug_id": "DB00864",
                "kind": "target",
                "be_id": "BE0000440",
                "name": "FKBP1A",
                "uniprot_id": "P62942",
                "gene_name": "FKBP1A",
                "actions": [],
            },
        ]
    )
    inc = ("Pharmacokinetic", "CYP3A4 inhibition")
    pairs = pairs_table(
        [
            ("DB00582", "DB00864", *inc, "A to B", "increase", "Voriconazole can increase Tacrolimus."),
            ("DB00864", "DB01026", *inc, "B to A", "increase", "Ketoconazole can increase Tacrolimus."),
            ("DB00091", "DB01026", *inc, "B to A", "increase", "Ketoconazole can increase Cyclosporine."),
            ("DB00582", "DB00683", *inc, "A to B", "increase", None),
            ("DB00091", "DB00582", *inc, "B to A", "increase", "Voriconazole can increase Cyclosporine."),
        ]
    )
    return drugs, proteins, pairs


def build(world, test_keys: set[tuple[str, str]], hidden: set[str] = frozenset(), **cfg) -> RetrievalIndex:
    drugs, proteins, pairs = world
    train = pairs.filter(
        ~pl.struct("drug_a", "drug_b").map_elements(
            lambda s: (s["drug_a"], s["drug_b"]) in test_keys, return_dtype=pl.Boolean
        )
    )
    return RetrievalIndex.build(drugs, proteins, pairs, train, hidden, RetrievalConfig(**cfg))


def test_evidence_for_a_query(world) -> None:
    index = build(world, {("DB00582", "DB00864")})
    items = index.retrieve("DB00582", "DB00864")
    assert [e.id for e in items] == [f"E{i}" for i in range(1, len(items) + 1)]
    by_sentence = {e.sentence: e for e in items}
    vori = by_sentence["Voriconazole is a strong inhibitor of CYP3A4 (enzyme, P08684)"]
    assert (vori.kind, vori.drug_id, vori.uniprot_id, vori.gene_name, vori.actions, vori.field) == (
        "protein",
        "DB00582",
        "P08684",
        "CYP3A4",
        ("inhibitor",),
        "enzymes",
    )
    assert "Tacrolimus interacts with FKBP1A (target, P62942)" in by_sentence
    assert by_sentence["Voriconazole has ATC code J02AC03"].value == "J02AC03"
    analogue = next(e for e in items if e.kind == "similar_interaction" and e.partner_id == "DB00864")
    assert (analogue.drug_id, analogue.similar_to, analogue.value) == (
        "DB01026",
        "DB00582",
        "Pharmacokinetic/CYP3A4 inhibition/A to B/increase",
    )  # oriented (Keto, Tacro)
    assert analogue.sentence.startswith("Ketoconazole (similar to Voriconazole, similarity ")
    assert analogue.sentence.endswith(
        "Ketoconazole can increase Tacrolimus. Label: Pharmacokinetic / CYP3A4 "
        "inhibition / Ketoconazole to Tacrolimus / increase."
    )
    texts = [e.sentence for e in items if e.kind == "text" and e.drug_id == "DB00582"]
    # Naming the partner (by synonym) removes a sentence; citations are stripped; whitespace normalised.
    assert texts == [
        "Voriconazole inhibits CYP3A4.",
        "It is unlike CICLOSPORIN in this.",
        "Voriconazole is a triazole antifungal.",
        "Compare with ketoconazole.",
    ]
    # Kinds come grouped in a fixed order.
    kinds = [e.kind for e in items]
    assert kinds == sorted(kinds, key=["protein", "category", "atc", "similar_interaction", "text"].index)
    assert index.retrieve("DB00582", "DB00864") == items


def test_query_pair_and_held_out_pairs_never_shown(world) -> None:
    # (Vori, Cyclo) held out: its interaction is not evidence and Vori's sentence naming Ciclosporin goes.
    index = build(world, {("DB00582", "DB00864"), ("DB00091", "DB00582")})
    for a, b in [("DB00582", "DB00864"), ("DB00091", "DB00582"), ("DB01026", "DB00683")]:
        items = index.retrieve(a, b)
        pairs = {frozenset((e.drug_id, e.partner_id)) for e in items if e.kind == "similar_interaction"}
        assert frozenset(("DB00582", "DB00864")) not in pairs
        assert frozenset(("DB00091", "DB00582")) not in pairs
        assert not any("CICLOSPORIN" in e.sentence for e in items)


def test_hidden_drug_sentences_and_interactions_removed(world) -> None:
    drugs, proteins, pairs = world
    train = pairs.filter((pl.col("drug_a") != "DB01026") & (pl.col("drug_b") != "DB01026"))
    hidden = split_hidden_drugs("cold_drug", drugs["drugbank_id"], train)
    assert hidden == {"DB01026"}
    index = RetrievalIndex.build(drugs, proteins, pairs, train, hidden)
    items = index.retrieve("DB00582", "DB00864") + index.retrieve("DB01026", "DB00091")
    assert not any(
        "ketoconazole" in e.sentence.lower()
        for e in items
        if e.kind != "protein" and e.drug_id != "DB01026" and e.similar_to != "DB01026"
    )
    assert all("DB01026" not in (e.drug_id, e.partner_id) for e in items if e.kind == "similar_interaction")
    # The hidden drug's own properties stay available.
    assert "Ketoconazole is an imidazole." in [e.sentence for e in index.retrieve("DB01026", "DB00091")]


def test_interactions_table_and_input_order_give_the_same_index(world) -> None:
    drugs, proteins, pairs = world
    index = build(world, {("DB00582", "DB00864")})
    listed = (
        pl.concat(
            [
                pairs.select(
                    pl.col("drug_a").alias("drug_id"), pl.col("drug_b").alias("partner_id"), "description"
                ),
                pairs.select(
                    pl.col("drug_b").alias("drug_id"), pl.col("drug_a").alias("partner_id"), "description"
                ),
            ]
        )
        .with_columns(pl.lit(None, dtype=pl.String).alias("partner_name"))
        .select(INTERACTIONS.names)
    )
    train = pairs.filter(pl.col("drug_b") != "DB00864").reverse()
    other = RetrievalIndex.build(drugs.reverse(), proteins.reverse(), listed.reverse(), train, set())
    for a, b in [("DB00582", "DB00864"), ("DB01026", "DB00091"), ("DB00683", "DB00864")]:
        assert other.retrieve(a, b) == index.retrieve(a, b)
    assert index.retrieve("DB00582", "DB00864")[0].to_dict() == {
        "id": "E1",
        "kind": "protein",
        "drug_id": "DB00582",
        "sentence": "Voriconazole is a strong inhibitor of CYP3A4 (enzyme, P08684)",
        "field": "enzymes",
        "protein_kind": "enzyme",
        "uniprot_id": "P08684",
        "gene_name": "CYP3A4",
        "protein_name": "Cytochrome P450 3A4",
        "actions": ["inhibitor"],
        "value": None,
        "partner_id": None,
        "similar_to": None,
        "similarity": None,
    }


def test_budget_and_config(world) -> None:
    index = build(world, set(), max_items=5, k_similar=1, max_interactions_per_neighbor=1)
    items = index.retrieve("DB00582", "DB00864")
    assert len(items) == 5
    assert [e.kind for e in items] == ["protein", "protein", "protein", "category", "category"]
    assert (
        len(
            [
                e
                for e in build(
                    world, set(), max_items=100, k_similar=1, max_interactions_per_neighbor=1
                ).retrieve("DB00582", "DB00864")
                if e.kind == "similar_interaction"
            ]
        )
        == 2
    )


def test_save_load_roundtrip(world, tmp_path) -> None:
    index = build(world, {("DB00582", "DB00864")}, {"DB00683"})
    out = index.save(tmp_path / "index")
    index.save(tmp_path / "index")  # replacing an existing index works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    loaded = RetrievalIndex.load(out)
    assert loaded.hidden_drugs == {"DB00683"} and loaded.cfg == index.cfg
    for a in index.drug_ids:
        for b in index.drug_ids:
            if a != b:
                assert loaded.retrieve(a, b) == index.retrieve(a, b)
    with pytest.raises(InputError, match="no index.json"):
        RetrievalIndex.load(tmp_path / "nothing")
    (out / "text.parquet").unlink()
    with pytest.raises(InputError, match=r"missing \['text.parquet'\]"):
        RetrievalIndex.load(out)


def test_errors(world) -> None:
    drugs, proteins, pairs = world
    index = build(world, set())
    with pytest.raises(InputError, match="'DB99999' is not in the index"):
        index.retrieve("DB00582", "DB99999")
    with pytest.raises(InputError, match="itself"):
        index.retrieve("DB00582", "DB00582")
    with pytest.raises(InputError, match="drugs table: missing columns"):
        RetrievalIndex.build(drugs.drop("smiles"), proteins, pairs, pairs, set())
    with pytest.raises(InputError, match="drug_proteins table: kind 'receptor'"):
        RetrievalIndex.build(drugs, proteins.with_columns(kind=pl.lit("receptor")), pairs, pairs, set())
    with pytest.raises(InputError, match="names a drug missing from the drugs table"):
        RetrievalIndex.build(
            drugs.filter(pl.col("drugbank_id") != "DB00683"),
            proteins.filter(pl.col("drug_id") != "DB00683"),
            pairs,
            pairs,
            set(),
        )
    with pytest.raises(InputError, match="interactions_or_pairs"):
        RetrievalIndex.build(drugs, proteins, pairs.rename({"drug_a": "x"}), pairs, set())


def test_name_matcher_and_sentences() -> None:
    matcher = NameMatcher([["Insulin glargine", "DB00047"], ["Insulin"], ["5-FU", "Fluorouracil"], ["Fe"]])
    assert matcher.find("Unlike INSULIN   glargine, it works.") == {0, 1}
    assert matcher.find("insulins are proteins; see [DB00047].") == {0}
    assert matcher.find("given with 5-fu or fluorouracils") == {2}
    assert matcher.find("fe is too short to match") == set()
    assert split_sentences("First one.  Second\n one (x). third? [A1] Fourth!") == [
        "First one.",
        "Second one (x). third?",
        "[A1] Fourth!",
    ]


# ---- property test: no evidence item of any query carries a non-train pair ----

FILLER = ("the", "raises", "levels", "of", "with", "and", "binds", "receptors", "in", "plasma")


def generated_world(seed: int, n_drugs: int, n_pairs: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Drugs with unique one-word names and synonyms, texts naming random drugs, random proteins and pairs."""
    rng = np.random.default_rng(seed)
    names = [[f"drug{i}n", f"syn{i}x"] for i in range(n_drugs)]

    def text() -> str:
        sentences = []
        for _ in range(rng.integers(0, 5)):
            words = list(rng.choice(FILLER, 4))
            if rng.random() < 0.7:
                word = names[rng.integers(n_drugs)][rng.integers(2)]
                words.insert(int(rng.integers(5)), word.upper() if rng.random() < 0.3 else word)
            sentences.append(" ".join(words).capitalize() + ".")
        return " ".join(sentences)

    drugs = drugs_table(
        [
            {
                "drugbank_id": f"DB{i:05d}",
                "name": names[i][0],
                "synonyms": [names[i][1]],
                "categories": [f"cat{c}" for c in rng.choice(4, rng.integers(0, 3), replace=False)],
                "atc_codes": [f"A0{rng.integers(3)}"],
                "smiles": "".join(rng.choice(list("CNO=()1"), 12)),
                "description": text(),
                "mechanism_of_action": text(),
            }
            for i in range(n_drugs)
        ]
    )
    proteins = proteins_table(
        [
            {
                "drug_id": f"DB{i:05d}",
                "kind": str(rng.choice(["enzyme", "target"])),
                "be_id": f"BE{p}",
                "uniprot_id": f"P{p:05d}",
                "gene_name": f"G{p}",
                "actions": [str(rng.choice(["inhibitor", "substrate"]))],
            }
            for i in range(n_drugs)
            for p in rng.choice(6, rng.integers(0, 3), replace=False)
        ]
    )
    edges = {tuple(sorted(map(int, rng.choice(n_drugs, 2, replace=False)))) for _ in range(n_pairs)}
    pairs = pairs_table(
        [
            (
                f"DB{a:05d}",
                f"DB{b:05d}",
                "PK",
                str(rng.choice(["CYP", "Pgp"])),
                str(rng.choice(["A to B", "B to A"])),
                "increase",
                f"{names[a][0]} increases {names[b][1]} with {names[int(rng.integers(n_drugs))][0]}.",
            )
            for a, b in sorted(edges)
        ]
    )
    return drugs, proteins, pairs


def named(sentence: str, names: dict[str, list[str]]) -> set[str]:
    """Oracle: drugs whose name or synonym occurs as a whole word, any case."""
    return {
        d
        for d, ns in names.items()
        if any(re.search(rf"\b{re.escape(n)}\b", sentence, re.IGNORECASE) for n in ns)
    }


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(0, 2**16),
    n_drugs=st.integers(4, 18),
    density=st.floats(0.2, 1.5),
    strategy=st.sampled_from(["random", "cold_drug", "cold_pair"]),
    k=st.integers(1, 4),
)
def test_no_evidence_carries_a_non_train_pair(
    seed: int, n_drugs: int, density: float, strategy: str, k: int
) -> None:
    drugs, proteins, pairs = generated_world(seed, n_drugs, int(density * n_drugs * 2))
    parts = make_split(pairs, strategy, SplitConfig(valid_frac=0.2, test_frac=0.2, seed=seed))
    hidden = split_hidden_drugs(strategy, drugs["drugbank_id"], parts["train"])
    extra = np.random.default_rng(seed + 1).random(drugs.height) < 0.15  # hide some training drugs too
    hidden |= set(drugs.filter(pl.Series(extra))["drugbank_id"])
    index = RetrievalIndex.build(
        drugs, proteins, pairs, parts["train"], hidden, RetrievalConfig(k_similar=k, max_items=40)
    )
    train = {frozenset(p) for p in parts["train"].select("drug_a", "drug_b").iter_rows()}
    held_out = {frozenset(p) for p in pairs.select("drug_a", "drug_b").iter_rows()} - train
    names = {d: [n, *s] for d, n, s in drugs.select("drugbank_id", "name", "synonyms").iter_rows()}
    queries = [q for p in PARTS for q in parts[p].select("drug_a", "drug_b").iter_rows()]
    queries += [(a, b) for a, b in zip(index.drug_ids, index.drug_ids[1:], strict=False)]
    for a, b in queries:
        items = index.retrieve(a, b)
        assert len(items) <= 40
        for e in items:
            if e.kind == "similar_interaction":
                pair = frozenset((e.drug_id, e.partner_id))
                assert pair in train and pair != {a, b} and not pair & hidden
                assert named(e.sentence, names) <= {e.drug_id, e.partner_id, e.similar_to}
            elif e.kind == "text":
                others = named(e.sentence, names) - {e.drug_id}
                assert not others & hidden
                assert ({a, b} - {e.drug_id}).isdisjoint(others)
                assert all(frozenset((e.drug_id, o)) not in held_out for o in others)
            else:
                assert e.drug_id in (a, b)
