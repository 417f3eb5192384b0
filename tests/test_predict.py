"""Prediction: drug resolution (id, name, synonym, salt, case), unknown drugs with close matches, voriconazole +
axitinib on the real-drug fixture with quoted evidence, the student path, output formats and pair files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_evaluate import EchoBackend

from mard_core.errors import InputError
from mard_core.evaluation.catalog import BackendSystem
from mard_core.predict import (
    FALLBACK_NOTE,
    UnknownDrugError,
    format_json,
    format_text,
    load_calibrator,
    load_system,
    predict_pairs,
    read_pairs,
    resolve_drug,
)
from mard_core.prompts import DrugRef
from mard_core.retrieval import RetrievalIndex


@pytest.fixture(scope="module")
def index(real_world: dict[str, Any]) -> RetrievalIndex:
    return RetrievalIndex.load(real_world["root"] / "index" / "random")


@pytest.mark.parametrize("text", ["DB00582", "db00582", "APRD00373", "Voriconazole", "  VORICONAZOLE ",
                                  "voriconazol", "Voriconazolum"])
def test_resolve_voriconazole_by_id_name_synonym_and_case(real_world: dict[str, Any], text: str) -> None:
    assert resolve_drug(text, real_world["drugs"]) == DrugRef("DB00582", "Voriconazole")


def test_resolve_salt_names_and_errors(real_world: dict[str, Any]) -> None:
    drugs = real_world["drugs"]
    assert resolve_drug("citalopram HYDROBROMIDE", drugs) == DrugRef("DB00215", "Citalopram")
    with pytest.raises(UnknownDrugError, match=r"'vorconazole'.*close matches: Voriconazole \(DB00582\)"):
        resolve_drug("vorconazole", drugs)
    with pytest.raises(UnknownDrugError, match="not in the drugs table$"):
        resolve_drug("xyzzy", drugs)
    clash = pl.DataFrame({"drugbank_id": ["DB1", "DB2"], "name": ["Alpha", "Beta"], "synonyms": [["Gamma"], ["Gamma"]]})
    with pytest.raises(InputError, match="ambiguous.*Alpha \\(DB1\\), Beta \\(DB2\\)"):
        resolve_drug("gamma", clash)
    assert resolve_drug("alpha", clash).drugbank_id == "DB1"


def test_voriconazole_axitinib_answer_quotes_its_evidence(real_world: dict[str, Any],
                                                         index: RetrievalIndex) -> None:
    system, note = load_system()
    assert note == FALLBACK_NOTE
    [result] = predict_pairs([("voriconazole", "Axitinib")], system, index, real_world["drugs"], note=note)
    assert result["drug_a"] == {"drugbank_id": "DB00582", "name": "Voriconazole"}
    assert result["drug_b"] == {"drugbank_id": "DB06626", "name": "Axitinib"}
    assert result["label"].startswith("PK Metabolism/Metabolism/")
    assert (result["family"], result["direction"], result["modality"]) == ("PK Metabolism", "A to B", "Inhibition")
    assert 0.0 < result["confidence"] <= 1.0 and result["calibrated_confidence"] is None
    assert result["system"] == "knowledge_rules" and result["note"] == FALLBACK_NOTE
    evidence = {e.id: e.sentence for e in index.retrieve("DB00582", "DB06626")}
    cited = [c for step in result["steps"] for c in step["citations"]]
    assert len(result["steps"]) >= 2 and cited
    assert all(c["quote"] == evidence[c["id"]] for c in cited)
    assert "Voriconazole is an inhibitor of" in result["steps"][0]["text"]
    text = format_text(result)
    assert "Voriconazole (DB00582) + Axitinib (DB06626)" in text and "(uncalibrated)" in text
    assert f'"{cited[0]["quote"]}"' in text and FALLBACK_NOTE in text
    assert json.loads(format_json([result]))["label"] == result["label"]
    [reverse] = predict_pairs([("DB06626", "DB00582")], system, index, real_world["drugs"])
    assert reverse["direction"] == "B to A" and reverse["direction_text"] == "Voriconazole affects Axitinib"


def test_student_path_and_calibration(real_world: dict[str, Any], index: RetrievalIndex,
                                      tmp_path: Path) -> None:
    text = ("Step 1: Voriconazole is an inhibitor of CYP3A4 [E99].\n"
            "ANSWER: PK Metabolism/Metabolism/<dir_ab>/Inhibition | confidence 0.80\n")
    student = BackendSystem(EchoBackend(text), "student:echo", "student")
    pl.DataFrame({"confidence": [0.2, 0.8, 0.9], "correct": [False, True, True]}).write_parquet(tmp_path / "c.parquet")
    [result] = predict_pairs([("Voriconazole", "Axitinib")], student, index, real_world["drugs"],
                             calibrator=load_calibrator(tmp_path / "c.parquet"))
    assert result["label"] == "PK Metabolism/Metabolism/A to B/Inhibition" and result["note"] is None
    assert result["confidence"] == 0.8 and result["calibrated_confidence"] == 1.0
    assert result["steps"][0]["citations"] == [{"id": "E99", "quote": None, "source": None, "drug_id": None}]
    assert "cites unknown evidence E99" in " ".join(result["parse_errors"])
    assert "(calibrated; raw 0.80)" in format_text(result) and "not among the evidence" in format_text(result)
    with pytest.raises(InputError, match="both name Voriconazole"):
        predict_pairs([("Voriconazole", "DB00582")], student, index, real_world["drugs"])
    with pytest.raises(InputError, match="not both"):
        load_system(model="x", backend={"backend": "hf", "model": "x"})


def test_read_pair_files(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("drug_a,drug_b\nvoriconazole,axitinib\nDB00582, DB00196\n")
    (tmp_path / "p.tsv").write_text("voriconazole\taxitinib\n")
    (tmp_path / "p.jsonl").write_text('{"drug_a": "voriconazole", "drug_b": "axitinib"}\n\n["a", "b"]\n')
    assert read_pairs(tmp_path / "p.csv") == [("voriconazole", "axitinib"), ("DB00582", "DB00196")]
    assert read_pairs(tmp_path / "p.tsv") == [("voriconazole", "axitinib")]
    assert read_pairs(tmp_path / "p.jsonl") == [("voriconazole", "axitinib"), ("a", "b")]
    (tmp_path / "bad.csv").write_text("voriconazole,axitinib,warfarin\n")
    with pytest.raises(InputError, match="bad.csv:1: expected two drugs"):
        read_pairs(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(InputError, match="bad.jsonl:1: not JSON"):
        read_pairs(tmp_path / "bad.jsonl")
    with pytest.raises(InputError, match="must end in"):
        read_pairs(tmp_path / "p.txt")
