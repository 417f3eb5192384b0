"""Splits: partition, drug-overlap guarantees per strategy, determinism, orientation, stats and writing."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mard_core.errors import InputError
from mard_core.splits import (
    PARTS,
    SPLIT_COLUMNS,
    canonical_pairs,
    check_split,
    make_split,
    make_temporal_split,
    split_stats,
    write_split,
)
from mard_core.splits_config import SplitConfig
from mard_core.validation import parse_config
from schemas import DDI_PAIRS, SPLIT

FAMILIES = (
    "Pharmacokinetic/CYP3A4 inhibition",
    "Pharmacodynamic/QT prolongation",
    "Pharmacodynamic/Bleeding",
)
DIRECTIONS = ("A to B", "B to A", "Bidirectional")
MODALITIES = ("increase", "decrease")
FLIP = {"A to B": "B to A", "B to A": "A to B", "Bidirectional": "Bidirectional"}


def row(
    a: str, b: str, family: str = FAMILIES[0], direction: str = "A to B", modality: str = "increase"
) -> dict:
    fam, sub = family.split("/")
    return {
        "drug_a": a,
        "drug_b": b,
        "label": f"{fam}/{sub}/{direction}/{modality}",
        "family": fam,
        "subtype": sub,
        "direction": direction,
        "modality": modality,
        "description": f"{a} with {b}.",
        "n_listings": 2,
        "listings_agree": True,
    }


def table(rows: list[dict]) -> pl.DataFrame:
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=DDI_PAIRS))


def keys(df: pl.DataFrame) -> set[tuple[str, str]]:
    return set(df.select("drug_a", "drug_b").iter_rows())


@st.composite
def pair_graphs(draw: st.DrawFn) -> pl.DataFrame:
    """Random pair graphs over up to 30 drugs, random labels, rows in random orientation and order."""
    n = draw(st.integers(2, 30))
    edges = draw(
        st.sets(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda e: e[0] < e[1]),
            max_size=120,
        )
    )
    rows = []
    for a, b in sorted(edges):
        r = row(
            f"DB{a:05d}",
            f"DB{b:05d}",
            draw(st.sampled_from(FAMILIES)),
            draw(st.sampled_from(DIRECTIONS)),
            draw(st.sampled_from(MODALITIES)),
        )
        if draw(st.booleans()):  # feed the other orientation
            r = row(
                r["drug_b"], r["drug_a"], f"{r['family']}/{r['subtype']}", FLIP[r["direction"]], r["modality"]
            )
        rows.append(r)
    return table(draw(st.permutations(rows)) if rows else rows)


configs = st.builds(
    SplitConfig,
    valid_frac=st.sampled_from([0.0, 0.1, 0.25]),
    test_frac=st.sampled_from([0.0, 0.1, 0.3]),
    cold_test_frac=st.sampled_from([0.0, 0.1, 0.2]),
    cold_valid_frac=st.sampled_from([0.0, 0.15]),
    seed=st.integers(0, 2**16),
)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(pairs=pair_graphs(), cfg=configs, strategy=st.sampled_from(["random", "cold_drug", "cold_pair"]))
def test_split_properties_on_generated_graphs(pairs: pl.DataFrame, cfg: SplitConfig, strategy: str) -> None:
    parts = make_split(pairs, strategy, cfg)
    assert check_split(parts, strategy) == []
    canon, _ = canonical_pairs(pairs)
    union = pl.concat([parts[p] for p in PARTS])
    assert union.height == union.unique().height  # no row twice
    assert union.join(canon, on=list(SPLIT_COLUMNS), how="anti").height == 0  # nothing invented
    dropped = sum(parts.report.get("dropped", {}).values())
    assert union.height + dropped == canon.height == parts.report["pairs_in"]
    for p in PARTS:
        assert tuple(parts[p].columns) == SPLIT_COLUMNS
        assert parts[p].equals(parts[p].sort(list(SPLIT_COLUMNS)))
    # Same input in another row order and the other orientation: identical parts.
    swapped = pairs.select(
        pl.col("drug_b").alias("drug_a"),
        pl.col("drug_a").alias("drug_b"),
        "family",
        "subtype",
        pl.col("direction").replace_strict(FLIP).alias("direction"),
        "modality",
    ).with_columns(
        pl.concat_str(["family", "subtype", "direction", "modality"], separator="/").alias("label")
    )
    again = make_split(swapped.reverse(), strategy, cfg)
    assert all(again[p].equals(parts[p]) for p in PARTS)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(old=pair_graphs(), new=pair_graphs(), cfg=configs)
def test_temporal_properties(old: pl.DataFrame, new: pl.DataFrame, cfg: SplitConfig) -> None:
    parts = make_temporal_split(old, new, cfg)
    assert check_split(parts, "temporal") == []
    assert keys(parts["test"]) == keys(canonical_pairs(new)[0]) - keys(canonical_pairs(old)[0])
    assert keys(parts["train"]) | keys(parts["valid"]) == keys(canonical_pairs(old)[0])
    train_drugs = {d for k in keys(parts["train"]) for d in k}
    assert {d for k in keys(parts["valid"]) for d in k} <= train_drugs


def test_temporal_leaves_out_pairs_of_drugs_merged_away() -> None:
    old = chain(6)
    new = chain(7).filter((pl.col("drug_a") != "D002") & (pl.col("drug_b") != "D002"))  # D002 merged away
    drugs = pl.Series([f"D{i:03d}" for i in range(7) if i != 2])
    parts = make_temporal_split(old, new, SplitConfig(seed=0), drugs)
    assert parts.report["old_pairs_of_retired_drugs"] == 5
    assert all("D002" not in k for p in ("train", "valid") for k in keys(parts[p]))
    assert keys(parts["train"]) | keys(parts["valid"]) == keys(old) - {k for k in keys(old) if "D002" in k}


def chain(n: int) -> pl.DataFrame:
    """A dense graph: every pair among n drugs."""
    return table(
        [row(f"D{i:03d}", f"D{j:03d}", FAMILIES[(i + j) % 3]) for i in range(n) for j in range(i + 1, n)]
    )


def test_random_split_sizes_and_seed() -> None:
    pairs = chain(30)  # 435 pairs
    no_cold = {"cold_test_frac": 0.0, "cold_valid_frac": 0.0}
    parts = make_split(pairs, "random", SplitConfig(valid_frac=0.1, test_frac=0.2, seed=3, **no_cold))
    assert [parts[p].height for p in PARTS] == [304, 44, 87]  # round(43.5) = 44
    assert parts.report["moved_to_train"] == 0
    other = make_split(pairs, "random", SplitConfig(valid_frac=0.1, test_frac=0.2, seed=4, **no_cold))
    assert not other["test"].equals(parts["test"])


def test_random_moves_pairs_of_rare_drugs_to_train() -> None:
    # A star: each leaf drug has one pair only, so any leaf pair drawn for test must move back to train.
    pairs = table([row("HUB", f"LEAF{i:02d}") for i in range(20)])
    parts = make_split(
        pairs, "random", SplitConfig(valid_frac=0.2, test_frac=0.3, cold_test_frac=0.0, cold_valid_frac=0.0)
    )
    assert parts["valid"].height == parts["test"].height == 0
    assert parts.report["moved_to_train"] == 10
    assert check_split(parts, "random") == []


def test_cold_drug_has_exactly_one_unseen_drug_and_reports_drops() -> None:
    pairs = chain(40)
    cfg = SplitConfig(valid_frac=0.0, test_frac=0.0, cold_valid_frac=0.1, cold_test_frac=0.1, seed=1)
    parts = make_split(pairs, "cold_drug", cfg)
    train = {d for k in keys(parts["train"]) for d in k}
    for p in ("valid", "test"):
        assert parts[p].height > 0
        assert all((a in train) + (b in train) == 1 for a, b in keys(parts[p]))
    held = parts.report["held_out_drugs"]
    assert held == {"valid": 4, "test": 4}
    # Complete graph: 4 test drugs give C(4,2)=6 pairs with both held out, same for valid, 16 valid x test.
    assert parts.report["dropped"] == {
        "random_evaluation": 0,
        "valid_test_cross": 16,
        "both_held_out": 12,
        "partner_unseen_in_train": 0,
    }
    assert parts["test"].height == 4 * 32


def test_cold_pair_has_both_drugs_unseen() -> None:
    cfg = SplitConfig(valid_frac=0.0, test_frac=0.0, cold_valid_frac=0.1, cold_test_frac=0.1, seed=1)
    parts = make_split(chain(40), "cold_pair", cfg)
    train = {d for k in keys(parts["train"]) for d in k}
    assert parts["test"].height == 6 and parts["valid"].height == 6
    assert all(a not in train and b not in train for p in ("valid", "test") for a, b in keys(parts[p]))
    assert parts.report["dropped"] == {
        "random_evaluation": 0,
        "valid_test_cross": 16,
        "one_held_out": 2 * 4 * 32,
    }


def test_the_three_strategies_share_one_training_part() -> None:
    """One partition: the same train part, and no evaluation pair of any strategy is a training pair or
    shares a held-out drug with it, so one model trained on it can be scored on all three."""
    cfg = SplitConfig(seed=2)
    splits = {s: make_split(chain(50), s, cfg) for s in ("random", "cold_drug", "cold_pair")}
    train = splits["random"]["train"]
    assert all(parts["train"].equals(train) for parts in splits.values())
    assert splits["random"].report["dropped"]["held_out_drug"] > 0
    train_keys, train_drugs = keys(train), {d for k in keys(train) for d in k}
    evaluation = {s: keys(parts[p]) for s, parts in splits.items() for p in ("valid", "test")}
    assert all(ks and not ks & train_keys for ks in evaluation.values())
    seen = {"random": 2, "cold_drug": 1, "cold_pair": 0}
    for s, parts in splits.items():
        for p in ("valid", "test"):
            assert all((a in train_drugs) + (b in train_drugs) == seen[s] for a, b in keys(parts[p]))
    assert not keys(splits["random"]["test"]) & (
        keys(splits["cold_drug"]["test"]) | keys(splits["cold_pair"]["test"])
    )


def test_canonicalisation_flips_direction_and_label() -> None:
    df, dups = canonical_pairs(table([row("B", "A", direction="A to B"), row("A", "B", direction="B to A")]))
    assert dups == 1
    assert df.row(0, named=True) == {
        "drug_a": "A",
        "drug_b": "B",
        "label": "Pharmacokinetic/CYP3A4 inhibition/B to A/increase",
        "family": "Pharmacokinetic",
        "subtype": "CYP3A4 inhibition",
        "direction": "B to A",
        "modality": "increase",
    }


def test_rows_of_one_pair_stay_together() -> None:
    rows = [row(f"D{i}", f"D{i + 1}") for i in range(0, 40, 2)]
    rows += [row(r["drug_b"], r["drug_a"], FAMILIES[1]) for r in rows]  # a second label, other orientation
    cfg = SplitConfig(test_frac=0.5, valid_frac=0.0, cold_test_frac=0.0, cold_valid_frac=0.0)
    parts = make_split(table(rows), "random", cfg)
    assert check_split(parts, "random") == []
    assert sum(parts[p].height for p in PARTS) == 40


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([row("A", "A")], "pair a drug with itself"),
        ([{**row("A", "B"), "direction": "sideways"}], "direction 'sideways'"),
        ([{**row("B", "A"), "label": "free text"}], "cannot be re-oriented"),
    ],
)
def test_bad_pairs_raise_clear_errors(rows: list[dict], message: str) -> None:
    with pytest.raises(InputError, match=message):
        make_split(table(rows), "random", SplitConfig())


def test_bad_arguments_raise() -> None:
    with pytest.raises(InputError, match="missing columns"):
        make_split(pl.DataFrame({"drug_a": ["A"]}), "random", SplitConfig())
    with pytest.raises(InputError, match="make_temporal_split"):
        make_split(chain(3), "temporal", SplitConfig())
    with pytest.raises(InputError, match=r"^splits: valid_frac \+ test_frac = 1.0: must be < 1$"):
        parse_config(SplitConfig, {"valid_frac": 0.5, "test_frac": 0.5}, "splits")
    with pytest.raises(InputError, match=r"^splits: strategies\[1\]: must be 'random', .* got 'scaffold'$"):
        parse_config(SplitConfig, {"strategies": ["random", "scaffold"]}, "splits")


def test_check_split_reports_violations() -> None:
    def s(rows: list[dict]) -> pl.DataFrame:
        return table(rows).select(SPLIT_COLUMNS)

    parts = {
        "train": s([row("A", "B"), row("C", "D")]),
        "valid": s([row("A", "B")]),
        "test": s([row("A", "E")]),
    }
    problems = check_split(parts, "random")
    assert any("1 pairs are in more than one part: (A, B)" in p for p in problems)
    assert any("random: 1 test pairs do not have exactly 0" in p for p in problems)
    assert check_split(parts, "cold_drug") == [
        "1 pairs are in more than one part: (A, B)",
        "cold_drug: 1 valid pairs do not have exactly 1 drug(s) unseen in train: (A, B)",
    ]
    cold = {"train": s([row("A", "B")]), "valid": s([row("X", "Y")]), "test": s([row("X", "Z")])}
    assert check_split(cold, "cold_pair") == ["cold_pair: 1 held-out drugs are in both valid and test: ['X']"]
    assert check_split({"train": parts["train"]}, "random") == [
        "part 'valid' is missing",
        "part 'test' is missing",
    ]


def test_split_stats_values() -> None:
    def s(rows: list[dict]) -> pl.DataFrame:
        return table(rows).select(SPLIT_COLUMNS)

    parts = {
        "train": s([row("A", "B"), row("A", "C", FAMILIES[1])]),
        "valid": s([row("B", "C")]),
        "test": s([row("A", "D", FAMILIES[2]), row("B", "C", FAMILIES[2])]),
    }
    stats = split_stats(parts)
    assert stats["sizes"] == {"train": 2, "valid": 1, "test": 2}
    assert stats["drugs"] == {"train": 3, "valid": 2, "test": 4}
    assert stats["drugs_unseen_in_train"] == {"valid": 0, "test": 1}
    assert stats["label_shift"]["valid"]["tvd_label"] == pytest.approx(0.5)
    assert stats["label_shift"]["test"]["tvd_family"] == pytest.approx(0.5)  # PD 1.0 vs PK/PD 0.5/0.5
    assert stats["label_shift"]["test"]["rows_with_label_not_in_train"] == 2
    made = make_split(chain(12), "cold_drug", SplitConfig())
    assert split_stats(made)["dropped"] == made.report["dropped"]


def test_write_split_roundtrip(tmp_path) -> None:
    parts = make_split(chain(10), "random", SplitConfig())
    paths = write_split(parts, tmp_path / "split")
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == [
        "test.parquet",
        "train.parquet",
        "valid.parquet",
    ]
    for p in PARTS:
        read = pq.read_table(paths[p])
        assert read.schema.equals(SPLIT)
        assert pl.from_arrow(read).equals(parts[p])
    with pytest.raises(InputError, match="part 'test' is missing"):
        write_split({"train": parts["train"], "valid": parts["valid"]}, tmp_path / "other")
