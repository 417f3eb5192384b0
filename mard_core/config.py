"""Pipeline configuration: one small dataclass per stage, composed here and loaded from YAML.

Every knob has a default that runs the demo on 2 CPU cores in minutes; a YAML file overrides any subset.
Unknown keys and wrongly typed values are errors that name the file and the key.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mard_core.errors import InputError
from mard_core.evaluate import EvalConfig
from mard_core.generate_config import TeachersConfig
from mard_core.ingest_config import IngestConfig
from mard_core.labeling_config import LabelConfig
from mard_core.prm.config import PRMConfig, ScreenConfig
from mard_core.quality_config import QualityConfig
from mard_core.registry_config import RegisterConfig
from mard_core.retrieval_config import RetrievalConfig
from mard_core.splits_config import SplitConfig
from mard_core.tiny_config import ModelsConfig
from mard_core.training.dpo import DPOConfig
from mard_core.training.sft import SFTConfig

T = TypeVar("T")

@dataclass(frozen=True)
class ReleaseConfig:
    """Which DrugBank release to run on; with no source, the embedded demo release is synthesised."""

    source: str | None = None
    version: str | None = None  # e.g. "5.1.13"; required with verify unless the hash is registered
    verify: bool = False
    demo_drugs: int = 400
    demo_seed: int = 0


@dataclass(frozen=True)
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


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        item = typing.get_args(tp)[0]
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise InputError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, recursively; unknown keys and wrong types are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    return cls(**{k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Defaults, updated by the YAML file at ``path`` (if any), then by ``overrides`` (nested mapping)."""
    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise InputError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: top level must be a mapping of stage sections")
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return from_dict(PipelineConfig, data, where)
