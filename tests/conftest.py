"""Shared test set-up: project-local Prefect/MLflow state, and small releases built once per session."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_STATE = Path(tempfile.mkdtemp(prefix="mard-test-services-"))
os.environ.setdefault("MARD_ROOT", str(_STATE / "runs"))
from mard_core.runtime import configure_services

configure_services(_STATE)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def fixture_xml() -> Path:
    """The hand-written DrugBank records of real drugs."""
    return DATA / "real_drugs.xml"


@pytest.fixture(scope="session")
def small_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A small synthetic release (zip) merged with the fixture, and the generator's truth."""
    from mard_core.synth import write_release

    out = tmp_path_factory.mktemp("release") / "release.xml.zip"
    truth = write_release(out, 60, seed=7)
    return out, truth
