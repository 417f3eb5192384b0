"""Shared test set-up: project-local Prefect/MLflow state, and small releases built once per session."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

_STATE = Path(tempfile.mkdtemp(prefix="mard-test-services-"))
# MARD_ROOT is set before mard_core is imported, so no project code can resolve the default data root:
# hence the imports below it.
os.environ.setdefault("MARD_ROOT", str(_STATE / "runs"))
# In-process flows start Prefect's temporary server; a loaded machine can need more than its 20 s default.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
from mard_core.ingest import ingest  # noqa: E402
from mard_core.labeling import label_pairs  # noqa: E402
from mard_core.retrieval import RetrievalIndex, split_hidden_drugs  # noqa: E402
from mard_core.runtime import configure_services  # noqa: E402
from mard_core.splits import make_split, write_split  # noqa: E402
from mard_core.splits_config import SplitConfig  # noqa: E402
from mard_core.verifier import Facts  # noqa: E402

configure_services(_STATE)


@pytest.fixture(scope="session", autouse=True)
def _stop_temporary_prefect_server() -> Iterator[None]:
    """Stop the temporary Prefect server that in-process flows start, while pytest's streams are still
    open."""
    yield
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    APILogWorker.drain_all(timeout=5)  # queued flow logs reach the server before it stops
    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()


@pytest.fixture(scope="session")
def fixture_xml() -> Path:
    """The hand-written DrugBank records of real drugs."""
    from mard_core.synth import DEFAULT_FIXTURE

    return DEFAULT_FIXTURE


@pytest.fixture(scope="session")
def small_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A small synthetic release (zip) merged with the fixture, and the generator's truth."""
    from mard_core.synth import write_release

    out = tmp_path_factory.mktemp("release") / "release.xml.zip"
    truth = write_release(out, 60, seed=7)
    return out, truth


@pytest.fixture(scope="session")
def synthetic_world(
    small_release: tuple[Path, object], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The conftest release ingested, labelled, split (cold_drug) and indexed."""
    release, _ = small_release
    assert zipfile.is_zipfile(release)
    root = tmp_path_factory.mktemp("world")
    (root / "ingest").mkdir()
    ingest(release, root / "ingest")
    tables = {
        n: pl.read_parquet(root / "ingest" / f"{n}.parquet")
        for n in ("drugs", "drug_proteins", "interactions")
    }
    pairs = label_pairs(tables["drugs"], tables["interactions"]).ddi_pairs
    cold_only = SplitConfig(valid_frac=0.0, test_frac=0.0, cold_valid_frac=0.1, cold_test_frac=0.1, seed=0)
    parts = make_split(pairs, "cold_drug", cold_only)  # a small release: no random part takes train pairs
    hidden = split_hidden_drugs("cold_drug", tables["drugs"]["drugbank_id"].to_list(), parts["train"])
    RetrievalIndex.build(tables["drugs"], tables["drug_proteins"], pairs, parts["train"], hidden).save(
        root / "index"
    )
    return {"root": root, "parts": parts, "index_dir": root / "index", **tables}


@pytest.fixture(scope="session")
def student_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init causal LM with the direction tokens, its tokenizer trained on synthetic
    trajectories."""
    from mard_core.tiny import build_tiny_model
    from mard_core.tiny_config import TinyModelConfig
    from mard_core.training.data import DIRECTION_TOKEN_LIST, build_sft_examples, synthetic_trajectories

    examples = build_sft_examples(synthetic_trajectories(24))
    return build_tiny_model(
        tmp_path_factory.mktemp("tiny") / "base",
        [e.prompt + e.completion for e in examples],
        TinyModelConfig(),
        extra_special_tokens=DIRECTION_TOKEN_LIST,
    )


EVAL_STRATEGIES = ("random", "cold_drug")
SPLIT_OF_48_PAIRS = {  # the fixture's 48 pairs are too few for one partition: each strategy holds out alone
    "random": SplitConfig(valid_frac=0.2, test_frac=0.2, cold_valid_frac=0.0, cold_test_frac=0.0, seed=1),
    "cold_drug": SplitConfig(valid_frac=0.0, test_frac=0.0, cold_valid_frac=0.2, cold_test_frac=0.2, seed=1),
}


@pytest.fixture(scope="session")
def real_world(fixture_xml: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The real-drug fixture ingested, labelled, split (random, cold_drug) and indexed per strategy."""
    root = tmp_path_factory.mktemp("eval_world")
    (root / "ingest").mkdir()
    ingest(fixture_xml, root / "ingest")
    drugs = pl.read_parquet(root / "ingest" / "drugs.parquet")
    proteins = pl.read_parquet(root / "ingest" / "drug_proteins.parquet")
    pairs = label_pairs(drugs, pl.read_parquet(root / "ingest" / "interactions.parquet")).ddi_pairs
    for strategy in EVAL_STRATEGIES:
        parts = make_split(pairs, strategy, SPLIT_OF_48_PAIRS[strategy])
        write_split(parts, root / "splits" / strategy)
        hidden = split_hidden_drugs(strategy, drugs["drugbank_id"].to_list(), parts["train"])
        RetrievalIndex.build(drugs, proteins, pairs, parts["train"], hidden).save(root / "index" / strategy)
    return {
        "root": root,
        "drugs": drugs,
        "drug_proteins": proteins,
        "pairs": pairs,
        "facts": Facts.from_tables(drugs, proteins),
    }
