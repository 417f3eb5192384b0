"""Evaluation harness: metrics of a system whose answers we control equal hand computation; random A/B order,
mirror consistency on a seeded sample, calibration on valid, intervals, rare-drug strata, MFS, deterministic
cost; the leaderboard with its paired student-vs-baseline section, the report and the system registry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mard_core.config import load_config
from mard_core.errors import InputError, MardError
from mard_core.evaluation.catalog import SYSTEMS, BackendSystem, build_system
from mard_core.evaluation.config import EvalConfig
from mard_core.evaluation.protocol import drug_listing_counts, evaluate_all, evaluate_system
from mard_core.evaluation.report import (
    leaderboard,
    leaderboard_markdown,
    paired_differences,
    split_ceilings,
    write_report,
)
from mard_core.evaluation.systems import BaseSystem, Prediction, Query, SystemContext
from mard_core.metrics.cost import api_prompt_tokens
from mard_core.metrics.labels import mirror_label
from mard_core.prompts import render_prompt
from mard_core.retrieval import RetrievalIndex
from mard_core.teachers.base import Completion, GenerationParams
from mard_core.validation import parse_config

WRONG = "PD Antagonistic/Therapeutic efficacy/A to B/Decrease"  # a label no fixture pair has
STRATEGIES = ("random", "cold_drug")


def part(world: dict[str, Any], strategy: str, name: str) -> pl.DataFrame:
    return pl.read_parquet(world["root"] / "splits" / strategy / f"{name}.parquet")


class ControlledSystem(BaseSystem):
    """Gold (oriented) for every pair, except a fixed wrong label for ``wrong`` pairs and no answer for
    ``silent`` pairs (canonical keys); confidence 0.9 when right, 0.6 when wrong; records its queries."""

    def __init__(
        self,
        pairs: pl.DataFrame,
        wrong: set[tuple[str, str]],
        silent: set[tuple[str, str]],
        name: str = "controlled",
        contaminated: bool = False,
        kind: str = "baseline",
    ) -> None:
        self.gold = {(a, b): lab for a, b, lab in pairs.select("drug_a", "drug_b", "label").iter_rows()}
        self.wrong, self.silent = wrong, silent
        self.name, self.possibly_contaminated, self.kind = name, contaminated, kind
        self.seen: list[Query] = []

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        self.seen += queries
        out = []
        for q in queries:
            key = tuple(sorted((q.drug_a, q.drug_b)))
            if key in self.silent:
                out.append(Prediction(None, None, prompt_tokens=10, completion_tokens=5))
            elif key in self.wrong:
                out.append(Prediction(WRONG, 0.6, prompt_tokens=10, completion_tokens=5))
            else:
                label = self.gold[key] if key == (q.drug_a, q.drug_b) else mirror_label(self.gold[key])
                out.append(Prediction(label, 0.9, prompt_tokens=10, completion_tokens=5))
        return out


def evaluate(world: dict[str, Any], system: Any, strategy: str = "random", **cfg: Any) -> Any:
    index = RetrievalIndex.load(world["root"] / "index" / strategy)
    counts = drug_listing_counts(pl.read_parquet(world["root"] / "ingest" / "interactions.parquet"))
    return evaluate_system(
        system, world["root"] / "splits", strategy, index, world["facts"], counts, EvalConfig(**cfg)
    )


def test_metrics_equal_hand_computation(real_world: dict[str, Any]) -> None:
    test = part(real_world, "random", "test")
    keys = list(test.select("drug_a", "drug_b").iter_rows())
    wrong, silent = set(keys[:2]), {keys[2]}
    system = ControlledSystem(real_world["pairs"], wrong, silent)
    metrics, preds = evaluate(real_world, system)
    n = test.height
    assert metrics["n"] == preds.height == n
    assert metrics["exact_accuracy"] == pytest.approx((n - 3) / n)
    assert metrics["no_answer_rate"] == pytest.approx(1 / n)
    # The wrong label is "A to B" in both orientations, so not a mirror image; nor is a no-answer.
    assert metrics["mirror_consistency"] == pytest.approx((n - 3) / n)
    assert metrics["brier"] == pytest.approx(((n - 3) * 0.1**2 + 2 * 0.6**2 + 0.0) / n)
    assert metrics["calibration_n"] == n and metrics["calibration_missing"] == 0
    assert metrics["cost_prompt_tokens_per_1k"] == pytest.approx(10_000)
    assert metrics["cost_completion_tokens_per_1k"] == pytest.approx(5_000)
    # Self-hosted: its own tokens at the stated throughputs (50k prompt, 5k completion tokens/s), $2.50/h.
    assert metrics["cost_self_hosted_usd_per_1k"] == pytest.approx(
        (10_000 / 50_000 + 5_000 / 5_000) / 3600 * 2.5
    )
    # API: the test prompts' o200k_base tokens (test queries are asked first) plus 256 per answer.
    o200k = sum(api_prompt_tokens([render_prompt(q.ref_a, q.ref_b, q.evidence) for q in system.seen[:n]]))
    assert metrics["cost_api_prompt_tokens_per_1k"] == pytest.approx(o200k * 1000 / n)
    assert metrics["cost_api_usd_per_1k"] == pytest.approx((o200k * 1000 / n * 2.5 + 256_000 * 10.0) / 1e6)
    assert metrics["rare_drug_bins"]["n"].sum() == n
    for name in ("exact_accuracy", "family_accuracy", "subtype_macro_f1", "mirror_consistency", "ece"):
        assert metrics[f"{name}_ci95_lo"] <= metrics[name] <= metrics[f"{name}_ci95_hi"], name
    assert metrics["ece_calibrated_ci95_lo"] <= metrics["ece_calibrated"] <= metrics["ece_calibrated_ci95_hi"]
    labels, matrix = metrics["confusion_family"]
    assert matrix.sum() == n and "<no answer>" in labels
    assert "mfs_mean" not in metrics  # no chains written
    assert preds.filter(pl.col("correct")).height == n - 3
    assert sorted(preds.filter(pl.col("pred").is_null()).select("drug_a", "drug_b").rows()) == sorted(silent)


def test_queries_follow_the_random_order_and_gold_is_oriented(real_world: dict[str, Any]) -> None:
    system = ControlledSystem(real_world["pairs"], set(), set())
    _, preds = evaluate(real_world, system, "cold_drug", mirror=False, calibrate_on_valid=False)
    n = preds.height
    assert 0 < preds["swapped"].sum() < n  # both orientations occur
    assert [(q.drug_a, q.drug_b) for q in system.seen] == list(preds.select("query_a", "query_b").iter_rows())
    for row in preds.iter_rows(named=True):
        assert (row["query_a"], row["query_b"]) == (
            (row["drug_b"], row["drug_a"]) if row["swapped"] else (row["drug_a"], row["drug_b"])
        )
        canonical = system.gold[(row["drug_a"], row["drug_b"])]
        assert row["gold"] == (mirror_label(canonical) if row["swapped"] else canonical)
    assert preds["correct"].all()
    first = system.seen[0]
    assert first.evidence and first.names_a[0] == real_world["facts"].drug_names(first.drug_a)[0]


def test_mirror_is_capped_and_inconsistent_systems_score_low(real_world: dict[str, Any]) -> None:
    class Fixed(BaseSystem):
        name = "fixed"

        def predict(self, queries: Sequence[Query]) -> list[Prediction]:
            return [Prediction(WRONG, 0.5) for _ in queries]

    metrics, preds = evaluate(real_world, Fixed(), max_mirror_pairs=3)
    assert metrics["n_mirror"] == 3 and preds["pred_mirror"].drop_nulls().len() == 3
    assert metrics["mirror_consistency"] == 0.0  # "A to B" for both (A, B) and (B, A)
    assert metrics["mirror_consistency_ci95_lo"] == metrics["mirror_consistency_ci95_hi"] == 0.0
    # A seeded random sample of the queries, not the first (lowest-id) ones.
    asked = [i for i, label in enumerate(preds["pred_mirror"].to_list()) if label is not None]
    again = evaluate(real_world, Fixed(), max_mirror_pairs=3).predictions["pred_mirror"].is_not_null()
    other = evaluate(real_world, Fixed(), max_mirror_pairs=3, seed=1).predictions
    assert asked != [0, 1, 2] and again.arg_true().to_list() == asked
    assert other["pred_mirror"].is_not_null().arg_true().to_list() != asked


def test_calibration_is_fitted_on_valid(real_world: dict[str, Any]) -> None:
    valid = part(real_world, "random", "valid")
    wrong_valid = set(valid.select("drug_a", "drug_b").rows()[: valid.height // 2])
    system = ControlledSystem(real_world["pairs"], wrong_valid, set())
    metrics, preds = evaluate(real_world, system)
    data = metrics["calibration_data"]
    assert metrics["calibrated"] and data.height == valid.height
    assert data["correct"].sum() == valid.height - len(wrong_valid)
    # Isotonic on valid: confidence 0.9 -> the valid accuracy at 0.9 (all right there), 0.6 -> 0.
    assert set(preds["confidence_calibrated"].to_list()) == {1.0}
    assert metrics["ece_calibrated"] == pytest.approx(0.0) and metrics["ece"] == pytest.approx(0.1)


def test_sample_cap_is_seeded_and_mfs_appears_for_chains(real_world: dict[str, Any]) -> None:
    ctx = SystemContext.load(real_world["root"] / "ingest", real_world["root"] / "splits", "random")
    system = build_system("knowledge_rules", ctx)
    one = evaluate(real_world, system, max_test_pairs=4)
    two = evaluate(real_world, system, max_test_pairs=4)
    assert one.metrics["n"] == 4
    assert (
        one.predictions.select("query_a", "query_b").rows()
        == two.predictions.select("query_a", "query_b").rows()
    )
    assert 0.0 <= one.metrics["mfs_mean"] <= 1.0 and one.metrics["mfs_n_chains"] == 4
    assert one.predictions["text"].str.contains("ANSWER:").all()


def test_rare_drug_strata_spread_on_a_cold_split(real_world: dict[str, Any]) -> None:
    metrics, preds = evaluate(real_world, ControlledSystem(real_world["pairs"], set(), set()), "cold_drug")
    train = part(real_world, "cold_drug", "train")
    seen = set(train["drug_a"].to_list()) | set(train["drug_b"].to_list())
    # Every test pair has a held-out drug: by training pairs all fall in one bin; by listings they spread.
    assert all(a not in seen or b not in seen for a, b in preds.select("drug_a", "drug_b").iter_rows())
    bins = metrics["rare_drug_bins"]
    assert bins["n"].sum() == preds.height and (bins["n"] > 0).sum() >= 2


def test_leaderboard_markdown_and_report(real_world: dict[str, Any], tmp_path: Path) -> None:
    test = part(real_world, "random", "test")
    keys = list(test.select("drug_a", "drug_b").iter_rows())
    results = [
        evaluate(real_world, ControlledSystem(real_world["pairs"], set(), set(), name, flag), strategy)
        for name, flag in (("clean", False), ("hosted", True))
        for strategy in STRATEGIES
    ]
    student = ControlledSystem(real_world["pairs"], set(keys[:3]), set(), "student:ctl", kind="student")
    results.append(evaluate(real_world, student))
    board = leaderboard(results)
    assert board.height == 5
    assert {"system", "strategy", "kind", "possibly_contaminated", "exact_accuracy", "ece"} <= set(
        board.columns
    )
    assert "reliability" not in board.columns
    assert board.filter(pl.col("possibly_contaminated"))["system"].unique().to_list() == ["hosted"]
    paired = paired_differences(results)
    # The student against both baselines on the split it ran on: three metrics each, on the same queries.
    assert paired.height == 6 and set(paired["baseline"]) == {"clean", "hosted"}
    exact = paired.filter((pl.col("metric") == "exact_accuracy") & (pl.col("baseline") == "clean")).row(
        0, named=True
    )
    assert exact["n"] == test.height and exact["diff"] == pytest.approx(-3 / test.height)
    assert exact["diff_ci95_lo"] <= exact["diff"] <= exact["diff_ci95_hi"] <= 0
    assert exact["mcnemar_p"] == pytest.approx(0.25)  # 3 discordant pairs, all against the student: 2 / 2^3
    text = leaderboard_markdown(board, paired)
    lines = text.splitlines()
    assert (
        lines[0].startswith("| System | Split |") and len([x for x in lines if x.startswith("| ")]) == 6 + 3
    )
    row = next(x for x in lines if x.startswith("| student:ctl | random |"))
    lo, hi = (
        board.filter(pl.col("system") == "student:ctl")
        .select("exact_accuracy_ci95_lo", "exact_accuracy_ci95_hi")
        .row(0)
    )
    assert f"[{lo:.3f}, {hi:.3f}]" in row
    assert "## Students against baselines" in text and "| random | student:ctl | clean |" in text
    assert "hosted †" in text and "possibly contaminated" in text
    paths = write_report(results, tmp_path)
    assert pl.read_parquet(paths["leaderboard"]).height == 5
    assert pl.read_parquet(paths["paired"]).equals(paired)
    assert paths["leaderboard_md"].read_text() == text
    # Rerun: the same Markdown byte for byte (no wall time in it).
    again = [
        evaluate(real_world, ControlledSystem(real_world["pairs"], set(), set(), "clean"), "random"),
        results[-1],
    ]
    assert leaderboard_markdown(leaderboard(again), paired_differences(again)) == leaderboard_markdown(
        leaderboard([results[0], results[-1]]), paired_differences([results[0], results[-1]])
    )
    # Systems asked different queries are not paired.
    fewer = evaluate(real_world, ControlledSystem(real_world["pairs"], set(), set()), max_test_pairs=4)
    with pytest.raises(MardError, match="not asked the same queries"):
        paired_differences([fewer, results[-1]])
    for stem in ("clean__random", "hosted__cold_drug"):
        assert pl.read_parquet(paths[f"predictions/{stem}"]).height > 0
        for plot in ("confusion", "reliability", "rare_drugs"):
            assert paths[f"plots/{stem}_{plot}"].stat().st_size > 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_evaluate_all_runs_every_system_on_every_strategy(real_world: dict[str, Any]) -> None:
    root = real_world["root"]
    cfg = EvalConfig(strategies=STRATEGIES, systems=("majority", {"name": "drug_prior"}), max_test_pairs=5)
    results = evaluate_all(cfg, root / "ingest", root / "splits", root / "index")
    assert [(m["system"], m["strategy"]) for m, _ in results] == [
        ("majority", "random"),
        ("drug_prior", "random"),
        ("majority", "cold_drug"),
        ("drug_prior", "cold_drug"),
    ]
    assert all(m["n"] == min(5, part(real_world, m["strategy"], "test").height) for m, _ in results)


def test_registry_builds_every_baseline(real_world: dict[str, Any]) -> None:
    root = real_world["root"]
    ctx = SystemContext.load(root / "ingest", root / "splits", "random", index_dir=root / "index")
    for name in ("majority", "drug_prior", "knowledge_rules", "similarity", "bag_of_evidence"):
        system = build_system(name, ctx)
        assert system.name == name and system.kind == "baseline" and not system.possibly_contaminated
    mlp = build_system({"name": "feature_mlp", "epochs": 2, "hidden": 8}, ctx)
    assert mlp.config.epochs == 2
    with pytest.raises(InputError, match="needs the strategy's retrieval index"):
        build_system("bag_of_evidence", SystemContext.load(root / "ingest", root / "splits", "random"))
    with pytest.raises(InputError, match="unknown system"):
        build_system("oracle", ctx)
    with pytest.raises(InputError, match="takes no options"):
        build_system({"name": "majority", "k": 1}, ctx)
    with pytest.raises(InputError, match=r"^evaluate: systems: unknown system 'nonsense'; known kinds: "):
        parse_config(EvalConfig, {"systems": ["majority", "nonsense"]}, "evaluate")
    with pytest.raises(
        InputError, match=r"^evaluate: systems: duplicate names in \['majority', 'majority'\]"
    ):
        parse_config(EvalConfig, {"systems": ["majority", "majority"]}, "evaluate")


class EchoBackend:
    """A fake backend answering every prompt with one fixed completion."""

    name = "echo"

    def __init__(self, text: str) -> None:
        self.text, self.closed = text, False

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Completion]]:
        assert params.temperature == 0.0 and all(
            p.startswith(("Drug A: ", "Query: Drug A with Drug B\n")) for p in prompts
        )
        return [[Completion(self.text, 100, 20, 0.1, "stop")] for _ in prompts]

    def close(self) -> None:
        self.closed = True


def test_backend_system_parses_completions(real_world: dict[str, Any]) -> None:
    text = "Step 1: A thing [E1].\nANSWER: PK Metabolism/Metabolism/<dir_ab>/Inhibition | confidence 0.7\n"
    backend = EchoBackend(text)
    system = BackendSystem(backend, "student:echo", "student")
    metrics, preds = evaluate(real_world, system, mirror=False, calibrate_on_valid=False)
    assert set(preds["pred"].to_list()) == {"PK Metabolism/Metabolism/A to B/Inhibition"}
    assert set(preds["confidence"].to_list()) == {0.7}
    assert metrics["cost_prompt_tokens_per_1k"] == pytest.approx(100_000)
    assert metrics["mfs_unverifiable_mean"] == 1.0  # "A thing" is outside the claim grammar
    garbage = BackendSystem(EchoBackend("no answer here"), "teacher:echo", "teacher")
    assert garbage.predict([Query("DB00582", "DB06626", ("Voriconazole",), ("Axitinib",))])[0].label is None
    system.close()
    assert backend.closed


def test_backend_factories_and_config_file(real_world: dict[str, Any]) -> None:
    ctx = SystemContext.load(
        real_world["root"] / "ingest", real_world["root"] / "splits", "random", {"host": "127.0.0.1"}
    )
    spec = {
        "name": "endpoint:api",
        "backend": {"backend": "openai", "base_url": "http://{host}:9/v1", "model": "m"},
        "max_tokens": 64,
    }
    endpoint = SYSTEMS["endpoint"](spec, ctx)
    assert endpoint.possibly_contaminated and endpoint.kind == "endpoint"
    assert endpoint.params.max_tokens == 64 and "127.0.0.1" in endpoint.backend.url
    endpoint.close()
    with pytest.raises(InputError, match="needs a 'backend' spec or a 'model'"):
        SYSTEMS["student"]({"name": "student:x"}, ctx)
    with pytest.raises(InputError, match="unknown placeholder"):
        SYSTEMS["student"]({"name": "student:x", "model": "{models}/s"}, ctx)
    cfg = load_config(Path(__file__).parents[1] / "configs" / "evaluate.yaml").evaluate
    names = [s["name"] for s in cfg.system_specs()]
    assert names[:6] == [
        "majority",
        "drug_prior",
        "knowledge_rules",
        "similarity",
        "feature_mlp",
        "bag_of_evidence",
    ]
    assert "student:mard" in names and cfg.prices.api_name == "gpt-4o" and cfg.max_test_pairs == 5000
    default = EvalConfig()
    assert (default.max_test_pairs, default.max_valid_pairs, default.max_mirror_pairs) == (1000, 500, 200)
    assert "bag_of_evidence" in default.systems


def test_bad_inputs_are_reported(real_world: dict[str, Any], tmp_path: Path) -> None:
    class Short(BaseSystem):
        name = "short"

        def predict(self, queries: Sequence[Query]) -> list[Prediction]:
            return []

    with pytest.raises(Exception, match="0 predictions"):
        evaluate(real_world, Short())
    index = RetrievalIndex.load(real_world["root"] / "index" / "random")
    with pytest.raises(InputError, match="not found"):
        evaluate_system(Short(), tmp_path, "random", index, real_world["facts"], {}, EvalConfig())
    with pytest.raises(InputError, match="no results"):
        leaderboard([])


def test_the_leaderboard_shows_the_world_s_oracle_ceiling(real_world: dict[str, Any]) -> None:
    system = ControlledSystem(real_world["pairs"], set(), set(), "clean", False)
    board = leaderboard([evaluate(real_world, system, STRATEGIES[0])])
    assert "oracle" not in leaderboard_markdown(board)
    assert leaderboard_markdown(board, ceiling=0.9005).splitlines()[-1].startswith("oracle: 0.900 exact")
    result = evaluate(real_world, system, STRATEGIES[0])
    first = result.predictions.row(0, named=True)
    misses = {f"{first['drug_a']}|{first['drug_b']}"}
    per_split = split_ceilings([result], misses)
    assert per_split == {STRATEGIES[0]: pytest.approx(1 - 1 / result.predictions.height)}
    line = leaderboard_markdown(board, ceiling=0.9, split_ceiling=per_split).splitlines()[-1]
    assert line.endswith(f"on the scored test pairs; {STRATEGIES[0]} {per_split[STRATEGIES[0]]:.3f}.")
