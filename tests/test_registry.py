"""Model promotion: the rule, the comparison pairs, and the new model against the champion on the same
pairs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mard_core.errors import InputError
from mard_core.evaluation.catalog import SYSTEMS
from mard_core.evaluation.config import SYSTEM_KINDS, EvalConfig
from mard_core.evaluation.systems import BaseSystem, Prediction, Query, SystemContext
from mard_core.metrics.labels import mirror_label
from mard_core.registry import (
    compare_with_champion,
    comparison_pairs,
    decide,
    known_pairs,
    registered_spec,
)
from mard_core.registry_config import RegisterConfig

WRONG = "PD Antagonistic/Therapeutic efficacy/A to B/Decrease"


@pytest.mark.parametrize(
    ("new", "champion", "promote"),
    [
        (0.5, None, True),
        (0.49, 0.5, True),
        (0.48, 0.5, True),
        (0.47, 0.5, False),
        (0.7, 0.5, True),
        (None, 0.5, False),
    ],
)
def test_promotion_tolerates_only_the_margin(
    new: float | None, champion: float | None, promote: bool
) -> None:
    decision = decide(new, champion, margin=0.02)
    assert decision.promote is promote and decision.reason


def pairs(*keys: tuple[str, str], seen: Sequence[bool] | None = None) -> pl.DataFrame:
    df = pl.DataFrame(
        {"drug_a": [a for a, _ in keys], "drug_b": [b for _, b in keys]},
        schema={"drug_a": pl.String, "drug_b": pl.String},
    )
    return df if seen is None else df.with_columns(pl.Series("seen", list(seen), dtype=pl.Boolean))


def test_comparison_prefers_pairs_new_in_the_release() -> None:
    test = pairs(("DB1", "DB2"), ("DB1", "DB3"), ("DB2", "DB3"), ("DB3", "DB4"))
    champion = pairs(("DB1", "DB2"), ("DB1", "DB3"), seen=[True, False])
    chosen, basis = comparison_pairs(test, champion, min_new_pairs=2)
    assert basis == "new-in-release" and chosen.rows() == [("DB2", "DB3"), ("DB3", "DB4")]
    # Too few new pairs: every test pair the champion did not learn from (DB1-DB3 was in its test part).
    chosen, basis = comparison_pairs(test, champion, min_new_pairs=3)
    assert basis == "unseen-by-champion" and chosen.rows() == [("DB1", "DB3"), ("DB2", "DB3"), ("DB3", "DB4")]
    chosen, basis = comparison_pairs(test, None, min_new_pairs=3)
    assert basis == "whole-test-part" and chosen.equals(test)


def test_known_pairs_mark_what_the_split_taught(real_world: dict[str, Any]) -> None:
    known = known_pairs(real_world["pairs"], real_world["root"] / "splits", "random")
    parts = {
        p: pl.read_parquet(real_world["root"] / "splits" / "random" / f"{p}.parquet")
        for p in ("train", "valid", "test")
    }
    assert known.height == real_world["pairs"].height and known.columns == ["drug_a", "drug_b", "seen"]
    seen = set(known.filter(pl.col("seen")).select("drug_a", "drug_b").rows())
    assert seen == set(parts["train"].select("drug_a", "drug_b").rows()) | set(
        parts["valid"].select("drug_a", "drug_b").rows()
    )
    assert not seen & set(parts["test"].select("drug_a", "drug_b").rows())


class LookupStudent(BaseSystem):
    """A 'model' whose weights are a table: its directory's answers.parquet gives each canonical pair's
    label."""

    kind = "student"

    def __init__(self, name: str, model: str) -> None:
        self.name = name
        table = pl.read_parquet(Path(model) / "answers.parquet")
        self.answers = {(a, b): lab for a, b, lab in table.select("drug_a", "drug_b", "label").iter_rows()}

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        out = []
        for q in queries:
            label = self.answers.get((q.drug_a, q.drug_b))
            if label is None:
                label = self.answers[(q.drug_b, q.drug_a)]
                label = label if label == WRONG else mirror_label(label)
            out.append(Prediction(label, 0.8))
        return out


def lookup(spec: Mapping[str, Any], ctx: SystemContext) -> LookupStudent:
    return LookupStudent(spec["name"], spec["model"])


@pytest.fixture
def models(real_world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A gold-answering and an always-wrong lookup model, and an evaluation config registering
    ``lookup:mard``."""
    monkeypatch.setitem(SYSTEMS, "lookup", lookup)
    monkeypatch.setattr("mard_core.evaluation.config.SYSTEM_KINDS", (*SYSTEM_KINDS, "lookup"))
    dirs = {}
    for name, label in (("gold", pl.col("label")), ("wrong", pl.lit(WRONG))):
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        real_world["pairs"].select("drug_a", "drug_b", label.alias("label")).write_parquet(
            dirs[name] / "answers.parquet"
        )
    eval_cfg = EvalConfig(
        systems=("majority", {"name": "lookup:mard", "model": "{dpo}", "strategies": ["{split}"]}),
        max_mirror_pairs=4,
    )
    return {"dirs": dirs, "eval": eval_cfg, "cfg": RegisterConfig(system="lookup:mard", min_new_pairs=1)}


def compare(
    world: dict[str, Any], models: dict[str, Any], new: str, champion: str | None, known: pl.DataFrame | None
) -> Any:
    spec = registered_spec(models["eval"], models["cfg"])
    return compare_with_champion(
        spec,
        {"dpo": str(models["dirs"][new])},
        str(models["dirs"][champion]) if champion else None,
        known,
        "random",
        models["eval"],
        models["cfg"],
        world["root"] / "ingest",
        world["root"] / "splits",
        world["root"] / "index",
    )


def test_a_regressing_model_is_not_promoted_and_a_better_one_is(
    real_world: dict[str, Any], models: dict[str, Any]
) -> None:
    test = pl.read_parquet(real_world["root"] / "splits" / "random" / "test.parquet")
    old_release = real_world["pairs"].join(
        test.head(3).select("drug_a", "drug_b"), on=["drug_a", "drug_b"], how="anti"
    )
    known = known_pairs(old_release, real_world["root"] / "splits", "random")  # the last test pairs are new
    worse = compare(real_world, models, "wrong", "gold", known)
    assert worse.basis == "new-in-release" and worse.n_pairs == worse.n_available == 3
    assert (worse.new, worse.champion) == (0.0, 1.0) and not worse.decision.promote
    assert (worse.new_only_correct, worse.champion_only_correct) == (0, 3)
    assert [r.metrics["system"] for r in worse.results] == ["lookup:mard@new", "lookup:mard@champion"]
    better = compare(real_world, models, "gold", "wrong", known)
    assert better.decision.promote and (better.new, better.champion) == (1.0, 0.0)
    assert "promoted to `champion`" in better.markdown("mard-student", "champion")
    assert "not promoted" in worse.markdown(
        "mard-student", "champion"
    ) and "| champion | 1.0000 | 3 |" in worse.markdown("mard-student", "champion")


def test_without_a_champion_the_first_model_is_promoted(
    real_world: dict[str, Any], models: dict[str, Any]
) -> None:
    first = compare(real_world, models, "wrong", None, None)
    assert first.decision.promote and first.basis == "no champion" and not first.results


def test_the_registered_system_must_name_the_trained_student() -> None:
    with pytest.raises(InputError, match="not among evaluate.systems"):
        registered_spec(EvalConfig(), RegisterConfig(system="student:nope"))
    with pytest.raises(InputError, match=r"\{dpo\}"):
        registered_spec(EvalConfig(), RegisterConfig(system="student:sft"))
    assert registered_spec(EvalConfig(), RegisterConfig())["model"] == "{dpo}"


def test_nothing_to_compare_on_is_not_a_promotion(real_world: dict[str, Any], models: dict[str, Any]) -> None:
    test = pl.read_parquet(real_world["root"] / "splits" / "random" / "test.parquet")
    learned_everything = test.select("drug_a", "drug_b").with_columns(pl.lit(True).alias("seen"))
    result = compare(real_world, models, "gold", "wrong", learned_everything)
    assert result.basis == "unseen-by-champion" and result.n_pairs == 0 and not result.decision.promote
    assert "nothing to compare on" in result.markdown("mard-student", "champion")
