"""The pipeline flow under Prefect's test harness: real tasks, cache hits across runs, gates that stop the
flow, stop points taken from the stage table."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from prefect.settings import get_current_settings
from prefect.testing.utilities import prefect_test_harness

from flows.pipeline import pipeline
from mard_core import runlog
from mard_core.errors import QualityGateError
from mard_core.stage import read_manifest


@pytest.fixture(scope="module", autouse=True)
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def ingest_flow(**kwargs: str) -> dict[str, str]:
    return pipeline(until="gate-ingest", **kwargs)


def data_flow(**kwargs: str) -> dict[str, str]:
    return pipeline(until=kwargs.pop("until", "index"), **kwargs)


def config(tmp: Path, release: Path, **sections: dict) -> str:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump({"release": {"source": str(release)}, **sections}))
    return str(path)


def test_ingest_flow_then_rerun_does_no_work(tmp_path: Path, small_release) -> None:
    release, truth = small_release
    root = tmp_path / "runs"
    cfg = config(tmp_path, release)
    first = ingest_flow(root=str(root), config=cfg)
    manifest = read_manifest(Path(first["ingest"]))
    assert manifest["counts"]["drugs"] == truth.n_drugs
    assert manifest["counts"]["interactions"] == truth.n_interaction_elements
    assert read_manifest(Path(first["gate-ingest"]))["success"] is True
    assert (Path(first["gate-ingest"]) / "data_docs" / "index.html").is_file()
    created = manifest["created"]
    second = ingest_flow(root=str(root), config=cfg)
    assert second == first and read_manifest(Path(first["ingest"]))["created"] == created
    states = {s: e["state"] for s, e in runlog.latest(root)["stages"].items()}
    assert states == {"ingest": "cached", "gate-ingest": "cached"}


def test_wiped_orchestrator_cache_still_reuses_outputs(tmp_path: Path, small_release) -> None:
    release, _ = small_release
    root = tmp_path / "runs"
    cfg = config(tmp_path, release)
    first = ingest_flow(root=str(root), config=cfg)
    created = read_manifest(Path(first["ingest"]))["created"]
    shutil.rmtree(
        get_current_settings().results.local_storage_path, ignore_errors=True
    )  # Prefect's cache store
    assert ingest_flow(root=str(root), config=cfg) == first
    assert read_manifest(Path(first["ingest"]))["created"] == created


def test_failed_gate_stops_downstream_with_a_report(tmp_path: Path, small_release) -> None:
    release, _ = small_release
    root = tmp_path / "runs"
    # An impossible row-count window: the previous release had 10x the drugs of this one.
    cfg = config(tmp_path, release)
    first = ingest_flow(root=str(root), config=cfg)
    fake_previous = root / "ingest" / "0000000000000000"
    shutil.copytree(first["ingest"], fake_previous)
    manifest = read_manifest(fake_previous)
    manifest.update(exported_on="2000-01-01", source={**manifest["source"], "sha256": "older"})
    (fake_previous / "manifest.json").write_text(__import__("json").dumps(manifest))
    drugs = pl.read_parquet(fake_previous / "drugs.parquet")
    pl.concat([drugs] * 10).write_parquet(fake_previous / "drugs.parquet")
    with pytest.raises(QualityGateError, match="data-quality gate failed after stage ingest") as exc:
        data_flow(root=str(root), config=cfg)
    report = Path(str(exc.value).rsplit("read ", 1)[1])
    assert report.is_file() and "drugs" in report.read_text()
    assert not (root / "label").exists()  # nothing downstream ran


def test_data_flow_builds_every_stage(tmp_path: Path, small_release) -> None:
    release, truth = small_release
    root = tmp_path / "runs"
    out = data_flow(root=str(root), config=config(tmp_path, release))
    assert read_manifest(Path(out["label"]))["stats"]["n_pairs"] == truth.n_pairs
    for strategy in ("random", "cold_drug", "cold_pair"):
        assert (Path(out["splits"]) / strategy / "test.parquet").is_file()
        assert (Path(out["index"]) / strategy).is_dir()
    assert [s for s, e in runlog.latest(root)["stages"].items() if e["state"] != "completed"] == []


def test_corrupted_output_is_detected_and_rebuilt(tmp_path: Path, small_release) -> None:
    release, _ = small_release
    root = tmp_path / "runs"
    cfg = config(tmp_path, release)
    out = data_flow(root=str(root), config=cfg, until="label")
    pairs = Path(out["label"]) / "ddi_pairs.parquet"
    good = pairs.read_bytes()
    pl.read_parquet(pairs).head(3).write_parquet(pairs)  # damaged in place, manifest untouched
    again = data_flow(root=str(root), config=cfg, until="label")
    assert again["label"] == out["label"] and pairs.read_bytes() == good
    states = {s: e["state"] for s, e in runlog.latest(root)["stages"].items()}
    assert states["label"] == "completed" and states["ingest"] == "cached"


def test_a_second_release_gets_a_temporal_split(tmp_path: Path) -> None:
    from mard_core.synth import evolve_release, write_release

    root = tmp_path / "runs"
    old, new = tmp_path / "old.xml.zip", tmp_path / "new.xml.zip"
    write_release(old, 60, seed=3, exported_on="2026-01-05")
    evolve_release(old, new, seed=1, exported_on="2026-04-02")  # the same world's next release
    loose = {
        "quality": {"max_row_change": 1.0}
    }  # small releases: a few pathways more is a large relative change
    first = data_flow(root=str(root), config=config(tmp_path, old, **loose))
    out = data_flow(root=str(root), config=config(tmp_path, new, **loose))
    assert "temporal" in read_manifest(Path(out["splits"]))["strategies"]
    old_pairs = pl.read_parquet(Path(first["label"]) / "ddi_pairs.parquet").select("drug_a", "drug_b")
    test = pl.read_parquet(Path(out["splits"]) / "temporal" / "test.parquet").select("drug_a", "drug_b")
    assert test.height > 0 and test.join(old_pairs, on=["drug_a", "drug_b"], how="semi").height == 0


@pytest.mark.parametrize("gate", ["gate-label", "gate-splits"])
def test_only_a_gate_stops_at_that_gate(tmp_path: Path, small_release, gate: str) -> None:
    from mard_core.stages import make_plan

    release, _ = small_release
    root = tmp_path / "runs"
    plan = make_plan(only=gate)
    out = pipeline(
        root=str(root), config=config(tmp_path, release), force=sorted(plan.force), until=plan.until
    )
    assert list(out)[-1] == gate and read_manifest(Path(out[gate]))["success"] is True
    after = {"gate-label": ("splits", "gate-splits", "index"), "gate-splits": ("index",)}[gate]
    assert not any((root / stage).exists() for stage in after)


def test_stage_runs_appear_in_pipeline_order(tmp_path: Path, small_release) -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    from mard_core.stages import Plan

    release, _ = small_release
    state = pipeline(
        root=str(tmp_path / "runs"), config=config(tmp_path, release), until="index", return_state=True
    )
    flow_run_id = state.state_details.flow_run_id

    async def names() -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            )
        return [r.name for r in runs]

    expected = [
        s.name for s in Plan(until="index").stages() if s.name != "demo-release"
    ]  # external release file
    assert [n for n in asyncio.run(names()) if n != "demo-release"] == expected
