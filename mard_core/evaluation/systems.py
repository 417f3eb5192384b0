"""What every system shares: the ordered :class:`Query` it answers, its :class:`Prediction`, the
:class:`System` protocol with the :class:`BaseSystem` defaults, and the :class:`SystemContext` a system is
built from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import polars as pl

from mard_core.evaluation.data import read_part, read_table
from mard_core.prompts import DrugRef
from mard_core.retrieval import Evidence, RetrievalIndex
from mard_core.taxonomy import Taxonomy, load_taxonomy

KINDS = ("baseline", "teacher", "student", "endpoint")


@dataclass(frozen=True)
class Query:
    """An ordered query as presented: A = ``drug_a``, B = ``drug_b``; names (primary first) and evidence."""

    drug_a: str
    drug_b: str
    names_a: tuple[str, ...]
    names_b: tuple[str, ...]
    evidence: tuple[Evidence, ...] = ()

    @property
    def ref_a(self) -> DrugRef:
        return DrugRef(self.drug_a, self.names_a[0])

    @property
    def ref_b(self) -> DrugRef:
        return DrugRef(self.drug_b, self.names_b[0])


@dataclass(frozen=True)
class Prediction:
    """A system's answer: label in the query orientation (None: no answer), confidence in [0, 1] (None: not
    given), the completion text with its reasoning chain (None for systems without chains) and token
    counts."""

    label: str | None
    confidence: float | None = None
    text: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class System(Protocol):
    """Anything that answers queries. ``kind`` is one of :data:`KINDS`; ``possibly_contaminated`` flags hosted
    models that may have seen DrugBank in pre-training."""

    name: str
    kind: str
    possibly_contaminated: bool

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        """One prediction per query, in query order."""
        ...

    def close(self) -> None:
        """Release resources (idempotent)."""
        ...


class BaseSystem:
    """Defaults for systems without resources: a clean baseline."""

    name: str = "system"
    kind: str = "baseline"
    possibly_contaminated: bool = False

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class SystemContext:
    """What a system factory may use: the split's TRAIN part only (baselines fit on it), drug tables, the
    taxonomy, placeholder values (e.g. ``{"models": "/runs/models"}``) for paths in backend specs and the
    strategy's retrieval index (built from the train part; baselines that learn from evidence need it)."""

    strategy: str
    train: pl.DataFrame
    drugs: pl.DataFrame
    drug_proteins: pl.DataFrame
    taxonomy: Taxonomy
    placeholders: Mapping[str, str] = field(default_factory=dict)
    index: RetrievalIndex | None = None

    @classmethod
    def load(
        cls,
        ingest_dir: str | Path,
        split_dir: str | Path,
        strategy: str,
        placeholders: Mapping[str, str] | None = None,
        index_dir: str | Path | None = None,
    ) -> SystemContext:
        """From the ingest tables, ``<split_dir>/<strategy>/train.parquet`` and, given ``index_dir``, the
        index ``<index_dir>/<strategy>``."""
        return cls(
            strategy,
            read_part(split_dir, strategy, "train"),
            read_table(Path(ingest_dir) / "drugs.parquet"),
            read_table(Path(ingest_dir) / "drug_proteins.parquet"),
            load_taxonomy(),
            dict(placeholders or {}),
            None if index_dir is None else RetrievalIndex.load(Path(index_dir) / strategy),
        )
