"""Loading the pipeline config: every value is checked when the file loads, and a problem is one line that
names the file and the key."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from mard_core.config import PipelineConfig, load_config
from mard_core.errors import InputError
from mard_core.stage import canonical_json

# The light config modules: loading a config imports none of HEAVY.
CONFIG_MODULES = (
    "mard_core.config",
    "mard_core.evaluation.config",
    "mard_core.training.config",
    "mard_core.metrics.cost",
    "mard_core.validation",
    "mard_core.ingest_config",
    "mard_core.quality_config",
    "mard_core.labeling_config",
    "mard_core.splits_config",
    "mard_core.retrieval_config",
    "mard_core.tiny_config",
    "mard_core.generate_config",
    "mard_core.registry_config",
    "mard_core.watch_config",
    "mard_core.prm.config",
    "mard_core.teachers.config",
)
HEAVY = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "great_expectations",
    "mlflow",
    "prefect",
    "ray",
    "sklearn",
    "polars",
)


def test_the_light_system_kinds_are_the_catalogs() -> None:
    from mard_core.evaluation.catalog import SYSTEMS
    from mard_core.evaluation.config import SYSTEM_KINDS

    assert set(SYSTEM_KINDS) == set(SYSTEMS)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("release: {demo_drugs: -5}", "release.demo_drugs: must be > 0, got -5"),
        ("teachers: {file: missing.yaml}", "teachers.file: missing.yaml: no such file"),
        ("ingest: {batch_rows: 0}", "ingest.batch_rows: must be > 0, got 0"),
        ("ingest: {batch_rowz: 5}", "ingest.batch_rowz: unknown key; allowed: batch_rows, compression"),
        (
            "inggest: {batch_rows: 5}",
            "inggest: unknown key; allowed: dpo, evaluate, ingest, label, models, prm, ",
        ),
        ("models: {size: {hidden: 64}}", "models.size.hidden: unknown key; allowed: arch, hidden_size, "),
        ("ingest: {batch_rows: '5'}", "ingest.batch_rows: must be a valid integer, got '5'"),
        ("splits: {valid_frac: lots}", "splits.valid_frac: must be a valid number, got 'lots'"),
        ("quality: {docs: 1}", "quality.docs: must be a valid boolean, got 1"),
        ("quality: {max_row_change: .nan}", "quality.max_row_change: must be a finite number, got nan"),
        ("ingest: 5", "ingest: must be a dictionary or an instance of IngestConfig, got 5"),
        (
            "ingest: {compression: lzma}",
            "ingest.compression: must be 'none', 'snappy', 'gzip', 'brotli', 'lz4' or ",
        ),
        (
            "splits: {strategies: [random, scaffold]}",
            "splits.strategies[1]: must be 'random', 'cold_drug', 'cold_pair' or 'temporal', got 'scaffold'",
        ),
        ("splits: {valid_frac: 0.6, test_frac: 0.4}", "splits: valid_frac + test_frac = 1.0: must be < 1"),
        (
            "teachers: {split: temporal}",
            "teachers.split: 'temporal' is not among splits.strategies ['random', 'cold_drug', 'cold_pair']",
        ),
        (
            "models: {student: {num_heads: 3}}",
            "models.student: hidden_size 256 is not divisible by num_heads 3",
        ),
        ("prm: {device: tpu, lr: 0}", "prm.lr: must be > 0.0, got 0 (and 1 more)"),
        (
            "screen: {score_column: prm_max}",
            "screen.score_column: must be 'prm_min' or 'prm_prod', got 'prm_max'",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, error: str
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative teachers.file is read from the working directory
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(InputError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {error}") and "\n" not in message


def test_overrides_are_checked_too() -> None:
    with pytest.raises(InputError, match=r"^config: ingest\.batch_rows: must be > 0, got 0$"):
        load_config(None, {"ingest": {"batch_rows": 0}})


def test_valid_values_load_as_the_stages_expect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("teachers: []\n")
    path = tmp_path / "ok.yaml"
    path.write_text(
        "teachers: {file: mine.yaml}\nsplits: {strategies: [random, cold_drug], test_frac: 0}\n"
        "register: {margin: 1}\n"
    )
    cfg = load_config(path)
    assert cfg.teachers.path == Path("mine.yaml")
    assert cfg.splits.strategies == ("random", "cold_drug")  # YAML lists become tuples
    assert (cfg.splits.test_frac, cfg.register.margin) == (0.0, 1.0) and isinstance(
        cfg.register.margin, float
    )
    assert load_config() == PipelineConfig()


def test_configs_stay_plain_frozen_dataclasses() -> None:
    cfg = load_config()
    assert dataclasses.is_dataclass(cfg) and [f.name for f in dataclasses.fields(cfg)][:2] == [
        "release",
        "ingest",
    ]
    assert json.loads(canonical_json(cfg))["ingest"] == {
        "batch_rows": 10_000,
        "compression": "zstd",
        "max_record_bytes": 64 << 20,
        "max_uncompressed_bytes": 16 << 30,
    }
    assert dataclasses.replace(cfg.ingest, batch_rows=5).batch_rows == 5
    with pytest.raises(ValidationError):
        dataclasses.replace(cfg.ingest, batch_rows=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.ingest.batch_rows = 5  # type: ignore[misc]


def test_config_modules_import_no_ml_library() -> None:
    code = (
        f"import importlib, sys\nfor m in {CONFIG_MODULES!r}: importlib.import_module(m)\n"
        f"print([h for h in {HEAVY!r} if h in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
