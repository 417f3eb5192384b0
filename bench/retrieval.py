"""Benchmark splits and retrieval on a seeded synthetic DrugBank-shaped set (default 3,000 drugs, 100k pairs).

Usage: .venv/bin/python bench/retrieval.py [--drugs 3000] [--pairs 100000] [--queries 5000] [--seed 0]
Prints split time per strategy, index build/save/load times and queries per second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from mard_core.retrieval import RetrievalIndex, split_hidden_drugs
from mard_core.retrieval_config import RetrievalConfig
from mard_core.splits import check_split, make_split
from mard_core.splits_config import SplitConfig
from schemas import DDI_PAIRS, DRUG_PROTEINS, DRUGS

WORDS = (
    "the",
    "drug",
    "is",
    "a",
    "potent",
    "agent",
    "that",
    "binds",
    "to",
    "receptors",
    "in",
    "plasma",
    "and",
    "reduces",
    "levels",
    "of",
    "with",
    "hepatic",
    "metabolism",
    "by",
    "enzymes",
)
LABELS = [
    ("Pharmacokinetic", s, d, m)
    for s in (
        "CYP3A4 inhibition",
        "CYP2D6 inhibition",
        "P-gp inhibition",
        "CYP3A4 induction",
        "Renal excretion",
    )
    for d in ("A to B", "B to A")
    for m in ("increase", "decrease")
]
LABELS += [
    ("Pharmacodynamic", s, "Bidirectional", m)
    for s in ("QT prolongation", "Bleeding", "CNS depression", "Serotonin syndrome", "Hypotension")
    for m in ("increase", "decrease")
]


def _table(columns: dict[str, list], schema: pa.Schema) -> pl.DataFrame:
    arrays = [
        pa.array(columns.get(f.name, [None] * len(next(iter(columns.values())))), type=f.type) for f in schema
    ]
    return pl.from_arrow(pa.Table.from_arrays(arrays, schema=schema))


def synthetic(n_drugs: int, n_pairs: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Drugs (names, synonyms, SMILES, categories, ATC, texts naming other drugs), proteins and labelled
    pairs."""
    rng = np.random.default_rng(seed)
    ids = [f"DB{i:05d}" for i in range(n_drugs)]
    names = [f"Drug{i}mab" for i in range(n_drugs)]
    popularity = rng.lognormal(0.0, 1.0, n_drugs)  # skewed degrees, as in DrugBank
    popularity /= popularity.sum()

    def text(n_sentences: int) -> str:
        out = []
        for _ in range(n_sentences):
            words = list(rng.choice(WORDS, rng.integers(6, 14)))
            if rng.random() < 0.3:
                words.insert(int(rng.integers(len(words))), names[int(rng.choice(n_drugs, p=popularity))])
            out.append(" ".join(words).capitalize() + ".")
        return " ".join(out)

    protein_weight = 1.0 / np.arange(1, 601)
    protein_weight /= protein_weight.sum()
    dp: dict[str, list] = {
        k: []
        for k in (
            "drug_id",
            "kind",
            "be_id",
            "name",
            "actions",
            "position",
            "uniprot_id",
            "gene_name",
            "inhibition_strength",
        )
    }
    for i in range(n_drugs):
        for pos, p in enumerate(rng.choice(600, rng.integers(1, 13), replace=False, p=protein_weight)):
            action = str(rng.choice(["inhibitor", "substrate", "inducer", "agonist", "antagonist"]))
            dp["drug_id"].append(ids[i])
            dp["kind"].append(
                str(rng.choice(["enzyme", "transporter", "carrier", "target"], p=[0.4, 0.2, 0.1, 0.3]))
            )
            dp["be_id"].append(f"BE{p:07d}")
            dp["name"].append(f"Protein {p}")
            dp["actions"].append([action])
            dp["position"].append(pos + 1)
            dp["uniprot_id"].append(f"P{p:05d}")
            dp["gene_name"].append(f"GENE{p}")
            dp["inhibition_strength"].append(
                "strong" if action == "inhibitor" and rng.random() < 0.3 else None
            )
    alphabet = np.array(list("CCCCNNOO=()1234[]@H+-FClBrS"))
    drugs = _table(
        {
            "drugbank_id": ids,
            "name": names,
            "type": ["small molecule"] * n_drugs,
            "synonyms": [[f"Syn{i}ine", f"SYN-{i}"] for i in range(n_drugs)],
            "secondary_ids": [[f"APRD{i:05d}"] for i in range(n_drugs)],
            "smiles": [
                "".join(rng.choice(alphabet, rng.integers(20, 80))) if rng.random() < 0.8 else None
                for _ in range(n_drugs)
            ],
            "categories": [
                [f"Category {c}" for c in rng.choice(400, rng.integers(1, 8), replace=False)]
                for _ in range(n_drugs)
            ],
            "atc_codes": [[f"A{rng.integers(10):02d}BC{rng.integers(100):02d}"] for _ in range(n_drugs)],
            "description": [text(int(rng.integers(3, 9))) for _ in range(n_drugs)],
            "mechanism_of_action": [text(int(rng.integers(1, 5))) for _ in range(n_drugs)],
        },
        DRUGS,
    )
    edges = np.empty((0, 2), dtype=np.int64)
    while len(edges) < min(n_pairs, n_drugs * (n_drugs - 1) // 2):
        a, b = rng.choice(n_drugs, n_pairs, p=popularity), rng.choice(n_drugs, n_pairs, p=popularity)
        new = np.stack([np.minimum(a, b), np.maximum(a, b)], 1)[a != b]
        edges = np.unique(np.concatenate([edges, new]), axis=0)
    edges = edges[rng.permutation(len(edges))[:n_pairs]]
    label = [LABELS[k] for k in rng.integers(0, len(LABELS), len(edges))]
    pairs = _table(
        {
            "drug_a": [ids[x] for x in edges[:, 0]],
            "drug_b": [ids[y] for y in edges[:, 1]],
            "label": ["/".join(lab) for lab in label],
            "family": [lab[0] for lab in label],
            "subtype": [lab[1] for lab in label],
            "direction": [lab[2] for lab in label],
            "modality": [lab[3] for lab in label],
            "description": [f"{names[x]} may change the effect of {names[y]}." for x, y in edges],
            "n_listings": [2] * len(edges),
            "listings_agree": [True] * len(edges),
        },
        DDI_PAIRS,
    )
    return drugs, _table(dp, DRUG_PROTEINS), pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drugs", type=int, default=3000)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    drugs, proteins, pairs = synthetic(args.drugs, args.pairs, args.seed)
    print(
        f"synthetic data: {drugs.height} drugs, {proteins.height} drug-protein links, {pairs.height} pairs "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    cfg = SplitConfig(seed=args.seed)
    for strategy in cfg.strategies:
        t0 = time.perf_counter()
        parts = make_split(pairs, strategy, cfg)
        elapsed = time.perf_counter() - t0
        assert check_split(parts, strategy) == []
        sizes = "/".join(str(parts[p].height) for p in ("train", "valid", "test"))
        print(f"split {strategy:9s}: {elapsed * 1000:7.0f} ms  train/valid/test {sizes}")
        t0 = time.perf_counter()
        hidden = split_hidden_drugs(strategy, drugs["drugbank_id"], parts["train"])
        index = RetrievalIndex.build(drugs, proteins, pairs, parts["train"], hidden, RetrievalConfig())
        build_s = time.perf_counter() - t0
        queries = (
            pairs.select("drug_a", "drug_b").sample(min(args.queries, pairs.height), seed=args.seed).rows()
        )
        t0 = time.perf_counter()
        n_items = sum(len(index.retrieve(a, b)) for a, b in queries)
        query_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            index.save(Path(tmp) / "index")
            save_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            RetrievalIndex.load(Path(tmp) / "index")
            load_s = time.perf_counter() - t0
        print(
            f"  index: build {build_s:.2f} s, save {save_s:.2f} s, load {load_s:.2f} s, {len(hidden)} hidden "
            f"drugs; {len(queries)} queries (pairs of any part): {len(queries) / query_s:,.0f} q/s "
            f"({query_s / len(queries) * 1000:.2f} ms/query, {n_items / len(queries):.1f} items/query)"
        )


if __name__ == "__main__":
    main()
