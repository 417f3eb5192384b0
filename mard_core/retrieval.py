"""Mechanism-aware evidence retrieval for a drug pair that cannot leak held-out interactions.

An index is built per split from drug properties (proteins, categories, ATC codes, SMILES, free text) and only
the interactions of that split's training part. ``retrieve(a, b)`` returns numbered evidence items:

- ``protein``: each drug's enzymes, transporters, carriers and targets with their actions;
- ``category`` / ``atc``: each drug's DrugBank categories and ATC codes;
- ``similar_interaction``: training interactions of the drugs most similar to A with B (or with B's most
  similar drugs), and likewise for B: up to ``k_similar`` neighbours per side and
  ``max_interactions_per_neighbor`` interactions per neighbour;
- ``text``: sentences of each drug's mechanism of action and description.

Leakage rules: interaction evidence comes only from training pairs without a hidden drug; the query pair
itself is never shown; a free-text sentence of drug X is removed when it names a hidden drug, a drug Y whose
pair with X is a known interaction outside the training part, or the other query drug. A drug's own name is
not a reason to remove its sentence (its description is a drug property). Names are matched case-insensitively
on whole words (names, synonyms, salt names, DrugBank ids); names shorter than ``MIN_NAME_CHARS`` word
characters are ignored.

Similarity of two drugs is the mean, over the feature kinds the query drug has, of the Jaccard index of their
(protein, action) sets, of their category sets, and of hashed character n-gram fingerprints of their SMILES
strings (Tanimoto). The fingerprint is a proxy for a structural fingerprint (no RDKit here): it sees shared
substrings of the SMILES text, not substructures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from scipy import sparse

from mard_core.errors import InputError
from mard_core.retrieval_config import RetrievalConfig
from mard_core.splits import canonical_pairs
from mard_core.stage import read_manifest, replace_dir
from mard_core.taxonomy import mirror_direction
from schemas import LABEL_FIELDS

EVIDENCE_KINDS = ("protein", "category", "atc", "similar_interaction", "text")
PROTEIN_ORDER = ("enzyme", "transporter", "carrier", "target")
TEXT_FIELDS = ("mechanism_of_action", "description")
MIN_NAME_CHARS = 3
FINGERPRINT_BITS = 2048
FINGERPRINT_NGRAMS = (2, 3, 4)
FORMAT_VERSION = 1
_BLOCK_ROWS = 512
_NO_ACTION = {"", "other", "unknown", "other/unknown"}
# Per round of the item budget: how many items each queue may contribute (proteins and analogues weigh more).
_WEIGHTS = {"protein": 2, "category": 1, "atc": 1, "similar_interaction": 2, "text": 1}
_WORD = re.compile(r"\w+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
_CITATION = re.compile(r"\s*\[[A-Z]\d+(?:\s*,\s*[A-Z]\d+)*\]")
_DRUG_COLUMNS = (
    "drugbank_id",
    "name",
    "secondary_ids",
    "synonyms",
    "salt_names",
    "categories",
    "atc_codes",
    "smiles",
    "description",
    "mechanism_of_action",
)
_PROTEIN_COLUMNS = (
    "drug_id",
    "kind",
    "be_id",
    "name",
    "actions",
    "position",
    "uniprot_id",
    "gene_name",
    "inhibition_strength",
    "induction_strength",
)
_FACT_COLUMNS = (
    "drug_idx",
    "kind",
    "field",
    "sentence",
    "protein_kind",
    "uniprot_id",
    "gene_name",
    "protein_name",
    "actions",
    "value",
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One evidence item. ``field`` names the source (enzymes, targets, categories, atc_codes, interactions,
    description, mechanism_of_action). For ``similar_interaction``, ``drug_id`` is the similar training drug,
    ``partner_id`` its partner in the training pair, ``similar_to`` the query drug it resembles and ``value``
    the pair's label oriented as (drug_id, partner_id). For ``category``/``atc``, ``value`` is the
    category/code."""

    id: str
    kind: str
    drug_id: str
    sentence: str
    field: str
    protein_kind: str | None = None
    uniprot_id: str | None = None
    gene_name: str | None = None
    protein_name: str | None = None
    actions: tuple[str, ...] = ()
    value: str | None = None
    partner_id: str | None = None
    similar_to: str | None = None
    similarity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (actions as a list)."""
        out = asdict(self)
        out["actions"] = list(self.actions)
        return out


class NameMatcher:
    """Which drugs a text names: case-insensitive whole-word matching of each drug's names."""

    def __init__(self, names: Sequence[Sequence[str]]) -> None:
        phrases: dict[str, set[int]] = {}
        lengths: dict[str, set[int]] = {}
        for idx, drug_names in enumerate(names):
            for name in drug_names:
                tokens = _WORD.findall(name.lower())
                if len("".join(tokens)) < MIN_NAME_CHARS:
                    continue
                phrases.setdefault(" ".join(tokens), set()).add(idx)
                lengths.setdefault(tokens[0], set()).add(len(tokens))
        self._phrases = {k: frozenset(v) for k, v in phrases.items()}
        self._lengths = {k: tuple(sorted(v)) for k, v in lengths.items()}

    def find(self, text: str) -> set[int]:
        """Indices of the drugs named in ``text``."""
        tokens = _WORD.findall(text.lower())
        found: set[int] = set()
        for i, token in enumerate(tokens):
            for n in self._lengths.get(token, ()):
                ids = self._phrases.get(" ".join(tokens[i : i + n]))
                if ids:
                    found |= ids
        return found


def split_sentences(text: str | None) -> list[str]:
    """Sentences of a free-text field, whitespace normalised."""
    if not text:
        return []
    return [s for s in _SENTENCE_BREAK.split(" ".join(text.split())) if s]


def split_hidden_drugs(strategy: str, drug_ids: Iterable[str], train_pairs: pl.DataFrame) -> set[str]:
    """Drugs whose interactions a split hides: for cold and temporal splits every drug not in the train
    part."""
    if strategy == "random":
        return set()
    if strategy not in ("cold_drug", "cold_pair", "temporal"):
        raise InputError(f"split_hidden_drugs: unknown strategy {strategy!r}")
    seen = set(train_pairs["drug_a"].to_list()) | set(train_pairs["drug_b"].to_list())
    return set(drug_ids) - seen


def _require(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what}: missing columns {missing}")


def _to_idx(col: str, ids: list[str]) -> pl.Expr:
    return pl.col(col).replace_strict(ids, list(range(len(ids))), default=-1, return_dtype=pl.Int64)


def _as_list(value: Sequence[str] | None) -> list[str]:
    return [v for v in (value or []) if v]


def _validated_drugs(drugs: pl.DataFrame) -> pl.DataFrame:
    _require(drugs, _DRUG_COLUMNS, "drugs table")
    if drugs["drugbank_id"].null_count() or drugs["name"].null_count():
        raise InputError("drugs table: null drugbank_id or name")
    dup = drugs.filter(pl.col("drugbank_id").is_duplicated())
    if dup.height:
        raise InputError(f"drugs table: drugbank_id {dup['drugbank_id'][0]!r} occurs more than once")
    return drugs.sort("drugbank_id")


def _known_pairs(interactions_or_pairs: pl.DataFrame, ids: list[str]) -> pl.DataFrame:
    """Unique canonical pair keys of a ddi_pairs or interactions table, with one description per pair."""
    cols = interactions_or_pairs.columns
    if {"drug_a", "drug_b"} <= set(cols):
        x, y = "drug_a", "drug_b"
    elif {"drug_id", "partner_id"} <= set(cols):
        x, y = "drug_id", "partner_id"
    else:
        raise InputError(
            "interactions_or_pairs: expected a ddi_pairs table (drug_a, drug_b) or an interactions "
            f"table (drug_id, partner_id); got columns {cols}"
        )
    desc = pl.col("description") if "description" in cols else pl.lit(None, dtype=pl.String)
    n = len(ids)
    df = interactions_or_pairs.select(
        _to_idx(x, ids).alias("x"), _to_idx(y, ids).alias("y"), desc.cast(pl.String).alias("description")
    )
    df = df.filter((pl.col("x") >= 0) & (pl.col("y") >= 0) & (pl.col("x") != pl.col("y")))
    key = pl.min_horizontal("x", "y") * n + pl.max_horizontal("x", "y")
    return (
        df.select(key.alias("key"), "description")
        .sort(["key", "description"], nulls_last=True)
        .unique(subset="key", keep="first", maintain_order=True)
    )


def _train_table(
    train_pairs: pl.DataFrame, ids: list[str], hidden: np.ndarray, known: pl.DataFrame
) -> pl.DataFrame:
    """Visible training rows (no hidden drug) as drug indices a < b, with the known pair description."""
    df, _ = canonical_pairs(train_pairs, "train pairs")
    df = df.with_columns(_to_idx("drug_a", ids).alias("a"), _to_idx("drug_b", ids).alias("b"))
    unknown = df.filter((pl.col("a") < 0) | (pl.col("b") < 0))
    if unknown.height:
        row = unknown.row(0, named=True)
        raise InputError(
            f"train pairs: pair ({row['drug_a']}, {row['drug_b']}) names a drug missing from the "
            f"drugs table ({unknown.height} such rows)"
        )
    a, b = df["a"].to_numpy(), df["b"].to_numpy()
    df = df.filter(pl.Series(~(hidden[a] | hidden[b]))).with_columns(
        (pl.col("a") * len(ids) + pl.col("b")).alias("key")
    )
    return (
        df.join(known, on="key", how="left")
        .select(pl.col("a").cast(pl.Int32), pl.col("b").cast(pl.Int32), "label", *LABEL_FIELDS, "description")
        .sort(["a", "b", "label", *LABEL_FIELDS])
    )


def _frame(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pl.DataFrame:
    """A DataFrame from row tuples, built column-wise through Arrow (fast for list columns)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    table = pa.table([pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # a Table converts to a DataFrame (polars types it as either)
    return frame


def _protein_sentence(drug: str, row: dict[str, Any]) -> str:
    protein = row["gene_name"] or row["name"] or row["be_id"] or row["uniprot_id"] or "an unnamed protein"
    ref = ", ".join(x for x in (row["kind"], row["uniprot_id"] or row["be_id"]) if x)
    roles = []
    for action in _as_list(row["actions"]):
        if action.lower() in _NO_ACTION:
            continue
        strength = {"inhibitor": row["inhibition_strength"], "inducer": row["induction_strength"]}.get(action)
        roles.append(f"{strength} {action}" if strength and strength.lower() != "unknown" else action)
    if not roles:
        return f"{drug} interacts with {protein} ({ref})"
    phrase = " and ".join(roles)
    return f"{drug} is {'an' if phrase[0].lower() in 'aeiou' else 'a'} {phrase} of {protein} ({ref})"


def _fact_table(drugs: pl.DataFrame, drug_proteins: pl.DataFrame, ids: list[str]) -> pl.DataFrame:
    """Protein, category and ATC facts of every drug, in retrieval order, with their sentences."""
    _require(drug_proteins, _PROTEIN_COLUMNS, "drug_proteins table")
    bad_kind = drug_proteins.filter(~pl.col("kind").is_in(pl.Series(PROTEIN_ORDER).implode()))
    if bad_kind.height:
        raise InputError(
            f"drug_proteins table: kind {bad_kind['kind'][0]!r} is not one of {list(PROTEIN_ORDER)}"
        )
    dp = drug_proteins.with_columns(
        _to_idx("drug_id", ids).alias("drug_idx"),
        pl.col("kind").replace_strict(PROTEIN_ORDER, range(4)).alias("_order"),
    )
    unknown = dp.filter(pl.col("drug_idx") < 0)
    if unknown.height:
        raise InputError(f"drug_proteins table: drug_id {unknown['drug_id'][0]!r} is not in the drugs table")
    dp = dp.sort(
        ["drug_idx", "_order", "position", "be_id", "uniprot_id", "gene_name", "name"], nulls_last=True
    )
    names = drugs["name"].to_list()
    rows: list[tuple[Any, ...]] = []
    seen: set[tuple[Any, ...]] = set()
    for r in dp.iter_rows(named=True):
        actions = tuple(_as_list(r["actions"]))
        ident = (r["drug_idx"], r["kind"], r["uniprot_id"] or r["be_id"] or r["name"], actions)
        if ident in seen:
            continue
        seen.add(ident)
        rows.append(
            (
                r["drug_idx"],
                "protein",
                f"{r['kind']}s",
                _protein_sentence(names[r["drug_idx"]], r),
                r["kind"],
                r["uniprot_id"],
                r["gene_name"],
                r["name"],
                list(actions),
                None,
            )
        )
    for i, (name, cats, atcs) in enumerate(
        zip(names, drugs["categories"].to_list(), drugs["atc_codes"].to_list(), strict=True)
    ):
        for cat in dict.fromkeys(_as_list(cats)):
            rows.append(
                (
                    i,
                    "category",
                    "categories",
                    f"{name} is in the category {cat}",
                    None,
                    None,
                    None,
                    None,
                    [],
                    cat,
                )
            )
        for code in dict.fromkeys(_as_list(atcs)):
            rows.append(
                (i, "atc", "atc_codes", f"{name} has ATC code {code}", None, None, None, None, [], code)
            )
    schema = pa.schema(
        [
            (c, {"drug_idx": pa.int32(), "actions": pa.list_(pa.string())}.get(c, pa.string()))
            for c in _FACT_COLUMNS
        ]
    )
    return _frame(rows, schema).sort("drug_idx", maintain_order=True)


def _member(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def _text_table(
    drugs: pl.DataFrame, matcher: NameMatcher, hidden: np.ndarray, nontrain_keys: np.ndarray
) -> pl.DataFrame:
    """Free-text sentences that name no hidden drug and no drug whose pair with their drug is held out."""
    n = drugs.height
    rows: list[tuple[int, str, str, list[int]]] = []
    columns = [drugs[f].to_list() for f in TEXT_FIELDS]
    for i in range(n):
        for field, text in zip(TEXT_FIELDS, (col[i] for col in columns), strict=True):
            for sentence in split_sentences(text):
                named = sorted(matcher.find(sentence) - {i})
                if named:
                    other = np.asarray(named, dtype=np.int64)
                    keys = np.minimum(other, i) * n + np.maximum(other, i)
                    if hidden[other].any() or _member(nontrain_keys, keys).any():
                        continue
                clean = _CITATION.sub("", sentence).strip()
                if clean:
                    rows.append((i, field, clean, named))
    schema = pa.schema(
        [
            ("drug_idx", pa.int32()),
            ("field", pa.string()),
            ("sentence", pa.string()),
            ("named", pa.list_(pa.int32())),
        ]
    )
    return _frame(rows, schema)


def _binary(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    m = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _coded(rows: pl.DataFrame, n: int) -> sparse.csr_matrix:
    """Binary drug x feature matrix from a (drug_idx, feature) table."""
    rows = rows.unique().with_columns((pl.col("feature").rank("dense") - 1).alias("col"))
    top = rows["col"].max()
    assert top is None or isinstance(top, int)  # a UInt32 rank; None when there are no rows
    n_cols = (top or 0) + 1 if rows.height else 1
    return _binary(rows["drug_idx"].to_numpy(), rows["col"].to_numpy(), (n, n_cols))


def drug_features(
    drugs: pl.DataFrame, drug_proteins: pl.DataFrame, ids: list[str]
) -> list[sparse.csr_matrix]:
    """Binary feature matrices: (protein, action) pairs, categories, SMILES n-gram fingerprint bits."""
    n = len(ids)
    protein = (
        drug_proteins.select(
            _to_idx("drug_id", ids).alias("drug_idx"),
            pl.coalesce("uniprot_id", "be_id", "name").alias("protein"),
            "actions",
        )
        .explode("actions")
        .select(
            "drug_idx",
            pl.concat_str(
                [pl.col("protein").fill_null(""), pl.col("actions").fill_null("").str.to_lowercase()],
                separator="|",
            ).alias("feature"),
        )
    )
    categories = (
        drugs.with_row_index("drug_idx")
        .select("drug_idx", "categories")
        .explode("categories")
        .drop_nulls("categories")
        .select(
            pl.col("drug_idx").cast(pl.Int64),
            pl.col("categories").str.strip_chars().str.to_lowercase().alias("feature"),
        )
    )
    fp_rows, fp_cols = [], []
    for i, smiles in enumerate(drugs["smiles"].to_list()):
        grams = {smiles[j : j + k] for k in FINGERPRINT_NGRAMS for j in range(len(smiles or "") - k + 1)}
        bits = {zlib.crc32(g.encode()) % FINGERPRINT_BITS for g in grams}
        fp_rows += [i] * len(bits)
        fp_cols += sorted(bits)
    fingerprint = _binary(
        np.asarray(fp_rows, dtype=np.int64), np.asarray(fp_cols, dtype=np.int64), (n, FINGERPRINT_BITS)
    )
    return [_coded(protein, n), _coded(categories, n), fingerprint]


def _top(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns of the k largest positive values (ties: lower column first) and those values."""
    positive = np.flatnonzero(sim > 0)
    if len(positive) > k:
        threshold = np.partition(sim[positive], len(positive) - k)[len(positive) - k]
        positive = positive[sim[positive] >= threshold]
    order = np.lexsort((positive, -sim[positive]))[:k]
    return positive[order], sim[positive[order]]


def _neighbors(
    features: list[sparse.csr_matrix], candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """For every drug, its k most similar candidate drugs (itself excluded): indices (-1 padded) and
    scores."""
    n = features[0].shape[0]
    idx = np.full((n, k), -1, dtype=np.int32)
    sims = np.zeros((n, k), dtype=np.float32)
    if len(candidates) == 0 or k == 0:
        return idx, sims
    counts = [np.asarray(x.sum(axis=1)).ravel().astype(np.float32) for x in features]
    columns = [x[candidates].T.tocsr() for x in features]
    cand_pos = np.full(n, -1, dtype=np.int64)
    cand_pos[candidates] = np.arange(len(candidates))
    for start in range(0, n, _BLOCK_ROWS):
        rows = np.arange(start, min(n, start + _BLOCK_ROWS))
        total = np.zeros((len(rows), len(candidates)), dtype=np.float32)
        present = np.zeros(len(rows), dtype=np.float32)
        for x, cols, count in zip(features, columns, counts, strict=True):
            inter = (x[rows] @ cols).toarray()
            union = count[rows][:, None] + count[candidates][None, :] - inter
            has = count[rows] > 0
            total += np.divide(inter, union, out=np.zeros_like(inter), where=union > 0) * has[:, None]
            present += has
        total /= np.maximum(present, 1.0)[:, None]
        own = cand_pos[rows] >= 0
        total[np.flatnonzero(own), cand_pos[rows[own]]] = 0.0
        for r, row in enumerate(rows):
            cols, values = _top(total[r], k)
            idx[row, : len(cols)] = candidates[cols]
            sims[row, : len(cols)] = values
    return idx, sims


def _allocate(lengths: list[int], weights: list[int], budget: int) -> list[int]:
    """Items to take from each queue: weighted round-robin until the budget or the queues run out."""
    takes = [0] * len(lengths)
    while budget > 0:
        progressed = False
        for i, (length, weight) in enumerate(zip(lengths, weights, strict=True)):
            take = min(weight, length - takes[i], budget)
            if take > 0:
                takes[i] += take
                budget -= take
                progressed = True
        if not progressed:
            break
    return takes


class RetrievalIndex:
    """Evidence retrieval for one split; build with ``build`` or ``load``."""

    def __init__(
        self,
        cfg: RetrievalConfig,
        hidden: list[str],
        drugs: pl.DataFrame,
        facts: pl.DataFrame,
        text: pl.DataFrame,
        train: pl.DataFrame,
        neighbor_idx: np.ndarray,
        neighbor_sim: np.ndarray,
    ) -> None:
        """From the stored tables (see ``save``); use ``build`` or ``load`` rather than calling this."""
        self.cfg = cfg
        self.hidden_drugs = frozenset(hidden)
        self._tables = {"drugs": drugs, "facts": facts, "text": text, "train": train}
        self._neighbor_idx, self._neighbor_sim = neighbor_idx, neighbor_sim
        self.drug_ids: list[str] = drugs["drug_id"].to_list()
        self._pos = {d: i for i, d in enumerate(self.drug_ids)}
        self._names: list[str] = drugs["name"].to_list()
        self._matcher = NameMatcher(drugs["match_names"].to_list())
        n = len(self.drug_ids)
        self._facts: dict[str, list[list[Evidence]]] = {
            k: [[] for _ in range(n)] for k in ("protein", "category", "atc")
        }
        for r in facts.iter_rows(named=True):
            self._facts[r["kind"]][r["drug_idx"]].append(
                Evidence(
                    id="",
                    kind=r["kind"],
                    drug_id=self.drug_ids[r["drug_idx"]],
                    sentence=r["sentence"],
                    field=r["field"],
                    protein_kind=r["protein_kind"],
                    uniprot_id=r["uniprot_id"],
                    gene_name=r["gene_name"],
                    protein_name=r["protein_name"],
                    actions=tuple(r["actions"] or ()),
                    value=r["value"],
                )
            )
        self._text: list[list[tuple[Evidence, frozenset[int]]]] = [[] for _ in range(n)]
        for i, field, sentence, named in text.iter_rows():
            self._text[i].append(
                (
                    Evidence(id="", kind="text", drug_id=self.drug_ids[i], sentence=sentence, field=field),
                    frozenset(named),
                )
            )
        vocab = train.select("label", *LABEL_FIELDS).unique().sort("label", *LABEL_FIELDS)
        self._labels: list[tuple[str, ...]] = list(vocab.iter_rows())
        coded = train.join(vocab.with_row_index("code"), on=["label", *LABEL_FIELDS], how="left")
        coded = coded.sort(["a", "b", "label", *LABEL_FIELDS])
        self._keys = coded["a"].cast(pl.Int64).to_numpy() * n + coded["b"].cast(pl.Int64).to_numpy()
        self._codes = coded["code"].to_numpy()
        self._descriptions = coded["description"]

    @classmethod
    def build(
        cls,
        drugs: pl.DataFrame,
        drug_proteins: pl.DataFrame,
        interactions_or_pairs: pl.DataFrame,
        train_pairs: pl.DataFrame,
        hidden_drugs: Iterable[str],
        cfg: RetrievalConfig | None = None,
    ) -> RetrievalIndex:
        """Index a split from what its training part may see.

        ``interactions_or_pairs``: every known pair (the ddi_pairs or interactions table; for a temporal split
        the later release), used for interaction descriptions and to recognise held-out pairs in free text.
        ``train_pairs``: the split's train part (interaction evidence comes only from it). ``hidden_drugs``:
        drugs whose interactions are hidden (``split_hidden_drugs`` gives them for a strategy).
        """
        cfg = cfg or RetrievalConfig()
        drugs = _validated_drugs(drugs)
        ids: list[str] = drugs["drugbank_id"].to_list()
        pos = {d: i for i, d in enumerate(ids)}
        hidden = sorted(set(hidden_drugs) & pos.keys())
        hidden_mask = np.zeros(len(ids), dtype=bool)
        hidden_mask[[pos[h] for h in hidden]] = True
        known = _known_pairs(interactions_or_pairs, ids)
        train = _train_table(train_pairs, ids, hidden_mask, known)
        train_keys = np.unique(train["a"].cast(pl.Int64).to_numpy() * len(ids) + train["b"].to_numpy())
        nontrain = np.setdiff1d(known["key"].to_numpy(), train_keys)
        table = drugs.select(
            pl.col("drugbank_id").alias("drug_id"),
            "name",
            pl.concat_list(
                "name",
                pl.col("synonyms").fill_null([]),
                pl.col("salt_names").fill_null([]),
                "drugbank_id",
                pl.col("secondary_ids").fill_null([]),
            )
            .list.drop_nulls()
            .alias("match_names"),
        )
        facts = _fact_table(drugs, drug_proteins, ids)
        text = _text_table(drugs, NameMatcher(table["match_names"].to_list()), hidden_mask, nontrain)
        candidates = np.unique(np.concatenate([train["a"].to_numpy(), train["b"].to_numpy()])).astype(
            np.int64
        )
        idx, sims = _neighbors(drug_features(drugs, drug_proteins, ids), candidates, cfg.k_similar + 1)
        return cls(cfg, hidden, table, facts, text, train, idx, sims)

    def save(self, directory: str | Path) -> Path:
        """Write the index as Parquet + npz + index.json; the directory is replaced as a whole."""
        out = Path(directory)
        tmp = out.parent / f".{out.name}.{uuid.uuid4().hex}.tmp"
        tmp.mkdir(parents=True)
        try:
            for name, table in self._tables.items():
                table.write_parquet(tmp / f"{name}.parquet")
            np.savez(tmp / "neighbors.npz", idx=self._neighbor_idx, sim=self._neighbor_sim)
            meta = {
                "format": FORMAT_VERSION,
                "config": asdict(self.cfg),
                "hidden_drugs": sorted(self.hidden_drugs),
                "n_drugs": len(self.drug_ids),
                "n_train_rows": self._tables["train"].height,
            }
            (tmp / "index.json").write_text(json.dumps(meta, indent=1))
            replace_dir(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> RetrievalIndex:
        """Read an index written by ``save``."""
        src = Path(directory)
        meta_path = src / "index.json"
        if not meta_path.is_file():
            raise InputError(f"retrieval index {src}: no index.json (not a saved index)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise InputError(
                f"retrieval index {src}: format {meta.get('format')!r}, expected {FORMAT_VERSION}"
            )
        names = ("drugs", "facts", "text", "train")
        missing = [f for f in (*(f"{n}.parquet" for n in names), "neighbors.npz") if not (src / f).is_file()]
        if missing:
            raise InputError(f"retrieval index {src}: missing {missing}")
        tables = {name: pl.read_parquet(src / f"{name}.parquet") for name in names}
        with np.load(src / "neighbors.npz") as npz:
            idx, sim = npz["idx"], npz["sim"]
        return cls(
            RetrievalConfig(**meta["config"]),
            meta["hidden_drugs"],
            tables["drugs"],
            tables["facts"],
            tables["text"],
            tables["train"],
            idx,
            sim,
        )

    def _index(self, drug: str) -> int:
        try:
            return self._pos[drug]
        except KeyError:
            raise InputError(f"retrieval query: drug {drug!r} is not in the index's drugs table") from None

    def _neighbors_of(self, drug: int, exclude: int) -> list[tuple[int, float]]:
        """The ``k_similar`` training drugs most similar to ``drug`` (by index), other than ``exclude``."""
        out = [
            (int(j), float(s))
            for j, s in zip(self._neighbor_idx[drug], self._neighbor_sim[drug], strict=True)
            if j >= 0 and j != exclude
        ]
        return out[: self.cfg.k_similar]

    def _interaction(self, row: int, s: int, p: int, query: int, similarity: float) -> Evidence:
        label, family, subtype, direction, modality = self._labels[self._codes[row]]
        if s > p:
            direction = mirror_direction(direction)
            label = f"{family}/{subtype}/{direction}/{modality}"
        sn, pn = self._names[s], self._names[p]
        shown = {"A to B": f"{sn} to {pn}", "B to A": f"{pn} to {sn}"}.get(direction, direction.lower())
        desc = self._descriptions[row]
        text = desc if desc and self._matcher.find(desc) <= {s, p} else f"{sn} and {pn} interact."
        sentence = (
            f"{sn} (similar to {self._names[query]}, similarity {similarity:.2f}) with {pn} in training "
            f"data: {text} Label: {family} / {subtype} / {shown} / {modality}."
        )
        return Evidence(
            id="",
            kind="similar_interaction",
            drug_id=self.drug_ids[s],
            sentence=sentence,
            field="interactions",
            value=label,
            partner_id=self.drug_ids[p],
            similar_to=self.drug_ids[query],
            similarity=round(similarity, 4),
        )

    def _analogues(
        self, query: int, near: list[tuple[int, float]], partners: list[int], used: set[int]
    ) -> list[Evidence]:
        """Training interactions of ``query``'s neighbours with ``partners``, interleaved by neighbour
        rank."""
        n, cap = len(self.drug_ids), self.cfg.max_interactions_per_neighbor
        per_neighbor: list[list[Evidence]] = []
        for s, similarity in near:
            others = np.asarray([p for p in partners if p != s], dtype=np.int64)
            keys = np.minimum(others, s) * n + np.maximum(others, s)
            lo, hi = np.searchsorted(self._keys, keys, "left"), np.searchsorted(self._keys, keys, "right")
            items: list[Evidence] = []
            for p, key, start, stop in zip(
                others.tolist(), keys.tolist(), lo.tolist(), hi.tolist(), strict=True
            ):
                if start == stop or key in used or len(items) >= cap:
                    continue
                used.add(key)
                items += [self._interaction(r, s, p, query, similarity) for r in range(start, stop)][
                    : cap - len(items)
                ]
            per_neighbor.append(items)
        depth = max((len(x) for x in per_neighbor), default=0)
        return [x[i] for i in range(depth) for x in per_neighbor if i < len(x)]

    def _sentences(self, drug: int, other: int) -> list[Evidence]:
        counts = dict.fromkeys(TEXT_FIELDS, 0)
        out = []
        for evidence, named in self._text[drug]:
            if other not in named and counts[evidence.field] < self.cfg.max_text_sentences:
                counts[evidence.field] += 1
                out.append(evidence)
        return out

    def retrieve(self, drug_a: str, drug_b: str) -> list[Evidence]:
        """Numbered evidence (E1, E2, ...) for the pair, never showing a non-training interaction."""
        a, b = self._index(drug_a), self._index(drug_b)
        if a == b:
            raise InputError(f"retrieval query: ({drug_a}, {drug_b}) pairs a drug with itself")
        near_a, near_b = self._neighbors_of(a, b), self._neighbors_of(b, a)
        used: set[int] = set()
        analogues_a = self._analogues(a, near_a, [b] + [t for t, _ in near_b], used)
        analogues_b = self._analogues(b, near_b, [a] + [s for s, _ in near_a], used)
        queues = [
            ("protein", self._facts["protein"][a]),
            ("protein", self._facts["protein"][b]),
            ("category", self._facts["category"][a]),
            ("category", self._facts["category"][b]),
            ("atc", self._facts["atc"][a]),
            ("atc", self._facts["atc"][b]),
            ("similar_interaction", analogues_a),
            ("similar_interaction", analogues_b),
            ("text", self._sentences(a, b)),
            ("text", self._sentences(b, a)),
        ]
        takes = _allocate([len(q) for _, q in queues], [_WEIGHTS[k] for k, _ in queues], self.cfg.max_items)
        items = [e for (_, q), t in zip(queues, takes, strict=True) for e in q[:t]]
        return [replace(e, id=f"E{i}") for i, e in enumerate(items, 1)]


def write_indexes(
    ingest_dir: Path, label_dir: Path, splits_dir: Path, cfg: RetrievalConfig, out: Path
) -> dict[str, Any]:
    """The index stage's output in ``out``: one leak-free retrieval index per split strategy, built from that
    strategy's training part."""
    drugs = pl.read_parquet(ingest_dir / "drugs.parquet")
    proteins = pl.read_parquet(ingest_dir / "drug_proteins.parquet")
    pairs = pl.read_parquet(label_dir / "ddi_pairs.parquet")
    strategies = (read_manifest(splits_dir) or {})["strategies"]
    for strategy in strategies:
        train = pl.read_parquet(splits_dir / strategy / "train.parquet")
        hidden = split_hidden_drugs(strategy, drugs["drugbank_id"].to_list(), train)
        RetrievalIndex.build(drugs, proteins, pairs, train, hidden, cfg).save(out / strategy)
    return {"strategies": sorted(strategies)}
