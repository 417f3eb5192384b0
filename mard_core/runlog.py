"""A per-run record of every stage's state, output and duration, read by `mard status`.

Each pipeline run (identified by the orchestrator's root run id) has one JSON file under ``<root>/status``;
stages update their entry as they start, finish, fail or are found cached.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mard_core.stage import write_json_atomic


def _path(root: Path, run_id: str) -> Path:
    return Path(root) / "status" / f"{run_id}.json"


def record(root: Path, run_id: str, stage: str, **fields: Any) -> None:
    """Merge ``fields`` (state, out, duration_s, error, ...) into ``stage``'s entry of run ``run_id``."""
    path = _path(root, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.is_file() else {"run_id": run_id, "started": time.time(), "stages": {}}
    data["updated"] = time.time()
    entry = data["stages"].setdefault(stage, {"seq": len(data["stages"])})
    entry.update(fields, updated=time.time())
    write_json_atomic(path, data)


def latest(root: Path) -> dict[str, Any] | None:
    """The most recently started run's record, or None when nothing has run under ``root``."""
    runs = [json.loads(p.read_text()) for p in (Path(root) / "status").glob("*.json")]
    return max(runs, key=lambda r: r["started"]) if runs else None
