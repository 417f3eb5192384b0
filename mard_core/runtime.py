"""Where local services keep their state: Prefect and MLflow default to SQLite files under the data root.

Production sets PREFECT_API_URL (a Prefect server backed by PostgreSQL) and MLFLOW_TRACKING_URI; those
win over these defaults, which only fill in what the environment leaves unset.
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = Path("runs")


def data_root(root: str | Path | None = None) -> Path:
    """The data root: explicit argument, else $MARD_ROOT, else ./runs."""
    return Path(root or os.environ.get("MARD_ROOT") or DEFAULT_ROOT).resolve()


def configure_services(root: Path) -> dict[str, str]:
    """Point Prefect and MLflow at project-local SQLite stores under ``root`` unless already configured."""
    state = root / ".services"
    state.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_LOCAL_STORAGE_PATH": str(state / "prefect" / "storage"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow.db'}",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    if not os.environ.get("PREFECT_API_URL"):
        defaults["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{state / 'prefect' / 'prefect.db'}"
    applied = {k: v for k, v in defaults.items() if not os.environ.get(k)}
    os.environ.update(applied)
    return applied
