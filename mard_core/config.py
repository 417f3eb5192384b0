"""Pipeline configuration: one small config class per stage, composed here and loaded from YAML.

Every knob has a default that runs the demo on 2 CPU cores in minutes; a YAML file overrides any subset.

Each stage's config class lives in a torch-free module beside the stage's code, so that reading and checking a
config imports no ML library: ``mard_core/<module>_config.py`` beside a top-level module
``mard_core/<module>.py`` (``ingest_config.py`` beside ``ingest.py``), and ``config.py`` inside a subpackage
(``mard_core/prm/config.py``, ``mard_core/teachers/config.py``). The stage module imports its config from
there.

Config classes are frozen pydantic dataclasses (see :mod:`mard_core.validation`), so every value is checked
when the config loads: types, ranges, known names, that the files it names exist. Any problem is one
``InputError`` naming the file and the key, e.g. ``my.yaml: release.demo_drugs: must be > 0, got -5``.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import StrictBool, field_validator, model_validator
from pydantic.dataclasses import dataclass

from mard_core.errors import InputError, readable_file
from mard_core.evaluation.config import EvalConfig
from mard_core.generate_config import TeachersConfig
from mard_core.ingest_config import IngestConfig
from mard_core.labeling_config import LabelConfig
from mard_core.prm.config import PRMConfig, ScreenConfig
from mard_core.quality_config import QualityConfig
from mard_core.registry_config import RegisterConfig
from mard_core.retrieval_config import RetrievalConfig
from mard_core.splits_config import SplitConfig
from mard_core.synth.config import WorldConfig
from mard_core.tiny_config import ModelsConfig
from mard_core.training.config import DPOConfig, SFTConfig
from mard_core.validation import CONFIG, NonNegativeInt, PositiveInt, parse_config, readable


@dataclass(frozen=True, config=CONFIG)
class ReleaseConfig:
    """Which DrugBank release to run on; with no source, the embedded demo release is synthesised."""

    source: str | None = None  # a DrugBank .xml or .zip (relative: to the working directory)
    version: str | None = None  # e.g. "5.1.13"; required with verify unless the hash is registered
    verify: StrictBool = False
    demo_drugs: PositiveInt = 600
    demo_seed: NonNegativeInt = 0
    world: WorldConfig = field(default_factory=WorldConfig)  # how the demo release departs from its world

    @field_validator("source")
    @classmethod
    def _source_exists(cls, source: str | None) -> str | None:
        return readable(source) if source else source


@dataclass(frozen=True, config=CONFIG)
class PipelineConfig:
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    splits: SplitConfig = field(default_factory=SplitConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    teachers: TeachersConfig = field(default_factory=TeachersConfig)
    prm: PRMConfig = field(default_factory=PRMConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)

    @model_validator(mode="after")
    def _teachers_split_is_built(self) -> Self:
        if self.teachers.split not in self.splits.strategies:
            raise ValueError(
                f"teachers.split: {self.teachers.split!r} is not among splits.strategies "
                f"{list(self.splits.strategies)}"
            )
        return self


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Defaults, updated by the YAML file at ``path`` (if any), then by ``overrides`` (nested mapping)."""
    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        path = readable_file(Path(path), "config file")
        where = str(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: top level must be a mapping of stage sections")
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return parse_config(PipelineConfig, data, where)
