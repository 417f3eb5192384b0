"""Settings of the ingest stage (``mard_core.ingest``); torch-free, so loading a config stays fast."""
from __future__ import annotations

from typing import Literal

from pydantic.dataclasses import dataclass

from mard_core.validation import CONFIG, PositiveInt


@dataclass(frozen=True, config=CONFIG)
class IngestConfig:
    """Knobs of the ingest stage."""

    batch_rows: PositiveInt = 10_000  # rows buffered per table before a Parquet record batch is written
    compression: Literal["none", "snappy", "gzip", "brotli", "lz4", "zstd"] = "zstd"
