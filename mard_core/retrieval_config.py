"""Settings of the retrieval index (``mard_core.retrieval``); torch-free, so loading a config stays fast."""

from __future__ import annotations

from pydantic.dataclasses import dataclass

from mard_core.validation import CONFIG, NonNegativeInt


@dataclass(frozen=True, config=CONFIG)
class RetrievalConfig:
    """How much evidence to return per query."""

    k_similar: NonNegativeInt = 5
    max_items: NonNegativeInt = 24
    max_interactions_per_neighbor: NonNegativeInt = 3
    max_text_sentences: NonNegativeInt = 3  # per drug and text field
