"""Settings of the release watcher (``mard_core.watch``, the ``mard-watch`` flow's parameter)."""

from __future__ import annotations

from pathlib import Path

from pydantic.dataclasses import dataclass

from mard_core.validation import CONFIG, NonEmptyStr, PositiveFloat


@dataclass(frozen=True, config=CONFIG)
class WatchConfig:
    """Where new releases come from. Relative directories are resolved against the data root."""

    drop_dir: NonEmptyStr | None = None
    url: NonEmptyStr | None = (
        None  # DrugBank download service, e.g. https://go.drugbank.com/releases/latest/downloads/all-full-database
    )
    username_env: NonEmptyStr = "DRUGBANK_USERNAME"
    password_env: NonEmptyStr = "DRUGBANK_PASSWORD"
    secret_block: NonEmptyStr | None = (
        None  # a Prefect Secret block holding "user:password" (read by the flow)
    )
    download_dir: NonEmptyStr = "releases"
    timeout_s: PositiveFloat = 60.0

    def directory(self, root: Path, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else root / path
