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
    # Largest uncompressed zip member read (DrugBank's is ~2 GB): refuses decompression bombs. A plain .xml is
    # not capped: its size on disk is what is parsed, and memory stays bounded whatever it holds.
    max_uncompressed_bytes: PositiveInt = 16 << 30
    max_record_bytes: PositiveInt = (
        64 << 20
    )  # largest <drug> record; held whole, up to ~35x its size in memory
