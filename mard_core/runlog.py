"""A per-run record of every stage's state, output and duration, read by `mard status`.

Each pipeline run (identified by the orchestrator's root run id) has one JSON file under ``<root>/status``;
stages update their entry as they start, finish, fail or are found cached. A stage recorded as running whose
process is gone (killed) reads as ``interrupted``.
"""

from __future__ import annotations

import json
import os
import socket
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
    data: dict[str, Any] = (
        json.loads(path.read_text())
        if path.is_file()
        else {"run_id": run_id, "started": time.time(), "stages": {}}
    )
    data["updated"] = time.time()
    entry = data["stages"].setdefault(stage, {"seq": len(data["stages"])})
    entry.update(fields, updated=time.time(), pid=os.getpid(), host=socket.gethostname())
    write_json_atomic(path, data)


def _alive(entry: dict[str, Any]) -> bool:
    if entry.get("host") != socket.gethostname() or "pid" not in entry:
        return True  # another machine's process: cannot tell, trust the record
    try:
        os.kill(int(entry["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def with_liveness(run: dict[str, Any]) -> dict[str, Any]:
    """``run`` with every stage still marked running by a process that no longer exists shown as
    interrupted."""
    stages = {
        name: {**e, "state": "interrupted"} if e.get("state") == "running" and not _alive(e) else e
        for name, e in run["stages"].items()
    }
    return {**run, "stages": stages}


def runs(root: Path) -> list[dict[str, Any]]:
    """Every run recorded under ``root``, as written."""
    return [json.loads(p.read_text()) for p in sorted((Path(root) / "status").glob("*.json"))]


def latest(root: Path) -> dict[str, Any] | None:
    """The most recently started run's record (killed stages shown interrupted), or None when nothing ran."""
    recorded = runs(root)
    return with_liveness(max(recorded, key=lambda r: r["started"])) if recorded else None
