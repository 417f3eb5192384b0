"""Trajectory generation: teacher configs, stratified sampling, sharded resumable output, purposes, retries,
and one run on real Ray (knowledge teacher + a tiny transformers model)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

import mard_core.generate as gen
from mard_core.errors import InputError
from mard_core.generate import (
    ShardJob,
    ShardResult,
    generate_shards,
    load_generate_config,
    load_teachers,
    read_trajectories,
    sample_pairs,
    train_pair_counts,
)
from mard_core.generate_config import DEMO_TEACHERS, GenerateConfig, TeacherSpec
from mard_core.metrics.labels import present_in_random_order
from mard_core.prompts import DrugRef
from mard_core.retrieval import RetrievalIndex
from mard_core.teachers.config import HFConfig, HTTPConfig, VLLMConfig
from mard_core.teachers.knowledge import KnowledgeTeacher
from mard_core.tiny import build_tiny_model
from mard_core.tiny_config import TinyModelConfig
from mard_core.validation import parse_config
from schemas import TRAJECTORIES

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
KNOWLEDGE = TeacherSpec("knowledge", "knowledge", {"backend": "knowledge"})


@pytest.fixture(scope="module")
def tiny_teacher(synthetic_world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> TeacherSpec:
    corpus = synthetic_world["drugs"]["description"].drop_nulls().to_list()
    model = build_tiny_model(
        tmp_path_factory.mktemp("models") / "tiny-llama",
        corpus,
        TinyModelConfig(arch="llama", max_position_embeddings=2048),
    )
    return TeacherSpec(
        "tiny-llama", "llama", {"backend": "hf", "model": str(model), "device": "cpu"}, n=1, max_tokens=8
    )


@pytest.fixture(scope="module")
def train_sample(synthetic_world: dict[str, Any]) -> pl.DataFrame:
    cfg = GenerateConfig(per_stratum=1, max_pairs=4, rare_share=0.0)
    return sample_pairs(synthetic_world["parts"]["train"], cfg)


def run(
    world: dict[str, Any],
    out: Path,
    pairs: pl.DataFrame,
    teachers: list[TeacherSpec],
    part: str = "train",
    purpose: str = "train",
    **cfg: Any,
) -> dict[str, Any]:
    config = GenerateConfig(teachers=tuple(teachers), **{"shard_size": 2, "executor": "local", **cfg})
    return generate_shards(
        out, pairs, world["index_dir"], world["drugs"], teachers, config, part=part, purpose=purpose
    )


def rows(out: Path, part: str = "train") -> pl.DataFrame:
    return read_trajectories(out, part).drop("latency_s").sort("teacher", "drug_a", "drug_b", "sample")


# ---------------------------------------------------------------- configuration files


def test_config_files_load_with_valid_backend_specs() -> None:
    config_classes = {"hf": HFConfig, "openai": HTTPConfig, "vllm": VLLMConfig}
    demo = load_generate_config(DEMO_TEACHERS, {"models": "/data/models"})
    assert {t.family for t in demo.teachers} == {"llama", "qwen2", "mistral", "knowledge"}
    assert demo.teachers[0].backend["model"] == "/data/models/tiny-llama" and demo.ray_num_cpus == 2
    prod = load_generate_config(CONFIGS / "teachers.production.yaml", {"models": "/ckpt"})
    assert {t.family for t in prod.teachers} == {"llama", "qwen2", "mistral", "api", "knowledge"}
    vllm = [t for t in prod.teachers if t.backend["backend"] == "vllm"]
    assert len(vllm) == 3 and all((t.n, t.temperature, t.max_tokens) == (4, 0.7, 512) for t in vllm)
    assert all(t.gpus(prod.num_gpus_per_teacher) == 1.0 for t in vllm)
    api = next(t for t in prod.teachers if t.family == "api")
    assert api.backend["api_key_env"] and api.gpus(prod.num_gpus_per_teacher) == 0.0
    for t in demo.teachers + prod.teachers:
        if not t.is_knowledge:
            options = {k: v for k, v in t.backend.items() if k != "backend"}
            parse_config(config_classes[t.backend["backend"]], options, t.name)
    assert load_teachers(DEMO_TEACHERS, {"models": "/data/models"}) == demo.teachers


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("teachers: [", "not valid yaml"),
        ("teachers: []", "'teachers' must be a non-empty list"),
        (
            "teachers:\n  - {name: t, family: llama, backend: {backend: hf, model: '{nowhere}/m'}}",
            r"teachers\[0\]\.backend\.model: unknown placeholder \{nowhere\}",
        ),
        (
            "teachers:\n  - {name: t, family: llama, backend: {backend: hf, model: m}, temprature: 1}",
            (
                r"teachers\[0\]\.temprature: unknown key; allowed: backend, family, max_tokens, n, name, "
                r"num_gpus, "
            ),
        ),
        (
            "teachers:\n  - {name: t, family: llamma, backend: {backend: hf, model: m}}",
            r"teachers\[0\]\.family: must be 'llama', 'qwen2', 'mistral', 'knowledge' or 'api', got 'llamma'",
        ),
        (
            "teachers:\n  - {name: t, family: llama, backend: {backend: tgi, model: m}}",
            r"teachers\[0\]\.backend: backend 'tgi' is not one of \['hf', 'openai', 'vllm', 'knowledge'\]",
        ),
        (
            "teachers:\n  - {name: t, family: llama, backend: {backend: hf, model: m}, top_p: 0}",
            r"teachers\[0\]\.top_p: must be > 0",
        ),
        ("teachers:\n  - {name: k, family: knowledge, backend: {backend: knowledge}, n: 2}", "n must be 1"),
        (
            "teachers:\n  - {name: k, family: llama, backend: {backend: knowledge}}",
            "goes with backend 'knowledge'",
        ),
        (
            "teachers:\n  - {name: k, family: knowledge, backend: {backend: knowledge, majority: x}}",
            r"teachers\[0\]\.backend: knowledge options: majority: unknown key; allowed: majority_label, ",
        ),
        (
            "teachers:\n  - {name: 'a b', family: llama, backend: {backend: hf, model: m}}",
            r"teachers\[0\]\.name: 'a b': must be letters",
        ),
        (
            (
                "generate: {shard_size: 0}\n"
                "teachers:\n  - {name: k, family: knowledge, backend: {backend: knowledge}}"
            ),
            r"shard_size: must be > 0, got 0",
        ),
        (
            "teachers:\n  - &k {name: k, family: knowledge, backend: {backend: knowledge}}\n  - *k",
            r"teachers: duplicate names \['k'\]",
        ),
    ],
)
def test_config_errors_name_the_file_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "teachers.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_generate_config(path, {"models": "m"})
    assert str(info.value).startswith(f"{path}: ")


# ---------------------------------------------------------------- sampling


def strata(train: pl.DataFrame) -> pl.DataFrame:
    return train.group_by("family", "subtype", "direction").len()


def test_sample_covers_every_stratum_deterministically(synthetic_world: dict[str, Any]) -> None:
    train = synthetic_world["parts"]["train"]
    cfg = GenerateConfig(per_stratum=2, max_pairs=10_000, include_rare=False)
    sample = sample_pairs(train, cfg)
    got = strata(sample).rename({"len": "got"}).join(strata(train), on=["family", "subtype", "direction"])
    assert got.height == strata(train).height
    assert (got["got"] == got["len"].clip(upper_bound=2)).all()
    shuffled = sample_pairs(train.sample(fraction=1.0, shuffle=True, seed=3), cfg)
    assert shuffled.equals(sample)
    assert not sample_pairs(train, dataclasses.replace(cfg, seed=1)).equals(sample)
    # presented in random order: about half swapped, gold mirrored with the swap
    assert 0 < sample["swapped"].sum() < sample.height
    flipped = sample.filter(pl.col("swapped") & (pl.col("direction") == "A to B"))
    assert (flipped["query_a"] == flipped["drug_b"]).all() and flipped["gold"].str.contains("/B to A/").all()


def test_sample_cap_and_guaranteed_rare_share(synthetic_world: dict[str, Any]) -> None:
    train = synthetic_world["parts"]["train"]
    counts = train_pair_counts(train)
    cfg = GenerateConfig(per_stratum=4, max_pairs=20, rare_max_count=3, rare_share=0.5)
    sample = sample_pairs(train, cfg, counts)
    n_rare_train = sum(
        min(counts[a], counts[b]) <= 3 for a, b in train.select("drug_a", "drug_b").iter_rows()
    )
    assert sample.height == 20
    assert sample["rare"].sum() >= min(10, n_rare_train) and n_rare_train > 0
    assert (
        sample["rarer_count"]
        == [min(counts[a], counts[b]) for a, b in sample.select("drug_a", "drug_b").iter_rows()]
    ).all()
    no_rare = sample_pairs(train, dataclasses.replace(cfg, include_rare=False, rare_max_count=0))
    assert no_rare.height == 20 and strata(no_rare).height == min(20, strata(train).height)


# ---------------------------------------------------------------- shards, resume, purposes


def test_generate_writes_schema_exact_shards_and_stats(
    synthetic_world: dict[str, Any], tiny_teacher: TeacherSpec, train_sample: pl.DataFrame, tmp_path: Path
) -> None:
    report = run(synthetic_world, tmp_path, train_sample, [KNOWLEDGE, tiny_teacher])
    shard = tmp_path / "shards" / "train" / "knowledge" / "00000.parquet"
    assert pq.read_schema(shard).equals(TRAJECTORIES)
    assert sorted(p.name for p in shard.parent.iterdir()) == ["00000.parquet", "00001.parquet"]
    know, tiny = report["teachers"]["knowledge"], report["teachers"]["tiny-llama"]
    assert (know["trajectories"], know["accuracy"], know["parse_error_rate"], know["failed_shards"]) == (
        4,
        1.0,
        0.0,
        [],
    )
    assert (
        tiny["trajectories"] == 4
        and tiny["prompt_tokens"] > 4 * 100
        and 0 < tiny["completion_tokens"] <= 4 * 8
    )
    assert tiny["trajectories_per_s"] > 0 and tiny["parse_error_rate"] == 1.0  # random weights write garbage
    df = read_trajectories(tmp_path)
    assert df.height == 8 and set(df["part"]) == {"train"} and set(df["split"]) == {"cold_drug"}
    knowledge = df.filter(pl.col("teacher") == "knowledge")
    assert knowledge["correct"].all() and knowledge["steps"].list.len().min() >= 1
    first = train_sample.row(0, named=True)
    row = knowledge.filter(
        (pl.col("drug_a") == first["query_a"]) & (pl.col("drug_b") == first["query_b"])
    ).row(0, named=True)
    assert row["gold"] == first["gold"] and row["answer"] == first["gold"]
    assert row["evidence_ids"][0] == "E1" and row["prompt"].startswith("Drug A: ")
    manifest = json.loads((tmp_path / "shards" / "train" / "manifest.json").read_text())
    assert manifest["teachers"]["tiny-llama"]["shard_files"] == ["00000.parquet", "00001.parquet"]
    alone = run(synthetic_world, tmp_path, train_sample, [KNOWLEDGE])  # a later call for one teacher ...
    assert alone["teachers"]["knowledge"]["skipped_shards"] == 2
    assert (
        alone["teachers"]["knowledge"]["trajectories_per_s"] == know["trajectories_per_s"]
    )  # from shard metadata
    assert read_trajectories(tmp_path).height == 8  # ... keeps the other teacher's shards listed


def crash_after(k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the k+1-th shard task die like a killed process (not an ordinary, retried exception)."""
    real: Callable[[ShardJob], ShardResult] = gen.run_shard
    calls = iter(range(10_000))

    def dying(job: ShardJob) -> ShardResult:
        if next(calls) >= k:
            raise KeyboardInterrupt("killed")
        return real(job)

    monkeypatch.setattr(gen, "run_shard", dying)


def test_resume_after_a_crash_equals_an_uninterrupted_run(
    synthetic_world: dict[str, Any],
    tiny_teacher: TeacherSpec,
    train_sample: pl.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    teachers = [KNOWLEDGE, tiny_teacher]
    run(synthetic_world, tmp_path / "whole", train_sample, teachers)
    crashed = tmp_path / "crashed"
    with monkeypatch.context() as patch:
        crash_after(3, patch)
        with pytest.raises(KeyboardInterrupt):
            run(synthetic_world, crashed, train_sample, teachers)
    folder = crashed / "shards" / "train" / "tiny-llama"
    assert len(list(crashed.glob("shards/train/*/*.parquet"))) == 3
    (folder / "00001.parquet.0123abcd.tmp").write_bytes(b"half a shard")  # a write cut short
    report = run(synthetic_world, crashed, train_sample, teachers)
    assert sum(t["skipped_shards"] for t in report["teachers"].values()) == 3
    assert sum(t["new_trajectories"] for t in report["teachers"].values()) == 2
    assert not list(folder.glob("*.tmp"))
    assert rows(crashed).equals(rows(tmp_path / "whole"))
    again = run(synthetic_world, crashed, train_sample, teachers)  # nothing left to do
    assert all(t["skipped_shards"] == 2 and t["new_trajectories"] == 0 for t in again["teachers"].values())
    changed = dataclasses.replace(KNOWLEDGE, backend={"backend": "knowledge", "min_confidence": 0.2})
    redo = run(synthetic_world, crashed, train_sample, [changed, tiny_teacher])  # a changed teacher is redone
    assert (
        redo["teachers"]["knowledge"]["skipped_shards"] == 0
        and redo["teachers"]["tiny-llama"]["skipped_shards"] == 2
    )


def test_failed_shards_are_retried_then_reported(
    synthetic_world: dict[str, Any],
    train_sample: pl.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = gen.run_shard
    attempts: dict[int, int] = {}

    def flaky(job: ShardJob) -> ShardResult:
        attempts[job.shard] = attempts.get(job.shard, 0) + 1
        if job.shard == 1 or (job.shard == 0 and attempts[0] == 1):
            raise RuntimeError(f"backend fell over on shard {job.shard}")
        return real(job)

    monkeypatch.setattr(gen, "run_shard", flaky)
    report = run(synthetic_world, tmp_path, train_sample, [KNOWLEDGE], max_retries=2)
    stats = report["teachers"]["knowledge"]
    assert attempts == {0: 2, 1: 3}
    assert stats["failed_shards"] == [{"shard": 1, "error": "RuntimeError: backend fell over on shard 1"}]
    assert stats["trajectories"] == 2 and read_trajectories(tmp_path).height == 2


def test_eval_parts_never_go_to_a_training_directory(synthetic_world: dict[str, Any], tmp_path: Path) -> None:
    cfg = GenerateConfig(per_stratum=1, max_pairs=4)
    valid = present_in_random_order(synthetic_world["parts"]["valid"].head(4), cfg.seed)
    run(
        synthetic_world, tmp_path / "train", sample_pairs(synthetic_world["parts"]["train"], cfg), [KNOWLEDGE]
    )
    with pytest.raises(
        InputError, match="'train' directory takes only the parts \\['train'\\]; refusing to write 'valid'"
    ):
        run(synthetic_world, tmp_path / "train", valid, [KNOWLEDGE], part="valid")
    with pytest.raises(InputError, match="kept for purpose 'train'"):
        run(synthetic_world, tmp_path / "train", valid, [KNOWLEDGE], part="valid", purpose="eval")
    run(synthetic_world, tmp_path / "eval", valid, [KNOWLEDGE], part="valid", purpose="eval")
    with pytest.raises(InputError, match="'eval' directory takes only the parts \\['valid', 'test'\\]"):
        run(synthetic_world, tmp_path / "eval", valid, [KNOWLEDGE], part="train", purpose="eval")
    df = read_trajectories(tmp_path / "eval", "valid")
    assert set(df["part"]) == {"valid"} and (tmp_path / "eval" / "shards" / "valid" / "knowledge").is_dir()
    # on evaluation parts the knowledge teacher never sees the gold label: it infers it
    index = RetrievalIndex.load(synthetic_world["index_dir"])
    names = dict(synthetic_world["drugs"].select("drugbank_id", "name").iter_rows())
    for r in df.iter_rows(named=True):
        a, b = DrugRef(r["drug_a"], names[r["drug_a"]]), DrugRef(r["drug_b"], names[r["drug_b"]])
        assert r["text"] == KnowledgeTeacher().write(a, b, index.retrieve(a.drugbank_id, b.drugbank_id))


# ---------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_run_matches_the_local_run(
    ray_cluster: None,
    synthetic_world: dict[str, Any],
    tiny_teacher: TeacherSpec,
    train_sample: pl.DataFrame,
    tmp_path: Path,
) -> None:
    teachers = [KNOWLEDGE, tiny_teacher]
    report = run(synthetic_world, tmp_path / "ray", train_sample, teachers, executor="ray")
    assert report["executor"] == "ray"
    assert all(t["failed_shards"] == [] and t["trajectories"] == 4 for t in report["teachers"].values())
    run(synthetic_world, tmp_path / "local", train_sample, teachers)
    assert rows(tmp_path / "ray").equals(rows(tmp_path / "local"))
