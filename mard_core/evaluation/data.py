"""The evaluation's inputs on disk: the parts of a split strategy and the ingest tables."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mard_core.errors import InputError


def read_table(path: Path) -> pl.DataFrame:
    """The Parquet table at ``path``; :class:`InputError` when there is none."""
    if not path.is_file():
        raise InputError(f"{path}: not found")
    return pl.read_parquet(path)


def read_part(split_dir: str | Path, strategy: str, part: str) -> pl.DataFrame:
    """``<split_dir>/<strategy>/<part>.parquet``."""
    df = read_table(Path(split_dir) / strategy / f"{part}.parquet")
    missing = [c for c in ("drug_a", "drug_b", "label") if c not in df.columns]
    if missing:
        raise InputError(f"{Path(split_dir) / strategy / f'{part}.parquet'}: missing columns {missing}")
    return df
