"""Split stage: three (four with a previous release) leakage-free split strategies of the labelled pairs."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from prefect import task
from prefect.artifacts import create_table_artifact

from mard_core import splits
from mard_core.ingest import previous_release
from mard_core.stage import StageRun, read_manifest
from mard_core.stages import StageCall
from tasks._stage import StageCache, execute
from tasks.label import label, label_spec

SPLITS_VERSION = "3"  # 2: temporal leaves out pairs of drugs no longer in the release; 3: one partition


def _previous_label(call: StageCall) -> StageCall | None:
    """The label stage of the previous release, when one was ingested (its pairs make the temporal split)."""
    previous = previous_release(Path(call.root), Path(call.dirs["ingest"]))
    return StageCall("label", {"ingest": str(previous)}, call.cfg, call.root) if previous else None


def release_drugs(ingest_dir: Path) -> pl.Series:
    """The release's primary drug ids."""
    return pl.read_parquet(ingest_dir / "drugs.parquet", columns=["drugbank_id"])["drugbank_id"]


def splits_spec(call: StageCall) -> StageRun:
    previous = _previous_label(call)
    inputs = {**call.keys("label"), "previous_label": label_spec(previous).key if previous else ""}
    return StageRun("splits", SPLITS_VERSION, call.cfg.splits, inputs, Path(call.root))


@task(name="splits", cache_policy=StageCache(spec=splits_spec), persist_result=True)
def make_splits(call: StageCall, force: bool = False) -> str:
    """Write ``splits/<key>/<strategy>/{train,valid,test}.parquet`` and publish the split statistics."""
    previous_call = _previous_label(call)
    previous = Path(label.fn(previous_call)) if previous_call else None  # labelled now if it was not
    out = Path(
        execute(
            splits_spec(call),
            lambda tmp: splits.write_splits(
                Path(call.dirs["label"]),
                previous,
                call.cfg.splits,
                tmp,
                release_drugs(Path(call.dirs["ingest"])),
            ),
            force,
        )
    )
    rows = []
    for strategy in (read_manifest(out) or {}).get("strategies", []):
        stats = json.loads((out / strategy / "stats.json").read_text())
        rows.append(
            {
                "strategy": strategy,
                **{f"{p}_pairs": stats["sizes"][p] for p in splits.PARTS},
                **{f"{p}_drugs": stats["drugs"][p] for p in splits.PARTS},
            }
        )
    create_table_artifact(key="split-stats", table=rows, description="Achieved split sizes and drug counts")
    return str(out)
