"""Teachers stage: step-by-step trajectories from the teacher ensemble, sharded on Ray and resumable."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_table_artifact

from mard_core import generate
from mard_core.errors import MardError
from mard_core.generate_config import TeachersConfig
from mard_core.prompts import TEMPLATE_VERSION
from mard_core.stage import StageRun, read_manifest
from mard_core.stages import StageCall
from tasks._stage import StageCache, execute
from tasks._tracking import log_stage


def teachers_spec(call: StageCall) -> StageRun:
    cfg = call.cfg.teachers
    teachers_file = hashlib.sha256(cfg.path.read_bytes()).hexdigest()[:16]
    inputs = {**call.keys(), "teachers_file": teachers_file, "prompt_template": TEMPLATE_VERSION}
    return StageRun("teachers", generate.GENERATE_VERSION, cfg, inputs, Path(call.root))


def _build(
    ingest_dir: Path, splits_dir: Path, index_dir: Path, models_dir: Path, cfg: TeachersConfig, work: Path
) -> dict[str, Any]:
    gen = generate.load_generate_config(cfg.path, {"models": str(models_dir)})
    shutil.copyfile(cfg.path, work / generate.TEACHERS_FILE)  # what ran, for the PRM stage's rollouts
    drugs = pl.read_parquet(ingest_dir / "drugs.parquet")
    train = pl.read_parquet(splits_dir / cfg.split / "train.parquet")
    counts = generate.train_pair_counts(train)
    samples = {
        "train": generate.sample_pairs(train, gen, counts),
        "valid": generate.sample_pairs(
            pl.read_parquet(splits_dir / cfg.split / "valid.parquet"),
            dataclasses.replace(gen, max_pairs=cfg.valid_pairs),
            counts,
        ),
    }
    reports = {}
    for part, purpose in (("train", "train"), ("valid", "eval")):
        samples[part].write_parquet(work / f"{part}_sample.parquet")  # the seeded sample, recorded
        reports[part] = generate.generate_shards(
            work / purpose,
            samples[part],
            index_dir / cfg.split,
            drugs,
            gen.teachers,
            gen,
            part=part,
            split=cfg.split,
            purpose=purpose,
        )
    failed = {
        f"{part}/{t}": s["failed_shards"]
        for part, r in reports.items()
        for t, s in r["teachers"].items()
        if s["failed_shards"]
    }
    if failed:
        raise MardError(
            f"teacher shards failed after retries (finished shards are kept; re-run to resume): {failed}"
        )
    stats = {
        part: {
            t: {
                k: s[k]
                for k in (
                    "trajectories",
                    "trajectories_per_s",
                    "prompt_tokens",
                    "completion_tokens",
                    "accuracy",
                    "parse_error_rate",
                )
            }
            for t, s in r["teachers"].items()
        }
        for part, r in reports.items()
    }
    return {
        "split": cfg.split,
        "teachers": [t.name for t in gen.teachers],
        "samples": {p: s.height for p, s in samples.items()},
        "stats": stats,
    }


@task(name="teachers", cache_policy=StageCache(spec=teachers_spec), persist_result=True)
def run_teachers(call: StageCall, force: bool = False) -> str:
    """Write ``teachers/<key>/{train,eval}/shards/...``; finished shards survive a crash and are reused."""
    run = teachers_spec(call)
    dirs = {k: Path(v) for k, v in call.dirs.items()}

    def build(work: Path) -> dict[str, Any]:
        fields = _build(
            dirs["ingest"], dirs["splits"], dirs["index"], dirs["models"], call.cfg.teachers, work
        )
        log_stage(run, metrics=fields["stats"])
        return fields

    out = Path(execute(run, build, force, resume=True))
    stats = (read_manifest(out) or {})["stats"]
    create_table_artifact(
        key="teacher-throughput",
        table=[{"part": part, "teacher": t, **s} for part, by in stats.items() for t, s in by.items()],
        description="Trajectories, throughput, tokens and accuracy per teacher",
    )
    return str(out)
