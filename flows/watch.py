"""The release watcher flow: a new verified DrugBank release emits ``drugbank.release.detected``.

The retrain deployment in ``prefect.yaml`` is triggered by that event and runs the pipeline on the file the
event's payload names (``version``, ``sha256``, ``path``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.blocks.system import Secret
from prefect.events import emit_event

from mard_core import watch as core
from mard_core.runtime import data_root

RELEASE_EVENT = "drugbank.release.detected"


def secret_credentials(block: str) -> core.Credentials:
    """``user:password`` credentials from a Prefect Secret block."""
    source = f"Prefect Secret block {block!r}"
    try:
        value = Secret.load(block).get()
    except ValueError as exc:
        raise core.WatchError(f"{source}: cannot be loaded: {exc}") from None
    if not isinstance(value, str):
        raise core.WatchError(f"{source}: expected a string 'user:password'")
    return core.Credentials.parse(value, source)


def emit_release(release: core.DetectedRelease) -> None:
    """Emit the event that starts a retrain on ``release``."""
    emit_event(
        event=RELEASE_EVENT,
        resource={
            "prefect.resource.id": f"drugbank.release.{release.version}",
            "prefect.resource.name": f"DrugBank {release.version}",
        },
        payload=release.payload(),
    )


@flow(name="mard-watch")
def watch_flow(root: str | None = None, watch: core.WatchConfig | None = None) -> dict[str, Any]:
    """Check the drop directory and/or download service once; emit an event per new verified release."""
    cfg = watch or core.WatchConfig()
    credentials = None
    if cfg.url:
        credentials = (
            secret_credentials(cfg.secret_block) if cfg.secret_block else core.credentials_from_env(cfg)
        )
    report = core.watch(data_root(root), cfg, emit_release, credentials, get_run_logger())
    create_table_artifact(
        key="release-watch",
        table=report.rows() or [{"status": "nothing new", "version": "", "sha256": "", "path": ""}],
        description=f"download: {report.download}; already seen: {report.already_seen}",
    )
    return report.to_dict()
