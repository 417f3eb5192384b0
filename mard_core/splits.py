"""Leakage-free train/valid/test splits of labelled DDI pairs.

Strategies (``make_split``) cut three test parts from one partition, so that they share one training part and
a model trained on it can be scored on all three (as EmerGNN's S0/S1/S2 settings):

- held-out drugs: a seeded ``cold_test_frac`` of the drugs for test, ``cold_valid_frac`` for valid (disjoint);
  the other drugs are seen;
- ``random`` (S0): the pairs of two seen drugs are split at random (``valid_frac``/``test_frac`` of them).
  Every drug of a valid or test pair also appears in train: an evaluation pair with a drug unseen in train is
  moved to train (``moved_to_train``). Train = the rest of those pairs, for every strategy.
- ``cold_drug`` (S1): a test (valid) pair has exactly one test (valid) held-out drug and one drug seen in
  train; pairs of two held-out drugs, or whose other drug occurs in no train pair, are dropped and reported.
- ``cold_pair`` (S2): a test (valid) pair has both drugs in the test (valid) held-out set, so neither drug is
  seen in training; pairs with one held-out drug are dropped and reported. With 20% of drugs held out for
  test, about 4% of pairs land in its test part.

In every strategy the pairs it does not use (the others' evaluation pairs, valid x test pairs) are dropped
and counted in its report.
- ``temporal`` (``make_temporal_split``): train/valid are a random split of the earlier release (valid_frac of
  its pairs), test = the pairs of the later release whose unordered pair is absent from the earlier one.

Pairs are unordered: input rows are canonicalised to drug_a < drug_b (the direction flipped and the label
rebuilt for swapped rows), exact duplicates are removed and rows are sorted before any random draw, so the
same input in any row order or orientation gives identical parts. Rows of one unordered pair always go to the
same part.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from mard_core.errors import InputError, MardError
from mard_core.splits_config import STRATEGIES, SplitConfig
from mard_core.taxonomy import DIRECTIONS, mirror_direction
from schemas import LABEL_FIELDS, SPLIT

PARTS = ("train", "valid", "test")
SPLIT_COLUMNS: tuple[str, ...] = tuple(SPLIT.names)
_FLIP = {d: mirror_direction(d) for d in DIRECTIONS}
_TRAIN, _VALID, _TEST, _DROP = 0, 1, 2, -1


class SplitParts(dict[str, pl.DataFrame]):
    """The parts ``train``/``valid``/``test`` of one split, plus what was moved or dropped to build them."""

    def __init__(self, parts: dict[str, pl.DataFrame], strategy: str, report: dict[str, Any]) -> None:
        super().__init__(parts)
        self.strategy = strategy
        self.report = report


def canonical_pairs(pairs: pl.DataFrame, what: str = "pairs") -> tuple[pl.DataFrame, int]:
    """Rows with drug_a < drug_b, the SPLIT columns only, exact duplicates removed, sorted.

    Returns the table and the number of duplicate rows removed. Swapped rows get the flipped direction and the
    label rebuilt as ``family/subtype/direction/modality``, so their label must have that form.
    """
    missing = [c for c in SPLIT_COLUMNS if c not in pairs.columns]
    if missing:
        raise InputError(
            f"{what}: missing columns {missing}; expected the ddi_pairs columns {list(SPLIT_COLUMNS)}"
        )
    df = pairs.select([pl.col(c).cast(pl.String) for c in SPLIT_COLUMNS])
    nulls = [c for c in SPLIT_COLUMNS if df[c].null_count()]
    if nulls:
        raise InputError(f"{what}: null values in columns {nulls}")
    bad_dir = df.filter(~pl.col("direction").is_in(pl.Series(DIRECTIONS).implode()))
    if bad_dir.height:
        raise InputError(
            f"{what}: direction {bad_dir['direction'][0]!r} "
            f"(pair {bad_dir['drug_a'][0]}, {bad_dir['drug_b'][0]})"
            f" is not one of {list(DIRECTIONS)}"
        )
    selfs = df.filter(pl.col("drug_a") == pl.col("drug_b"))
    if selfs.height:
        raise InputError(f"{what}: {selfs.height} rows pair a drug with itself (e.g. {selfs['drug_a'][0]})")
    rebuilt = pl.concat_str([pl.col(f) for f in LABEL_FIELDS], separator="/")
    swap = pl.col("drug_a") > pl.col("drug_b")
    inconsistent = df.filter(swap & (pl.col("label") != rebuilt))
    if inconsistent.height:
        row = inconsistent.row(0, named=True)
        raise InputError(
            f"{what}: pair ({row['drug_a']}, {row['drug_b']}) is in reverse order "
            f"and its label {row['label']!r} "
            "is not family/subtype/direction/modality, so it cannot be re-oriented"
        )
    flipped = pl.col("direction").replace_strict(_FLIP, return_dtype=pl.String)
    df = (
        df.with_columns(
            pl.when(swap).then(pl.col("drug_b")).otherwise(pl.col("drug_a")).alias("drug_a"),
            pl.when(swap).then(pl.col("drug_a")).otherwise(pl.col("drug_b")).alias("drug_b"),
            pl.when(swap).then(flipped).otherwise(pl.col("direction")).alias("direction"),
            swap.alias("_swap"),
        )
        .with_columns(pl.when("_swap").then(rebuilt).otherwise(pl.col("label")).alias("label"))
        .drop("_swap")
    )
    unique = df.unique().sort(list(SPLIT_COLUMNS))
    return unique, df.height - unique.height


def _codes(df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-row drug codes (index into the sorted drug list), per-row pair ids, and the drug count."""
    drugs = pl.concat([df["drug_a"], df["drug_b"]]).unique().sort()
    enum = pl.Enum(drugs.to_list())
    a = df["drug_a"].cast(enum).to_physical().to_numpy().astype(np.int64)
    b = df["drug_b"].cast(enum).to_physical().to_numpy().astype(np.int64)
    new_pair = np.ones(len(a), dtype=bool)
    new_pair[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a, b, np.cumsum(new_pair) - 1, len(drugs)


def _random_parts(
    a: np.ndarray, b: np.ndarray, n_drugs: int, valid_frac: float, test_frac: float, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Pair-level random split; evaluation pairs with a drug unseen in train move to train (counted)."""
    n = len(a)
    perm = rng.permutation(n)
    n_test, n_valid = round(test_frac * n), round(valid_frac * n)
    part = np.full(n, _TRAIN, dtype=np.int8)
    part[perm[:n_test]] = _TEST
    part[perm[n_test : n_test + n_valid]] = _VALID
    seen = np.zeros(n_drugs, dtype=bool)
    seen[a[part == _TRAIN]] = True
    seen[b[part == _TRAIN]] = True
    seen_list = seen.tolist()
    moved = 0
    for p, x, y in zip(
        perm[: n_test + n_valid].tolist(),
        a[perm[: n_test + n_valid]].tolist(),
        b[perm[: n_test + n_valid]].tolist(),
        strict=True,
    ):
        if not (seen_list[x] and seen_list[y]):
            part[p] = _TRAIN
            seen_list[x] = seen_list[y] = True
            moved += 1
    return part, moved


def _partition(
    a: np.ndarray, b: np.ndarray, n_drugs: int, strategy: str, cfg: SplitConfig, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """``strategy``'s pair parts (-1 = not in this split) and report, cut from the one partition that every
    strategy shares (see the module doc): held-out drug sets first, then the random split of the pairs of
    seen drugs; the training part is the same for all three."""
    perm = rng.permutation(n_drugs)
    n_test, n_valid = round(cfg.cold_test_frac * n_drugs), round(cfg.cold_valid_frac * n_drugs)
    group = np.full(n_drugs, _TRAIN, dtype=np.int8)
    group[perm[:n_test]] = _TEST
    group[perm[n_test : n_test + n_valid]] = _VALID
    ga, gb = group[a], group[b]
    lo, hi = np.minimum(ga, gb), np.maximum(ga, gb)
    seen_pairs = np.flatnonzero(hi == _TRAIN)
    random_part, moved = _random_parts(
        a[seen_pairs], b[seen_pairs], n_drugs, cfg.valid_frac, cfg.test_frac, rng
    )
    shared = np.full(len(a), _DROP, dtype=np.int8)
    shared[seen_pairs] = random_part
    train = shared == _TRAIN
    random_eval = (shared == _VALID) | (shared == _TEST)
    report: dict[str, Any] = {
        "held_out_drugs": {"valid": n_valid, "test": n_test},
        "train_pairs": int(train.sum()),
    }
    part = np.full(len(a), _DROP, dtype=np.int8)
    part[train] = _TRAIN
    if strategy == "random":
        part[random_eval] = shared[random_eval]
        report["moved_to_train"] = moved
        report["dropped"] = {"held_out_drug": int((hi != _TRAIN).sum())}
        return part, report
    dropped = {
        "random_evaluation": int(random_eval.sum()),
        "valid_test_cross": int(((lo == _VALID) & (hi == _TEST)).sum()),
    }
    if strategy == "cold_drug":
        one_held = (lo == _TRAIN) & (hi != _TRAIN)
        seen = np.zeros(n_drugs, dtype=bool)
        seen[a[train]] = True
        seen[b[train]] = True
        partner_unseen = one_held & ~(seen[a] | seen[b])
        keep = one_held & ~partner_unseen
        part[keep] = hi[keep]
        dropped["both_held_out"] = int(((lo != _TRAIN) & (lo == hi)).sum())
        dropped["partner_unseen_in_train"] = int(partner_unseen.sum())
    else:
        both = (lo != _TRAIN) & (lo == hi)
        part[both] = hi[both]
        dropped["one_held_out"] = int(((lo == _TRAIN) & (hi != _TRAIN)).sum())
    report["dropped"] = dropped
    return part, report


def _assemble(df: pl.DataFrame, row_part: np.ndarray) -> dict[str, pl.DataFrame]:
    column = pl.Series("_part", row_part)
    tagged = df.with_columns(column)
    return {
        name: tagged.filter(pl.col("_part") == code).drop("_part")
        for name, code in zip(PARTS, (_TRAIN, _VALID, _TEST), strict=True)
    }


def make_split(pairs: pl.DataFrame, strategy: str, cfg: SplitConfig) -> SplitParts:
    """Split labelled pairs into train/valid/test by ``random``, ``cold_drug`` or ``cold_pair``: the three
    share one training part (:func:`_partition`)."""
    if strategy not in ("random", "cold_drug", "cold_pair"):
        raise InputError(
            f"make_split: strategy {strategy!r} is not one of random, cold_drug, cold_pair "
            "(temporal splits use make_temporal_split)"
        )
    df, duplicates = canonical_pairs(pairs)
    rng = np.random.default_rng(cfg.seed)
    report: dict[str, Any] = {"pairs_in": df.height, "duplicate_rows_removed": duplicates}
    if df.height == 0:
        return SplitParts({name: df for name in PARTS}, strategy, report)
    a, b, pair_id, n_drugs = _codes(df)
    first = np.flatnonzero(np.r_[True, pair_id[1:] != pair_id[:-1]])
    pair_part, extra = _partition(a[first], b[first], n_drugs, strategy, cfg, rng)
    report.update(extra)
    return SplitParts(_assemble(df, pair_part[pair_id]), strategy, report)


def make_temporal_split(
    old_pairs: pl.DataFrame, new_pairs: pl.DataFrame, cfg: SplitConfig, drugs: pl.Series | None = None
) -> SplitParts:
    """Train/valid: a random split of the earlier release; test: pairs new in the later release. Earlier
    pairs naming a drug that is not in ``drugs`` (the later release's primary ids: e.g. a drug merged into
    another since) are left out and counted."""
    old, old_dups = canonical_pairs(old_pairs, "old release pairs")
    new, new_dups = canonical_pairs(new_pairs, "new release pairs")
    retired = 0
    if drugs is not None:
        alive = pl.col("drug_a").is_in(drugs.implode()) & pl.col("drug_b").is_in(drugs.implode())
        retired, old = old.filter(~alive).height, old.filter(alive)
    keys = ["drug_a", "drug_b"]
    test = new.join(old.select(keys).unique(), on=keys, how="anti").sort(list(SPLIT_COLUMNS))
    removed = old.select(keys).unique().join(new.select(keys).unique(), on=keys, how="anti").height
    report: dict[str, Any] = {
        "old_pairs": old.height,
        "new_pairs": new.height,
        "duplicate_rows_removed": old_dups + new_dups,
        "pairs_removed_in_new": removed,
        "old_pairs_of_retired_drugs": retired,
        "moved_to_train": 0,
    }
    if old.height == 0:
        return SplitParts({"train": old, "valid": old, "test": test}, "temporal", report)
    a, b, pair_id, n_drugs = _codes(old)
    first = np.flatnonzero(np.r_[True, pair_id[1:] != pair_id[:-1]])
    pair_part, moved = _random_parts(
        a[first], b[first], n_drugs, cfg.valid_frac, 0.0, np.random.default_rng(cfg.seed)
    )
    report["moved_to_train"] = moved
    parts = _assemble(old, pair_part[pair_id])
    parts["test"] = test
    return SplitParts(parts, "temporal", report)


def _drugs(df: pl.DataFrame) -> pl.Series:
    return pl.concat([df["drug_a"], df["drug_b"]]).unique().sort()


def _distribution(df: pl.DataFrame, column: str) -> dict[str, float]:
    if df.height == 0:
        return {}
    counts = df.group_by(column).len()
    return {k: n / df.height for k, n in zip(counts[column].to_list(), counts["len"].to_list(), strict=True)}


def _tvd(p: dict[str, float], q: dict[str, float]) -> float | None:
    if not p or not q:
        return None
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def split_stats(parts: dict[str, pl.DataFrame]) -> dict[str, Any]:
    """Achieved sizes, drugs per part, drugs unseen in train, moved/dropped counts and label shift vs
    train."""
    total = sum(parts[p].height for p in PARTS)
    train_drugs = _drugs(parts["train"]).implode()
    stats: dict[str, Any] = {
        "strategy": getattr(parts, "strategy", None),
        "sizes": {p: parts[p].height for p in PARTS},
        "fractions": {p: (parts[p].height / total if total else 0.0) for p in PARTS},
        "drugs": {p: _drugs(parts[p]).len() for p in PARTS},
        "drugs_unseen_in_train": {},
        "pairs_with_unseen_drug": {},
        "label_shift": {},
    }
    train_label, train_family = (
        _distribution(parts["train"], "label"),
        _distribution(parts["train"], "family"),
    )
    for p in ("valid", "test"):
        df = parts[p]
        unseen_a = ~pl.col("drug_a").is_in(train_drugs)
        unseen_b = ~pl.col("drug_b").is_in(train_drugs)
        stats["drugs_unseen_in_train"][p] = int((~_drugs(df).is_in(train_drugs)).sum())
        stats["pairs_with_unseen_drug"][p] = df.filter(unseen_a | unseen_b).height
        labels = _distribution(df, "label")
        stats["label_shift"][p] = {
            "tvd_label": _tvd(labels, train_label),
            "tvd_family": _tvd(_distribution(df, "family"), train_family),
            "labels_not_in_train": sorted(set(labels) - set(train_label)),
            "rows_with_label_not_in_train": df.filter(
                ~pl.col("label").is_in(parts["train"]["label"].unique().implode())
            ).height,
        }
    stats.update(getattr(parts, "report", {}))
    return stats


def _examples(df: pl.DataFrame, n: int = 3) -> str:
    return ", ".join(f"({a}, {b})" for a, b in df.select("drug_a", "drug_b").head(n).iter_rows())


def check_split(parts: dict[str, pl.DataFrame], strategy: str) -> list[str]:
    """Violations of the split's guarantees (empty list when it is sound)."""
    if strategy not in STRATEGIES:
        raise InputError(f"check_split: strategy {strategy!r} is not one of {list(STRATEGIES)}")
    problems = [f"part {p!r} is missing" for p in PARTS if p not in parts]
    problems += [
        f"part {p!r} has columns {parts[p].columns}, expected {list(SPLIT_COLUMNS)}"
        for p in PARTS
        if p in parts and tuple(parts[p].columns) != SPLIT_COLUMNS
    ]
    if problems:
        return problems
    for p in PARTS:
        bad = parts[p].filter(pl.col("drug_a") >= pl.col("drug_b"))
        if bad.height:
            problems.append(
                f"{p}: {bad.height} pairs not in canonical order drug_a < drug_b: {_examples(bad)}"
            )
    keys = pl.concat(
        [parts[p].select("drug_a", "drug_b").unique().with_columns(pl.lit(p).alias("part")) for p in PARTS]
    )
    shared = (
        keys.group_by("drug_a", "drug_b").agg(pl.col("part").sort()).filter(pl.col("part").list.len() > 1)
    )
    if shared.height:
        problems.append(
            f"{shared.height} pairs are in more than one part: {_examples(shared.sort('drug_a', 'drug_b'))}"
        )
    train_drugs = _drugs(parts["train"]).implode()
    expected = {"random": 0, "cold_drug": 1, "cold_pair": 2}.get(strategy)
    unseen = {}
    for p in ("valid", "test"):
        drugs = _drugs(parts[p])
        unseen[p] = set(drugs.filter(~drugs.is_in(train_drugs)).to_list())
        if expected is None:
            continue
        n_unseen = (~pl.col("drug_a").is_in(train_drugs)).cast(pl.Int8) + (
            ~pl.col("drug_b").is_in(train_drugs)
        )
        bad = parts[p].filter(n_unseen != expected)
        if bad.height:
            problems.append(
                f"{strategy}: {bad.height} {p} pairs do not have exactly {expected} drug(s) unseen in "
                f"train: {_examples(bad)}"
            )
    if strategy in ("cold_drug", "cold_pair"):
        both = unseen["valid"] & unseen["test"]
        if both:
            problems.append(
                f"{strategy}: {len(both)} held-out drugs are in both valid and test: {sorted(both)[:3]}"
            )
    return problems


def audit_table(parts: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The evaluation pairs (valid, test) with the facts the split's quality suite checks independently.

    ``in_train``: the unordered pair is also a training pair; ``n_seen``: how many of its drugs occur in
    training pairs. The suites ``split_audit_<strategy>`` then require in_train false, each pair once, and
    the strategy's n_seen (random 2, cold_drug 1, cold_pair 0).
    """
    train = parts["train"]
    train_drugs = _drugs(train).implode()
    train_keys = train.select("drug_a", "drug_b").unique().with_columns(in_train=pl.lit(True))
    return (
        pl.concat(
            [parts[p].select("drug_a", "drug_b").with_columns(part=pl.lit(p)) for p in ("valid", "test")]
        )
        .join(train_keys, on=["drug_a", "drug_b"], how="left")
        .with_columns(
            in_train=pl.col("in_train").fill_null(False),
            n_seen=pl.col("drug_a").is_in(train_drugs).cast(pl.Int8) + pl.col("drug_b").is_in(train_drugs),
        )
    )


def write_split(parts: dict[str, pl.DataFrame], out_dir: str | Path) -> dict[str, Path]:
    """Write ``out_dir/{train,valid,test}.parquet`` with the SPLIT schema; each file appears atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {}
    for p in PARTS:
        if p not in parts:
            raise InputError(f"write_split: part {p!r} is missing")
        missing = [c for c in SPLIT_COLUMNS if c not in parts[p].columns]
        if missing:
            raise InputError(f"write_split: part {p!r} lacks columns {missing}")
        tables[p] = parts[p].select(SPLIT_COLUMNS).to_arrow().cast(SPLIT)
    temps = {p: out / f".{p}.parquet.{uuid.uuid4().hex}.tmp" for p in PARTS}
    try:
        for p in PARTS:
            pq.write_table(tables[p], temps[p])
        for p in PARTS:
            os.replace(temps[p], out / f"{p}.parquet")
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return {p: out / f"{p}.parquet" for p in PARTS}


def _write_strategy(parts: SplitParts, out: Path) -> dict[str, Any]:
    problems = check_split(parts, parts.strategy)
    if problems:
        raise MardError(f"split {parts.strategy} violates its guarantees: {'; '.join(problems[:3])}")
    write_split(parts, out / parts.strategy)
    audit_table(parts).write_parquet(out / f"split_audit_{parts.strategy}.parquet")
    stats = {**split_stats(parts), "report": parts.report}
    (out / parts.strategy / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True, default=str))
    return stats


def write_splits(
    label_dir: Path,
    previous_label_dir: Path | None,
    cfg: SplitConfig,
    out: Path,
    drugs: pl.Series | None = None,
) -> dict[str, Any]:
    """The splits stage's output in ``out``: each strategy's parts (checked against their guarantees), audit
    table and statistics; temporal from the previous release's labelled pairs when there is one (those of
    drugs no longer in ``drugs``, the release's primary ids, left out)."""
    pairs = pl.read_parquet(label_dir / "ddi_pairs.parquet")
    stats: dict[str, dict[str, Any]] = {
        s: _write_strategy(make_split(pairs, s, cfg), out) for s in cfg.strategies if s != "temporal"
    }
    if previous_label_dir is not None:
        old = pl.read_parquet(previous_label_dir / "ddi_pairs.parquet")
        stats["temporal"] = _write_strategy(make_temporal_split(old, pairs, cfg, drugs), out)
    return {"strategies": sorted(stats), "sizes": {s: st.get("sizes") for s, st in stats.items()}}
