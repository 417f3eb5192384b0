"""Data-quality gates: Great Expectations (1.24) suites kept as data files, run on Arrow/Parquet tables.

Suite files live in ``schemas/quality/<suite>.json``. Each holds a non-empty JSON list of expectations::

    {"type": "expect_column_values_to_be_in_set",          # GX 1.x expectation type, snake_case only
     "kwargs": {"column": "partner_id", "value_set": {"$param": "drug_ids"},
                "mostly": {"$param": "partner_resolvable_mostly"}},
     "notes": "optional text, shown in Data Docs and results.json"}

Any value inside ``kwargs`` (at any depth) may be ``{"$param": "<name>"}``: it is replaced by
``params[name]`` before the expectation is built (sets become sorted lists, tuples lists). Parameter
names used by the shipped suites: ``drug_ids``, ``protein_kinds``, ``partner_resolvable_mostly`` and
``<table>_min_rows`` / ``<table>_max_rows`` (see :func:`row_count_params`); :func:`ingest_params` builds
all of them for the ingest tables. A new gate is a new suite file plus the params it names, no code.

Validation runs in a GX ephemeral context (in-memory stores, analytics and progress bars off, nothing
fetched) on pandas frames converted from Arrow; only the columns a suite names are read. A failed
validation is a result (``success=False``), not an exception: the caller raises ``QualityGateError``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import great_expectations as gx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from great_expectations.core import ExpectationSuiteValidationResult
from great_expectations.core.expectation_validation_result import ExpectationValidationResult
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.exceptions import ExpectationNotFoundError
from great_expectations.expectations import Expectation
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from great_expectations.expectations.registry import get_expectation_impl
from pydantic.v1 import ValidationError as PydanticValidationError

from mard_core.errors import InputError, MardError
from mard_core.quality_config import QualityConfig
from mard_core.stage import replace_dir, write_atomic
from schemas import PROTEIN_KINDS, SCHEMA_DIR

SUITE_DIR = SCHEMA_DIR / "quality"
SUITES_VERSION = "1"  # bump when a suite file changes, so gates re-run on unchanged data
RESULTS_FILE = "results.json"
DOCS_DIR = "data_docs"

_PARAM = "$param"
_ENTRY_KEYS = frozenset({"type", "kwargs", "notes"})
_COLUMN_KWARGS = ("column", "column_A", "column_B", "column_list")
_SITE = "mard"
_EXAMPLES = 5
_LONG_LIST = 10
_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


class QualityConfigError(MardError):
    """A quality suite file, one of its parameters, or a quality setting is unusable."""


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result: what was checked, whether it held, and what was seen."""

    expectation: str
    kwargs: dict[str, Any]
    success: bool
    observed_value: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    unexpected_examples: list[Any] = field(default_factory=list)
    error: str | None = None
    notes: str | list[str] | None = None

    @property
    def target(self) -> str:
        """The column(s) checked, or "(table)" for table-level expectations."""
        names = [self.kwargs[k] for k in _COLUMN_KWARGS if k in self.kwargs]
        flat = [n for v in names for n in (v if isinstance(v, list) else [v])]
        return ", ".join(map(str, flat)) or "(table)"

    @property
    def settings(self) -> str:
        """The non-column arguments, e.g. ``min_value=50, max_value=150`` or ``mostly=0.99``."""
        return ", ".join(
            f"{k}={v if isinstance(v, str) else json.dumps(v)}"
            for k, v in self.kwargs.items()
            if k not in _COLUMN_KWARGS
        )

    @property
    def observed(self) -> str:
        """A short human reading of what was seen."""
        if self.error:
            return f"error: {self.error}"
        if self.observed_value is not None:
            return str(self.observed_value)
        if self.unexpected_count is not None:
            return f"{self.unexpected_count} unexpected ({self.unexpected_percent or 0.0:.3g}%)"
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "kwargs": self.kwargs,
            "success": self.success,
            "observed_value": self.observed_value,
            "unexpected_count": self.unexpected_count,
            "unexpected_percent": self.unexpected_percent,
            "unexpected_examples": self.unexpected_examples,
            "error": self.error,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class SuiteResult:
    """The outcome of one suite on one table, expectations in suite-file order."""

    table: str
    suite: str
    row_count: int
    expectations: tuple[ExpectationOutcome, ...]

    @property
    def success(self) -> bool:
        return all(e.success for e in self.expectations)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.success]

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "suite": self.suite,
            "success": self.success,
            "row_count": self.row_count,
            "expectations": [e.to_dict() for e in self.expectations],
        }


@dataclass(frozen=True)
class QualityReport:
    """Results of a gate over several tables, keyed by table name, and where they were written."""

    suites: dict[str, SuiteResult]
    results_path: Path
    docs_index: Path | None

    @property
    def success(self) -> bool:
        return all(r.success for r in self.suites.values())

    @property
    def row_counts(self) -> dict[str, int]:
        """Rows per table: the ``previous_counts`` of the next release's gate."""
        return {t: r.row_count for t, r in self.suites.items()}

    def to_dict(self) -> dict[str, Any]:
        docs = None if self.docs_index is None else os.path.relpath(self.docs_index, self.results_path.parent)
        return {
            "success": self.success,
            "row_counts": self.row_counts,
            "data_docs": docs,
            "suites": {t: r.to_dict() for t, r in self.suites.items()},
        }

    def summary_markdown(self) -> str:
        """A Markdown summary: verdict line, then one row per expectation (failures marked)."""
        n_failed = sum(len(r.failures) for r in self.suites.values())
        passed = sum(r.success for r in self.suites.values())
        lines = [
            f"**Data quality: {'PASSED' if self.success else 'FAILED'}**: {passed} of {len(self.suites)} "
            f"suites passed, {n_failed} failing expectation(s). Results: `{self.results_path}`"
            + ("" if self.docs_index is None else f"; Data Docs: `{self.docs_index}`"),
            "",
            (
                "| table (rows) | suite | expectation | column | settings | status | observed "
                "| unexpected examples |"
            ),
            "|---|---|---|---|---|---|---|---|",
        ]
        for table, result in self.suites.items():
            for e in result.expectations:
                examples = ", ".join(_md_value(v) for v in e.unexpected_examples)
                cells = [
                    f"{table} ({result.row_count:,})",
                    result.suite,
                    e.expectation,
                    e.target,
                    f"`{_truncate(e.settings, 60)}`" if e.settings else "",
                    "pass" if e.success else "**FAIL**",
                    e.observed,
                    examples,
                ]
                lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        return "\n".join(lines) + "\n"


def load_suite(name: str, *, suite_dir: Path = SUITE_DIR) -> list[dict[str, Any]]:
    """Read and check the suite file ``suite_dir/<name>.json`` (params are not substituted)."""
    path = suite_dir / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in suite_dir.glob("*.json"))
        raise QualityConfigError(f"{path}: no such quality suite file (suites in {suite_dir}: {known})")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QualityConfigError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(entries, list) or not entries:
        raise QualityConfigError(f"{path}: a suite must be a non-empty JSON list of expectations")
    for i, entry in enumerate(entries):
        where = f"{path}: expectation #{i}"
        if not isinstance(entry, dict) or not {"type", "kwargs"} <= entry.keys() <= _ENTRY_KEYS:
            raise QualityConfigError(
                f"{where}: must be an object with keys 'type', 'kwargs' and optional 'notes'"
            )
        if not isinstance(entry["kwargs"], dict):
            raise QualityConfigError(f"{where}: 'kwargs' must be an object")
        try:
            get_expectation_impl(entry["type"])
        except (ExpectationNotFoundError, TypeError) as e:
            raise QualityConfigError(
                f"{where}: unknown expectation type {entry['type']!r} (use GX snake_case names, "
                "e.g. 'expect_column_values_to_not_be_null')"
            ) from e
    return entries


def build_suite(name: str, params: Mapping[str, Any], *, suite_dir: Path = SUITE_DIR) -> list[Expectation]:
    """Load suite ``name``, substitute ``{"$param": ...}`` values from ``params`` and build GX
    expectations."""
    path = suite_dir / f"{name}.json"
    built = []
    for i, entry in enumerate(load_suite(name, suite_dir=suite_dir)):
        where = f"{path}: expectation #{i} ({entry['type']})"
        kwargs = _substitute(entry["kwargs"], params, where)
        try:
            built.append(get_expectation_impl(entry["type"])(**kwargs, notes=entry.get("notes")))
        except (PydanticValidationError, TypeError, ValueError) as e:
            raise QualityConfigError(f"{where}: invalid kwargs: {e}") from e
    return built


def row_count_params(
    current_counts: Mapping[str, int], previous_counts: Mapping[str, int] | None, max_change: float
) -> dict[str, int | None]:
    """``<table>_min_rows`` / ``<table>_max_rows`` for each table of ``current_counts`` (only its keys are
    used).

    With a previous (non-zero) count p the range is [ceil(p(1-c)), floor(p(1+c))], at least 1; otherwise
    it is the loose [1, inf) (max None).
    """
    if not (math.isfinite(max_change) and max_change >= 0):
        raise QualityConfigError(f"max_row_change must be a finite number >= 0, got {max_change}")
    change = Fraction(str(max_change))
    params: dict[str, int | None] = {}
    for table in current_counts:
        previous = (previous_counts or {}).get(table)
        if previous:
            low = max(1, math.ceil(previous * (1 - change)))
            high: int | None = max(low, math.floor(previous * (1 + change)))
        else:
            low, high = 1, None
        params[f"{table}_min_rows"] = low
        params[f"{table}_max_rows"] = high
    return params


def table_row_counts(tables: Mapping[str, Path]) -> dict[str, int]:
    """Row counts of Parquet tables, from their footers."""
    return {name: _parquet_file(Path(path)).metadata.num_rows for name, path in tables.items()}


def ingest_params(
    tables: Mapping[str, Path], previous_counts: Mapping[str, int] | None, config: QualityConfig
) -> dict[str, Any]:
    """All params the ingest suites name: drug ids (from the drugs table), kinds, tolerance, row ranges."""
    if "drugs" not in tables:
        raise QualityConfigError(f"ingest quality params need the 'drugs' table; got tables {sorted(tables)}")
    drugs_path = Path(tables["drugs"])
    if "drugbank_id" not in _parquet_file(drugs_path).schema_arrow.names:
        raise InputError(f"{drugs_path}: the drugs table has no 'drugbank_id' column")
    ids = pq.read_table(drugs_path, columns=["drugbank_id"]).column(0).drop_null().unique()
    return {
        "drug_ids": sorted(ids.to_pylist()),
        "protein_kinds": list(PROTEIN_KINDS),
        "partner_resolvable_mostly": config.partner_resolvable_mostly,
        **row_count_params(table_row_counts(tables), previous_counts, config.max_row_change),
    }


def run_suite(
    suite: str,
    table: pa.Table | Path,
    params: Mapping[str, Any],
    *,
    docs_dir: Path | None = None,
    suite_dir: Path = SUITE_DIR,
) -> SuiteResult:
    """Validate one table (named like the suite) with one suite; write Data Docs to ``docs_dir`` if given."""
    results, _ = _validate({suite: (suite, table)}, params, docs_dir, suite_dir)
    return results[suite]


def validate_tables(
    tables: Mapping[str, Path | pa.Table],
    params: Mapping[str, Any],
    out_dir: Path,
    suites: Mapping[str, str] | None = None,
    *,
    docs: bool = True,
    suite_dir: Path = SUITE_DIR,
) -> QualityReport:
    """Validate each table with its suite (``suites[table]``, default: the suite named like the table).

    Writes ``out_dir/results.json`` and, when ``docs``, GX Data Docs under ``out_dir/data_docs/``
    (both replaced atomically). Returns the report; it does not raise on failed expectations.
    """
    suites = dict(suites or {})
    unknown = sorted(set(suites) - set(tables))
    if unknown:
        raise QualityConfigError(f"quality suites given for tables that were not passed: {unknown}")
    jobs = {t: (suites.get(t, t), data) for t, data in tables.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    results, docs_index = _validate(jobs, params, out_dir / DOCS_DIR if docs else None, suite_dir)
    report = QualityReport(results, out_dir / RESULTS_FILE, docs_index)
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"
    write_atomic(report.results_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return report


def _validate(
    jobs: Mapping[str, tuple[str, pa.Table | Path]],
    params: Mapping[str, Any],
    docs_dir: Path | None,
    suite_dir: Path,
) -> tuple[dict[str, SuiteResult], Path | None]:
    """Run each table's suite in one ephemeral context; all suites are built before any data is read."""
    built = {s: build_suite(s, params, suite_dir=suite_dir) for s in sorted({s for s, _ in jobs.values()})}
    with _staged_dir(docs_dir) as site_dir:
        context = _context(site_dir)
        source = context.data_sources.add_pandas("mard")
        gx_suites = {
            s: context.suites.add(gx.ExpectationSuite(name=s, expectations=e)) for s, e in built.items()
        }
        results = {}
        for table, (suite, data) in jobs.items():
            frame = _frame(data, _referenced_columns(built[suite]))
            batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("whole")
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=table, data=batch, suite=gx_suites[suite])
            )
            raw = definition.run(batch_parameters={"dataframe": frame}, result_format=_RESULT_FORMAT)
            results[table] = _suite_result(table, gx_suites[suite], raw, len(frame))
        if site_dir is not None:
            context.build_data_docs(site_names=[_SITE])
    return results, None if docs_dir is None else docs_dir / "index.html"


def _context(site_dir: Path | None) -> AbstractDataContext:
    sites = {}
    if site_dir is not None:
        sites[_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _substitute(value: Any, params: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, dict):
        if _PARAM in value:
            name = value[_PARAM]
            if len(value) != 1 or not isinstance(name, str):
                raise QualityConfigError(
                    f'{where}: a parameter reference must be exactly {{"$param": "<name>"}}'
                )
            if name not in params:
                raise QualityConfigError(f"{where}: unknown parameter {name!r} (given: {sorted(params)})")
            return _param_value(params[name])
        return {k: _substitute(v, params, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params, where) for v in value]
    return value


def _param_value(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _referenced_columns(expectations: list[Expectation]) -> set[str]:
    names: set[str] = set()
    for e in expectations:
        for key in _COLUMN_KWARGS:
            value = getattr(e, key, None)
            if isinstance(value, str):
                names.add(value)
            elif isinstance(value, list):
                names.update(value)
    return names


def _parquet_file(path: Path) -> pq.ParquetFile:
    if not path.is_file():
        raise InputError(f"{path}: table file not found")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({e})") from e


def _frame(data: pa.Table | Path, columns: set[str]) -> pd.DataFrame:
    """The table as pandas, reduced to ``columns`` (those it has; GX reports the missing ones)."""
    if isinstance(data, pa.Table):
        return data.select([c for c in data.column_names if c in columns]).to_pandas()
    path = Path(data)
    names = _parquet_file(path).schema_arrow.names
    try:
        return pq.read_table(path, columns=[c for c in names if c in columns]).to_pandas()
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({e})") from e


def _suite_result(
    table: str, suite: gx.ExpectationSuite, raw: ExpectationSuiteValidationResult, rows: int
) -> SuiteResult:
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    ordered = sorted(raw.results, key=lambda r: order.get(_config(r).id, len(order)))
    return SuiteResult(table, suite.name, rows, tuple(_outcome(r) for r in ordered))


def _config(r: ExpectationValidationResult) -> ExpectationConfiguration:
    """The expectation a result is for: GX sets it on every result of a suite run."""
    assert r.expectation_config is not None
    return r.expectation_config


def _outcome(r: ExpectationValidationResult) -> ExpectationOutcome:
    config = _config(r)
    result = r.result or {}
    examples: list[Any] = []
    for value in map(_json_safe, result.get("partial_unexpected_list", [])):
        if value not in examples and len(examples) < _EXAMPLES:
            examples.append(value)
    percent = result.get("unexpected_percent")
    return ExpectationOutcome(
        expectation=config.type,
        kwargs={k: _summarise(v) for k, v in config.kwargs.items() if k != "batch_id"},
        success=bool(r.success),
        observed_value=_json_safe(result.get("observed_value")),
        unexpected_count=result.get("unexpected_count"),
        unexpected_percent=None if percent is None else float(percent),
        unexpected_examples=examples,
        error=_exception_message(r.exception_info),
        notes=config.notes,
    )


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    """GX reports either one exception dict or a dict of them keyed by metric."""
    if not info:
        return None
    found = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, Mapping)]
    messages = [str(i.get("exception_message")) for i in found if i.get("raised_exception")]
    return "; ".join(dict.fromkeys(messages)) or None


def _summarise(value: Any) -> Any:
    value = _json_safe(value)
    if isinstance(value, list) and len(value) > _LONG_LIST:
        return f"<{len(value)} values>"
    return value


def _json_safe(value: Any) -> Any:
    """Plain JSON values from GX/numpy/pandas ones (NaN and NA become None, tuples lists)."""
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_json_safe(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _md_value(value: Any) -> str:
    text = "null" if value is None else value if isinstance(value, str) else json.dumps(value)
    return f"`{_truncate(text, 40)}`"


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@contextmanager
def _staged_dir(target: Path | None) -> Iterator[Path | None]:
    """A fresh sibling temp dir that replaces ``target`` when the block succeeds (removed otherwise)."""
    if target is None:
        yield None
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def gate_tables(
    stage_dir: Path, params: Mapping[str, Any], out_dir: Path, config: QualityConfig
) -> dict[str, Any]:
    """Validate every Parquet table of a stage output with its suite; the manifest fields of the gate
    stage."""
    tables = {
        p.stem: p
        for p in sorted(Path(stage_dir).glob("*.parquet"))
        if (SUITE_DIR / f"{p.stem}.json").is_file()
    }
    report = validate_tables(tables, params, out_dir, docs=config.docs)
    return {
        "success": report.success,
        "row_counts": report.row_counts,
        "summary_markdown": report.summary_markdown(),
    }


def _ingest_gate_params(stage_dir: Path, previous_dir: Path | None, config: QualityConfig) -> dict[str, Any]:
    tables = {p.stem: p for p in sorted(stage_dir.glob("*.parquet"))}
    previous = table_row_counts({p.stem: p for p in previous_dir.glob("*.parquet")}) if previous_dir else None
    return ingest_params(tables, previous, config)


def _label_gate_params(stage_dir: Path, previous_dir: Path | None, config: QualityConfig) -> dict[str, Any]:
    from mard_core.taxonomy import DIRECTIONS, MODALITIES, load_taxonomy

    tax = load_taxonomy()
    return {
        "labels": sorted({str(label) for label in tax.labels()}),
        "families": [f.name for f in tax.families],
        "subtypes": sorted({s.name for s in tax.subtypes}),
        "directions": list(DIRECTIONS),
        "modalities": list(MODALITIES),
    }


# Which params each stage's suites need, by stage name (the stage output's parent directory).
_GATE_PARAMS = {
    "ingest": _ingest_gate_params,
    "label": _label_gate_params,
    "splits": lambda stage_dir, previous_dir, config: {},
    "prm": lambda stage_dir, previous_dir, config: {},
}


def gate(stage_dir: Path, previous_dir: Path | None, out_dir: Path, config: QualityConfig) -> dict[str, Any]:
    """Gate a stage output: each of its tables with a suite of the same name, params built for that stage.

    ``previous_dir`` is the same stage's output for the previous release (row counts are compared with it).
    """
    stage_dir = Path(stage_dir)
    build = _GATE_PARAMS.get(stage_dir.parent.name)
    if build is None:
        raise QualityConfigError(
            f"{stage_dir}: no quality gate is defined for stage {stage_dir.parent.name!r}"
        )
    return gate_tables(stage_dir, build(stage_dir, previous_dir, config), out_dir, config)
