"""`mard evidence` and `mard audit` on a small data root (the real-drug fixture's ingest and index outputs
recorded as the latest run): the evidence is the evaluation's retrieval, chains get MFS against their own
answers, and bad lines are reported one per line, naming the file and line, with exit code 1."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_cli import mard
from typer.testing import CliRunner

from mard_core.audit import Auditor, format_evidence
from mard_core.cli import app
from mard_core.errors import InputError
from mard_core.metrics.mfs import CONFIRMED
from mard_core.metrics.mfs_validation import ADVERSARIES, COPY_EVIDENCE, WRONG_ANSWERS, gold_chain
from mard_core.predict import UnknownDrugError
from mard_core.prompts import DrugRef
from mard_core.retrieval import RetrievalIndex
from mard_core.stage import materialize
from mard_core.teachers.knowledge import KnowledgeTeacher

VORI, AXI = DrugRef("DB00582", "Voriconazole"), DrugRef("DB06626", "Axitinib")
GOLD = "PK Metabolism/Metabolism/A to B/Inhibition"


@pytest.fixture(scope="module")
def root(real_world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root whose newest complete ingest and index outputs are the fixture world's."""
    r = tmp_path_factory.mktemp("audit_root")

    def copy(stage: str) -> Callable[[Path], dict[str, Any]]:
        return lambda work: (shutil.copytree(real_world["root"] / stage, work, dirs_exist_ok=True), {})[1]

    materialize(r / "ingest" / ("0" * 16), copy("ingest"), {"stage": "ingest", "inputs": {}})
    materialize(r / "index" / ("1" * 16), copy("index"), {"stage": "index", "inputs": {"ingest": "0" * 16}})
    return r


@pytest.fixture(scope="module")
def auditor(real_world: dict[str, Any]) -> Auditor:
    return Auditor.load(real_world["root"] / "ingest", real_world["root"] / "index", "random")


def test_evidence_json_is_the_evaluations_retrieval(root: Path, real_world: dict[str, Any]) -> None:
    result = mard(
        "evidence", "voriconazole", "DB06626", "--split", "random", "--json", "--root", str(root), root=root
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    expected = RetrievalIndex.load(real_world["root"] / "index" / "random").retrieve(
        VORI.drugbank_id, AXI.drugbank_id
    )
    assert record["drug_a"] == {"drugbank_id": VORI.drugbank_id, "name": VORI.name}
    assert (
        record["drug_b"] == {"drugbank_id": AXI.drugbank_id, "name": AXI.name} and record["split"] == "random"
    )
    assert record["evidence"] == [
        {"id": e.id, "drug_id": e.drug_id, "source": e.field, "text": e.sentence} for e in expected
    ]
    assert [e["id"] for e in record["evidence"]] == [f"E{i}" for i in range(1, len(expected) + 1)]


def test_evidence_text_and_bad_input(
    root: Path, real_world: dict[str, Any], auditor: Auditor, tmp_path: Path
) -> None:
    out = CliRunner().invoke(
        app, ["evidence", "Axitinib", "Voriconazolum", "--split", "random", "--root", str(root)]
    )
    assert out.exit_code == 0, out.output
    record = auditor.evidence("Axitinib", "Voriconazolum")
    assert out.output == format_evidence(record)
    first = record["evidence"][0]
    assert out.output.startswith("Axitinib (DB06626) + Voriconazole (DB00582): ")
    assert f"  [E1] {first['text']}  ({first['drug_id']}, {first['source']})\n" in out.output
    with pytest.raises(
        UnknownDrugError, match=r"'vorconazole' is not in the drugs table; close matches: Vori"
    ):
        auditor.evidence("vorconazole", "axitinib")
    with pytest.raises(InputError, match="both name Voriconazole"):
        auditor.evidence("APRD00373", "DB00582")
    with pytest.raises(
        InputError, match=r"no retrieval index for split 'temporal' \(have: cold_drug, random\)"
    ):
        Auditor.load(real_world["root"] / "ingest", real_world["root"] / "index", "temporal")
    empty = CliRunner().invoke(app, ["evidence", "a", "b", "--root", str(tmp_path)])
    assert isinstance(empty.exception, InputError) and "no ingested release" in str(empty.exception)
    with pytest.raises(InputError, match="nope.jsonl: cannot read"):
        list(auditor.audit_file(tmp_path / "nope.jsonl"))


def test_audit_scores_chains_and_reports_bad_lines(
    root: Path, real_world: dict[str, Any], auditor: Auditor, tmp_path: Path
) -> None:
    _, _, evidence = auditor.pair("Voriconazole", "Axitinib")
    gold = gold_chain(VORI, AXI, GOLD, evidence, KnowledgeTeacher())
    assert gold is not None
    copied = ADVERSARIES[COPY_EVIDENCE](gold, real_world["facts"])
    assert copied is not None
    lines = [
        json.dumps({"drug_a": "voriconazole", "drug_b": "Axitinib", "text": gold.text}),
        json.dumps({"drug_a": "DB00582", "drug_b": "DB06626", "text": copied.text}),
        "{not json",
        "",
        json.dumps({"drug_a": "vorconazole", "drug_b": "Axitinib", "text": gold.text}),
        json.dumps({"drug_a": "Voriconazole", "drug_b": "Axitinib"}),
        json.dumps({"drug_a": "Voriconazole", "drug_b": "Axitinib", "text": gold.text.split("ANSWER")[0]}),
        json.dumps(["Voriconazole", "Axitinib"]),
    ]
    path = tmp_path / "chains.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = mard("audit", "--input", str(path), "--split", "random", "--root", str(root), root=root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    honest, gamed = (json.loads(line) for line in result.stdout.splitlines())
    assert (honest["line"], honest["answer"], honest["mfs"], honest["split"]) == (1, GOLD, 1.0, "random")
    assert honest["drug_a"] == {"drugbank_id": VORI.drugbank_id, "name": VORI.name}
    assert {c["verdict"] for c in honest["claims"]} == {CONFIRMED} and honest["n_steps"] == len(
        honest["claims"]
    ) > 1
    assert (gamed["line"], gamed["answer"]) == (2, WRONG_ANSWERS[0]) and gamed["mfs"] <= 0.3
    assert all(
        "bears on nothing in the answer" in c["reason"] for c in gamed["claims"] if c["verdict"] != CONFIRMED
    )
    errors = result.stderr.strip().splitlines()
    assert errors == [
        f"error: {path}:3: not JSON: Expecting property name enclosed in double quotes",
        f"error: {path}:5: drug 'vorconazole' is not in the drugs table; close matches: "
        + errors[1].split("close matches: ", 1)[1],
        f"error: {path}:6: missing key(s) text",
        f"error: {path}:7: text: no ANSWER line",
        f"error: {path}:8: expected an object with keys drug_a, drug_b, text",
    ]
