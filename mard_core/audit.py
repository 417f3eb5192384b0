"""What the student sees for a drug pair, and how a reasoning chain written for it holds up.

:class:`Auditor` works on one split: drugs resolve as in ``mard predict`` (DrugBank id, name, synonym or salt
name), the evidence is retrieved exactly as the evaluation retrieves it (the split's index,
``retrieve(A, B)``), and a chain is scored by :class:`mard_core.metrics.mfs.ChainVerifier` against its own
ANSWER line.

Chain files are JSON lines ``{"drug_a": ..., "drug_b": ..., "text": ...}`` (ids or names; ``text`` in the
:mod:`mard_core.prompts` completion format). A bad line (not JSON, not such an object, an unknown drug, a text
without a valid ANSWER line) is reported as ``FILE:LINE: problem`` and skipped; the other lines are still
audited.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from mard_core.errors import InputError, MardError
from mard_core.metrics.mfs import ChainVerifier
from mard_core.predict import DrugLookup
from mard_core.prompts import DrugRef
from mard_core.retrieval import Evidence, RetrievalIndex
from mard_core.taxonomy import Taxonomy
from mard_core.verifier import Facts

CHAIN_KEYS = ("drug_a", "drug_b", "text")


def _ref(drug: DrugRef) -> dict[str, str]:
    return {"drugbank_id": drug.drugbank_id, "name": drug.name}


def _table(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: not found")
    return pl.read_parquet(path)


def _chain_fields(line: str) -> tuple[str, str, str]:
    """(drug_a, drug_b, text) of one line of a chain file."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg}") from None
    if not isinstance(item, dict):
        raise InputError(f"expected an object with keys {', '.join(CHAIN_KEYS)}")
    missing = [k for k in CHAIN_KEYS if k not in item]
    if missing:
        raise InputError(f"missing key(s) {', '.join(missing)}")
    wrong = [k for k in CHAIN_KEYS if not isinstance(item[k], str)]
    if wrong:
        raise InputError(f"{', '.join(wrong)} must be a string")
    return item["drug_a"], item["drug_b"], item["text"]


class Auditor:
    """Evidence and chain audits on one split's retrieval index."""

    def __init__(
        self,
        drugs: pl.DataFrame,
        drug_proteins: pl.DataFrame,
        index: RetrievalIndex,
        split: str,
        taxonomy: Taxonomy | None = None,
    ) -> None:
        self.lookup = DrugLookup(drugs)
        self.index, self.split = index, split
        self.verifier = ChainVerifier(Facts.from_tables(drugs, drug_proteins), taxonomy)

    @classmethod
    def load(cls, ingest_dir: Path, index_dir: Path, split: str) -> Auditor:
        """From an ingest output (drugs, drug_proteins) and an index output (one index per split)."""
        if not (index_dir / split / "index.json").is_file():
            have = ", ".join(sorted(p.name for p in index_dir.iterdir() if (p / "index.json").is_file()))
            raise InputError(f"{index_dir}: no retrieval index for split {split!r} (have: {have or 'none'})")
        return cls(
            _table(ingest_dir / "drugs.parquet"),
            _table(ingest_dir / "drug_proteins.parquet"),
            RetrievalIndex.load(index_dir / split),
            split,
        )

    def pair(self, drug_a: str, drug_b: str) -> tuple[DrugRef, DrugRef, list[Evidence]]:
        """The ordered pair's drugs and the evidence retrieved for it."""
        a, b = self.lookup.resolve(drug_a), self.lookup.resolve(drug_b)
        if a.drugbank_id == b.drugbank_id:
            raise InputError(f"pair ({drug_a!r}, {drug_b!r}): both name {a.name} ({a.drugbank_id})")
        return a, b, self.index.retrieve(a.drugbank_id, b.drugbank_id)

    def evidence(self, drug_a: str, drug_b: str) -> dict[str, Any]:
        """The pair, the split and the numbered evidence: ``id``, ``drug_id``, ``source`` (the DrugBank field)
        and ``text`` of each item."""
        a, b, items = self.pair(drug_a, drug_b)
        return {
            "drug_a": _ref(a),
            "drug_b": _ref(b),
            "split": self.split,
            "evidence": [
                {"id": e.id, "drug_id": e.drug_id, "source": e.field, "text": e.sentence} for e in items
            ],
        }

    def audit(self, drug_a: str, drug_b: str, text: str) -> dict[str, Any]:
        """The chain's answer, MFS and each step's verdict with its reason; a text without a valid answer is
        an error."""
        a, b, items = self.pair(drug_a, drug_b)
        score = self.verifier.score(text, a, b, items)
        if score.answer is None:
            raise InputError(f"text: {score.answer_error}")
        return {
            "drug_a": _ref(a),
            "drug_b": _ref(b),
            "split": self.split,
            "answer": score.answer,
            "mfs": score.mfs,
            "n_steps": score.n_steps,
            "n_confirmed": score.n_confirmed,
            "claims": [c.to_dict() for c in score.claims],
        }

    def audit_file(self, path: Path) -> Iterator[tuple[dict[str, Any] | None, str | None]]:
        """(audit record with its ``line`` number, None) for each good line, (None, ``FILE:LINE: problem``)
        for each bad one; blank lines are skipped."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield {"line": n, **self.audit(*_chain_fields(line))}, None
            except MardError as exc:
                yield None, f"{path}:{n}: {exc}"


def format_evidence(record: Mapping[str, Any]) -> str:
    """The evidence of :meth:`Auditor.evidence` as a readable list."""
    a, b = record["drug_a"], record["drug_b"]
    head = f"{a['name']} ({a['drugbank_id']}) + {b['name']} ({b['drugbank_id']})"
    lines = [f"{head}: {len(record['evidence'])} evidence items from the {record['split']} index"]
    lines += [f"  [{e['id']}] {e['text']}  ({e['drug_id']}, {e['source']})" for e in record["evidence"]]
    return "\n".join(lines) + "\n"
