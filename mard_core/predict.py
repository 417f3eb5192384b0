"""Predict how two drugs interact, with the reasoning chain and the DrugBank evidence each step cites.

Drugs resolve by DrugBank id (primary or secondary), name, synonym or salt name, case-insensitively; an
unknown drug raises :class:`UnknownDrugError` listing close matches. The ordered query (A, B) gets its
evidence from a retrieval index and is answered by a :class:`~mard_core.evaluation.systems.System`: a student
model, or the knowledge-rules baseline when asked for by name (:func:`load_system`; which student, and the
pipeline outputs it is used with, is :mod:`mard_core.students`' choice, named in every result's ``model``).
Confidences are calibrated when a calibration file from the evaluation report is given
(:func:`load_calibrator`), and marked uncalibrated otherwise.

Production serving: merge the student (``mard_core.training.student.save_merged``), serve the merged directory
with vLLM's OpenAI-compatible server, and pass ``backend={"backend": "vllm", "model": <merged dir>, ...}``
(vLLM started and stopped by MARD) or
``backend={"backend": "openai", "base_url": "http://host:8000/v1", "model": ...}`` (an already running server)
to :func:`load_system`. It is just another backend: the prompts, parser and output are the same as for the
in-process transformers student.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mard_core.baselines import KnowledgeRulesBaseline
from mard_core.errors import InputError, echo, readable_file
from mard_core.evaluation.catalog import BackendSystem
from mard_core.evaluation.protocol import checked_predictions
from mard_core.evaluation.systems import Query, System
from mard_core.metrics.calibration import calibrate
from mard_core.prompts import DrugRef, parse_completion
from mard_core.retrieval import RetrievalIndex
from mard_core.teachers.base import GenerationParams, make_backend

BASELINES = {"knowledge_rules": KnowledgeRulesBaseline}  # the systems that answer without a student model
PAIR_FILE_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl")
_HEADERS = {("druga", "drugb"), ("a", "b"), ("drug1", "drug2")}  # header rows, compared by _column
_PRIORITY = ("id", "name", "synonym")  # match kinds, strongest first


class UnknownDrugError(InputError):
    """A drug name or id matches no drug of the drugs table (the message lists close matches)."""


class DrugLookup:
    """Case-insensitive index of the drugs table: ids (primary, secondary), names, synonyms, salt names."""

    def __init__(self, drugs: pl.DataFrame) -> None:
        missing = [c for c in ("drugbank_id", "name") if c not in drugs.columns]
        if missing:
            raise InputError(f"drugs table: missing columns {missing}")
        self._keys: dict[str, dict[str, set[str]]] = {kind: {} for kind in _PRIORITY}
        self._names: dict[str, tuple[str, ...]] = {}

        def column(name: str) -> list[Any]:
            return drugs[name].to_list() if name in drugs.columns else [None] * drugs.height

        for drug_id, name, secondary, synonyms, salts in zip(
            drugs["drugbank_id"].to_list(),
            drugs["name"].to_list(),
            column("secondary_ids"),
            column("synonyms"),
            column("salt_names"),
            strict=True,
        ):
            aliases = [s for s in (*(synonyms or ()), *(salts or ())) if s]
            self._names[drug_id] = tuple(dict.fromkeys([name, *aliases]))
            for kind, values in (
                ("id", [drug_id, *(secondary or ())]),
                ("name", [name]),
                ("synonym", aliases),
            ):
                for value in values:
                    self._keys[kind].setdefault(_key(value), set()).add(drug_id)

    def names(self, drug_id: str) -> tuple[str, ...]:
        """Name, synonyms and salt names of ``drug_id`` (name first)."""
        try:
            return self._names[drug_id]
        except KeyError:
            raise UnknownDrugError(f"drug {drug_id!r} is not in the drugs table") from None

    def knows(self, text: str) -> bool:
        """Whether ``text`` is an id, name, synonym or salt name of some drug."""
        return any(_key(text) in self._keys[kind] for kind in _PRIORITY)

    def resolve(self, text: str) -> DrugRef:
        """The drug ``text`` names; the strongest kind of match wins (id, then name, then synonym/salt)."""
        key = _key(text)
        if not key:
            raise InputError("drug name or id is empty")
        for kind in _PRIORITY:
            found = sorted(self._keys[kind].get(key, ()))
            if len(found) == 1:
                return DrugRef(found[0], self._names[found[0]][0])
            if found:
                options = ", ".join(f"{self._names[d][0]} ({d})" for d in found)
                raise InputError(
                    f"drug {echo(text)} is ambiguous: it is a {kind} of {options}; use a DrugBank id"
                )
        known = sorted({k for kind in _PRIORITY for k in self._keys[kind]})
        close = difflib.get_close_matches(key, known, n=10, cutoff=0.6)
        drugs = dict.fromkeys(
            d for c in close for kind in _PRIORITY for d in sorted(self._keys[kind].get(c, ()))
        )
        shown = [f"{self._names[d][0]} ({d})" for d in list(drugs)[:5]]
        hint = f"; close matches: {', '.join(shown)}" if shown else ""
        raise UnknownDrugError(f"drug {echo(text)} is not in the drugs table{hint}")


def _key(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def resolve_drug(name_or_id: str, drugs: pl.DataFrame | DrugLookup) -> DrugRef:
    """The drug a DrugBank id, name, synonym or salt name denotes (case-insensitive)."""
    lookup = drugs if isinstance(drugs, DrugLookup) else DrugLookup(drugs)
    return lookup.resolve(name_or_id)


def load_system(
    model: str | None = None,
    backend: Mapping[str, Any] | None = None,
    baseline: str | None = None,
    device: str = "auto",
    max_tokens: int = 64,
) -> System:
    """The answering system: the student on ``model`` (a model directory, on transformers with its answer
    constrained to valid labels, :class:`~mard_core.evaluation.student.StudentSystem`)
    or on ``backend`` (any ``make_backend`` spec, e.g. vLLM), or the ``baseline`` named (:data:`BASELINES`).
    Exactly one of the three: nothing answers by default."""
    if sum(x is not None for x in (model, backend, baseline)) != 1:
        raise InputError("give exactly one of a student model directory, a backend spec or a baseline")
    if baseline is not None:
        if baseline not in BASELINES:
            raise InputError(f"baseline {echo(baseline)}: expected one of {sorted(BASELINES)}")
        return BASELINES[baseline]()
    if backend is not None:
        params = GenerationParams(temperature=0.0, max_tokens=max_tokens)
        return BackendSystem(make_backend(backend), f"student:{backend.get('model')}", "student", params)
    from mard_core.evaluation.student import StudentSystem  # imports torch

    assert model is not None  # exactly one of the three is given
    return StudentSystem(model, f"student:{Path(model).name}", device=device, max_tokens=max_tokens)


def load_calibrator(path: str | Path) -> Callable[[Any], np.ndarray]:
    """The isotonic map fitted on a system's validation predictions (``calibration/<stem>.parquet`` written by
    :func:`mard_core.evaluation.report.write_report`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: calibration file not found")
    df = pl.read_parquet(path)
    if not {"confidence", "correct"} <= set(df.columns) or df.height == 0:
        raise InputError(f"{path}: expected rows with columns confidence and correct")
    return calibrate(df["confidence"].to_numpy(), df["correct"].to_numpy())


def _direction_text(direction: str, a: DrugRef, b: DrugRef) -> str:
    return {"A to B": f"{a.name} affects {b.name}", "B to A": f"{b.name} affects {a.name}"}.get(
        direction, "both drugs alike"
    )


def predict_pairs(
    pairs: Sequence[tuple[str, str]],
    system: System,
    index: RetrievalIndex,
    drugs: pl.DataFrame | DrugLookup,
    calibrator: Callable[[Any], np.ndarray] | None = None,
    model: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Answer ordered pairs of drug names/ids: one JSON-ready dict per pair with the label and its parts,
    confidence (raw and calibrated), the chain's steps with each citation's evidence sentence quoted, and
    ``model``: which model answered (a dict with at least ``source`` and ``description``, e.g.
    :meth:`mard_core.students.Choice.summary`)."""
    lookup = drugs if isinstance(drugs, DrugLookup) else DrugLookup(drugs)
    refs = []
    for a_text, b_text in pairs:
        a, b = lookup.resolve(a_text), lookup.resolve(b_text)
        if a.drugbank_id == b.drugbank_id:
            raise InputError(f"pair ({echo(a_text)}, {echo(b_text)}): both name {a.name} ({a.drugbank_id})")
        refs.append((a, b))
    queries = [
        Query(
            a.drugbank_id,
            b.drugbank_id,
            lookup.names(a.drugbank_id),
            lookup.names(b.drugbank_id),
            tuple(index.retrieve(a.drugbank_id, b.drugbank_id)),
        )
        for a, b in refs
    ]
    results = []
    predictions = checked_predictions(system, queries)
    for (a_text, b_text), (a, b), query, pred in zip(pairs, refs, queries, predictions, strict=True):
        evidence = {e.id: e for e in query.evidence}
        parsed = parse_completion(pred.text or "", query.names_a, query.names_b, list(evidence))
        steps = [
            {
                "index": s.index,
                "text": s.text,
                "citations": [
                    {
                        "id": c,
                        "quote": evidence[c].sentence if c in evidence else None,
                        "source": evidence[c].field if c in evidence else None,
                        "drug_id": evidence[c].drug_id if c in evidence else None,
                    }
                    for c in s.citations
                ],
            }
            for s in parsed.steps
        ]
        parts = pred.label.split("/") if pred.label else [None] * 4
        calibrated = (
            float(calibrator([pred.confidence])[0])
            if calibrator is not None and pred.confidence is not None
            else None
        )
        results.append(
            {
                "query": [a_text, b_text],
                "drug_a": {"drugbank_id": a.drugbank_id, "name": a.name},
                "drug_b": {"drugbank_id": b.drugbank_id, "name": b.name},
                "label": pred.label,
                **dict(zip(("family", "subtype", "direction", "modality"), parts, strict=True)),
                "direction_text": _direction_text(pred.label.split("/")[2], a, b) if pred.label else None,
                "confidence": pred.confidence,
                "calibrated_confidence": calibrated,
                "steps": steps,
                "parse_errors": parsed.errors if pred.text else [],
                "system": system.name,
                "model": dict(model) if model is not None else None,
            }
        )
    return results


def format_text(result: Mapping[str, Any]) -> str:
    """A human-readable answer: the pair, label, confidence, and each step with its quoted evidence."""
    a, b = result["drug_a"], result["drug_b"]
    lines = [f"{a['name']} ({a['drugbank_id']}) + {b['name']} ({b['drugbank_id']})"]
    if result["label"] is None:
        lines.append("  Interaction: no answer")
    else:
        lines.append(
            f"  Interaction: {result['family']} / {result['subtype']} / {result['direction']} "
            f"({result['direction_text']}) / {result['modality']}"
        )
    if result["calibrated_confidence"] is not None:
        lines.append(
            f"  Confidence: {result['calibrated_confidence']:.2f} "
            f"(calibrated; raw {result['confidence']:.2f})"
        )
    elif result["confidence"] is not None:
        lines.append(f"  Confidence: {result['confidence']:.2f} (uncalibrated)")
    if result["steps"]:
        lines.append("  Reasoning:")
    for step in result["steps"]:
        lines.append(f"    {step['index']}. {step['text']}")
        for cite in step["citations"]:
            quote = (
                f'"{cite["quote"]}" (DrugBank: {cite["source"]})'
                if cite["quote"] is not None
                else "(not among the evidence given)"
            )
            lines.append(f"       [{cite['id']}] {quote}")
    lines += [f"  Parse problem: {e}" for e in result.get("parse_errors") or []]
    model = result.get("model")
    lines.append(f"  Model: {model['description']}" if model else f"  System: {result['system']}")
    return "\n".join(lines) + "\n"


def format_json(results: Sequence[Mapping[str, Any]]) -> str:
    """The results as JSON lines, one object per pair."""
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in results)


def _pair(cells: Sequence[Any], where: str) -> tuple[str, str]:
    values = [str(c).strip() for c in cells if c is not None and str(c).strip()]
    if len(values) != 2 or len(cells) != 2:
        raise InputError(f"{where}: expected two drugs, got {echo(list(cells))}")
    return values[0], values[1]


def _column(text: str) -> str:
    return re.sub(r"[\s_-]+", "", text).casefold()


def read_pairs(path: str | Path, drugs: pl.DataFrame | DrugLookup) -> list[tuple[str, str]]:
    """Drug pairs from a CSV/TSV file (two columns) or JSON lines (objects with ``drug_a`` and ``drug_b``, or
    two-element arrays).

    A CSV/TSV file's first row is a header when its cells are column names MARD knows: ``drug_a,drug_b``,
    ``a,b`` or ``drug1,drug2`` (any case; spaces, ``-`` and ``_`` alike). Any other first row is data, except
    that a first row naming no drug of ``drugs`` in either cell is refused: it is an unknown header or two
    misspelt names, and guessing which would answer the wrong question or drop a pair.
    """
    path = Path(path)
    if path.suffix.lower() not in PAIR_FILE_SUFFIXES:
        raise InputError(f"{path}: pair files must end in one of {', '.join(PAIR_FILE_SUFFIXES)}")
    readable_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text (byte {exc.start}); expected a CSV, TSV or JSONL file"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    pairs: list[tuple[str, str]] = []
    if path.suffix.lower() == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: not JSON: {exc.msg}") from None
            cells = [item.get("drug_a"), item.get("drug_b")] if isinstance(item, dict) else item
            if not isinstance(cells, list):
                raise InputError(f"{path}:{n}: expected an object with drug_a/drug_b or a two-element array")
            pairs.append(_pair(cells, f"{path}:{n}"))
    else:
        lookup = drugs if isinstance(drugs, DrugLookup) else DrugLookup(drugs)
        delimiter = "," if path.suffix.lower() == ".csv" else "\t"
        rows = [
            (n, row)
            for n, row in enumerate(csv.reader(text.splitlines(), delimiter=delimiter), 1)
            if any(c.strip() for c in row)
        ]
        if rows and tuple(_column(c) for c in rows[0][1]) in _HEADERS:
            rows = rows[1:]
        elif rows and len(rows[0][1]) == 2 and all(c.strip() and not lookup.knows(c) for c in rows[0][1]):
            n, (a, b) = rows[0]
            raise InputError(
                f"{path}:{n}: neither {echo(a.strip())} nor {echo(b.strip())} is a known drug: a header "
                "must be drug_a,drug_b (or a,b / drug1,drug2); a data row needs correct names"
            )
        pairs = [_pair(row, f"{path}:{n}") for n, row in rows]
    if not pairs:
        raise InputError(f"{path}: no drug pairs")
    return pairs
