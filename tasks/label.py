"""Label stage: every interaction sentence -> a mechanism label; one row per unordered pair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

from mard_core import labeling
from mard_core.errors import QualityGateError
from mard_core.stage import StageRun, read_manifest, sha256_file
from mard_core.stages import StageCall
from mard_core.taxonomy import DEFAULT_TAXONOMY_PATH
from tasks._stage import StageCache, execute


def label_spec(call: StageCall) -> StageRun:
    inputs = {**call.keys(), "taxonomy": sha256_file(Path(DEFAULT_TAXONOMY_PATH))[:16]}
    return StageRun("label", labeling.LABELER_VERSION, call.cfg.label, inputs, Path(call.root))


def stats_markdown(stats: dict[str, Any]) -> str:
    """Label statistics for the Prefect UI: coverage, families, direction balance, top unmatched phrases."""
    lines = [
        (
            f"**{stats['n_pairs']:,} pairs** labelled from {stats['n_elements']:,} interaction elements; "
            f"coverage {stats['coverage']:.4%}, {stats['n_quarantined']:,} quarantined, "
            f"{stats['n_disagreements']:,} disagreeing listings."
        ),
        "",
        "| family | pairs |",
        "|---|---:|",
        *(f"| {k} | {v:,} |" for k, v in sorted(stats["family_counts"].items(), key=lambda kv: -kv[1])),
        "",
        "| direction | pairs |",
        "|---|---:|",
        *(f"| {k} | {v:,} |" for k, v in stats["direction_counts"].items()),
    ]
    unmatched = sorted(stats["unmatched_templates"].items(), key=lambda kv: -kv[1])[:10]
    if unmatched:
        lines += [
            "",
            "| unmatched phrase | elements |",
            "|---|---:|",
            *(f"| {k} | {v} |" for k, v in unmatched),
        ]
    return "\n".join(lines)


@task(name="label", cache_policy=StageCache(spec=label_spec), persist_result=True)
def label(call: StageCall, force: bool = False) -> str:
    """Label the release's interactions; publish label statistics; fail below the coverage floor."""
    cfg = call.cfg.label
    out = Path(
        execute(
            label_spec(call), lambda tmp: labeling.write_labels(Path(call.dirs["ingest"]), cfg, tmp), force
        )
    )
    stats = json.loads((out / "stats.json").read_text())
    create_markdown_artifact(
        key="label-stats", markdown=stats_markdown(stats), description="DDI label statistics"
    )
    coverage = (read_manifest(out) or {})["stats"]["coverage"]
    if coverage < cfg.min_coverage:
        raise QualityGateError(
            f"label coverage {coverage:.4%} is below {cfg.min_coverage:.2%}; "
            f"see {out / 'quarantine.parquet'} "
            f"and the unmatched phrases in {out / 'stats.json'}"
        )
    return str(out)
