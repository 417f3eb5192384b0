"""Prediction: drug resolution (id, name, synonym, salt, case), unknown drugs with close matches,
voriconazole + axitinib on the real-drug fixture with quoted evidence, the student path, output formats and
pair files."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from mlflow import MlflowClient
from test_cli import one_line_error, run_main
from test_evaluate import EchoBackend

from mard_core import runlog
from mard_core.errors import InputError, MardError
from mard_core.evaluation.catalog import BackendSystem
from mard_core.evaluation.student import StudentSystem
from mard_core.predict import (
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
from mard_core.registry import MERGED_ARTIFACT
from mard_core.retrieval import RetrievalIndex
from mard_core.stage import StageRun, run_stage
from mard_core.students import choose
from mard_core.training import merged_dir


@pytest.fixture(scope="module")
def index(real_world: dict[str, Any]) -> RetrievalIndex:
    return RetrievalIndex.load(real_world["root"] / "index" / "random")


@pytest.mark.parametrize(
    "text",
    ["DB00582", "db00582", "APRD00373", "Voriconazole", "  VORICONAZOLE ", "voriconazol", "Voriconazolum"],
)
def test_resolve_voriconazole_by_id_name_synonym_and_case(real_world: dict[str, Any], text: str) -> None:
    assert resolve_drug(text, real_world["drugs"]) == DrugRef("DB00582", "Voriconazole")


def test_resolve_salt_names_and_errors(real_world: dict[str, Any]) -> None:
    drugs = real_world["drugs"]
    assert resolve_drug("citalopram HYDROBROMIDE", drugs) == DrugRef("DB00215", "Citalopram")
    with pytest.raises(UnknownDrugError, match=r"'vorconazole'.*close matches: Voriconazole \(DB00582\)"):
        resolve_drug("vorconazole", drugs)
    with pytest.raises(UnknownDrugError, match="not in the drugs table$"):
        resolve_drug("xyzzy", drugs)
    clash = pl.DataFrame(
        {"drugbank_id": ["DB1", "DB2"], "name": ["Alpha", "Beta"], "synonyms": [["Gamma"], ["Gamma"]]}
    )
    with pytest.raises(InputError, match="ambiguous.*Alpha \\(DB1\\), Beta \\(DB2\\)"):
        resolve_drug("gamma", clash)
    assert resolve_drug("alpha", clash).drugbank_id == "DB1"


def test_voriconazole_axitinib_answer_quotes_its_evidence(
    real_world: dict[str, Any], index: RetrievalIndex
) -> None:
    system = load_system(baseline="knowledge_rules")
    [result] = predict_pairs([("voriconazole", "Axitinib")], system, index, real_world["drugs"])
    assert result["drug_a"] == {"drugbank_id": "DB00582", "name": "Voriconazole"}
    assert result["drug_b"] == {"drugbank_id": "DB06626", "name": "Axitinib"}
    assert result["label"].startswith("PK Metabolism/Metabolism/")
    assert (result["family"], result["direction"], result["modality"]) == (
        "PK Metabolism",
        "A to B",
        "Inhibition",
    )
    assert 0.0 < result["confidence"] <= 1.0 and result["calibrated_confidence"] is None
    assert result["system"] == "knowledge_rules" and result["model"] is None
    evidence = {e.id: e.sentence for e in index.retrieve("DB00582", "DB06626")}
    cited = [c for step in result["steps"] for c in step["citations"]]
    assert len(result["steps"]) >= 2 and cited
    assert all(c["quote"] == evidence[c["id"]] for c in cited)
    assert "Voriconazole is an inhibitor of" in result["steps"][0]["text"]
    text = format_text(result)
    assert "Voriconazole (DB00582) + Axitinib (DB06626)" in text and "(uncalibrated)" in text
    assert f'"{cited[0]["quote"]}"' in text and "System: knowledge_rules" in text
    assert json.loads(format_json([result]))["label"] == result["label"]
    [reverse] = predict_pairs([("DB06626", "DB00582")], system, index, real_world["drugs"])
    assert reverse["direction"] == "B to A" and reverse["direction_text"] == "Voriconazole affects Axitinib"


def test_student_path_and_calibration(
    real_world: dict[str, Any], index: RetrievalIndex, tmp_path: Path
) -> None:
    text = (
        "Step 1: Voriconazole is an inhibitor of CYP3A4 [E99].\n"
        "ANSWER: PK Metabolism/Metabolism/<dir_ab>/Inhibition | confidence 0.80\n"
    )
    student = BackendSystem(EchoBackend(text), "student:echo", "student")
    pl.DataFrame({"confidence": [0.2, 0.8, 0.9], "correct": [False, True, True]}).write_parquet(
        tmp_path / "c.parquet"
    )
    [result] = predict_pairs(
        [("Voriconazole", "Axitinib")],
        student,
        index,
        real_world["drugs"],
        calibrator=load_calibrator(tmp_path / "c.parquet"),
    )
    assert result["label"] == "PK Metabolism/Metabolism/A to B/Inhibition" and result["model"] is None
    assert result["confidence"] == 0.8 and result["calibrated_confidence"] == 1.0
    assert result["steps"][0]["citations"] == [{"id": "E99", "quote": None, "source": None, "drug_id": None}]
    assert "cites unknown evidence E99" in " ".join(result["parse_errors"])
    assert "(calibrated; raw 0.80)" in format_text(result) and "not among the evidence" in format_text(result)
    with pytest.raises(InputError, match="both name Voriconazole"):
        predict_pairs([("Voriconazole", "DB00582")], student, index, real_world["drugs"])
    with pytest.raises(InputError, match="exactly one"):
        load_system(model="x", backend={"backend": "hf", "model": "x"})
    with pytest.raises(InputError, match="exactly one"):
        load_system()


def test_read_pair_files(tmp_path: Path, real_world: dict[str, Any]) -> None:
    drugs = real_world["drugs"]
    (tmp_path / "p.csv").write_text("drug_a,drug_b\nvoriconazole,axitinib\nDB00582, DB00196\n")
    (tmp_path / "p.tsv").write_text("voriconazole\taxitinib\n")
    (tmp_path / "p.jsonl").write_text('{"drug_a": "voriconazole", "drug_b": "axitinib"}\n\n["a", "b"]\n')
    assert read_pairs(tmp_path / "p.csv", drugs) == [("voriconazole", "axitinib"), ("DB00582", "DB00196")]
    assert read_pairs(tmp_path / "p.tsv", drugs) == [("voriconazole", "axitinib")]
    assert read_pairs(tmp_path / "p.jsonl", drugs) == [("voriconazole", "axitinib"), ("a", "b")]
    (tmp_path / "bad.csv").write_text("voriconazole,axitinib,warfarin\n")
    with pytest.raises(InputError, match="bad.csv:1: expected two drugs"):
        read_pairs(tmp_path / "bad.csv", drugs)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(InputError, match="bad.jsonl:1: not JSON"):
        read_pairs(tmp_path / "bad.jsonl", drugs)
    with pytest.raises(InputError, match="must end in"):
        read_pairs(tmp_path / "p.txt", drugs)


def test_pair_file_header_rule(tmp_path: Path, real_world: dict[str, Any]) -> None:
    drugs = real_world["drugs"]
    (tmp_path / "named.csv").write_text(
        "\nDrug A , Drug-B\nvoriconazole,axitinib\n"
    )  # a known header, any spelling
    assert read_pairs(tmp_path / "named.csv", drugs) == [("voriconazole", "axitinib")]
    (tmp_path / "unknown.csv").write_text("first,second\nvoriconazole,axitinib\n")
    with pytest.raises(
        InputError, match=r"unknown.csv:1: neither 'first' nor 'second' is a known drug.*drug_a,drug_b"
    ):
        read_pairs(tmp_path / "unknown.csv", drugs)
    (tmp_path / "typo.tsv").write_text(
        "vorconazole\taxitinib\nDB00582\tDB00196\n"
    )  # one known drug: a data row
    assert read_pairs(tmp_path / "typo.tsv", drugs) == [("vorconazole", "axitinib"), ("DB00582", "DB00196")]
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00voriconazole")
    with pytest.raises(InputError, match="binary.csv: not UTF-8 text"):
        read_pairs(tmp_path / "binary.csv", drugs)


def test_errors_echo_at_most_80_characters_of_a_name(real_world: dict[str, Any]) -> None:
    with pytest.raises(UnknownDrugError) as caught:
        resolve_drug("x" * 100_000, real_world["drugs"])
    assert str(caught.value) == f"drug '{'x' * 78}… is not in the drugs table"


# Pipeline outputs as the stages write them (manifest last, inputs naming upstream keys), with real tables,
# indexes and a real (tiny) student, for the model choice of `mard predict`.

OLD, NEW = "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"


def stage(
    root: Path,
    name: str,
    inputs: dict[str, str],
    config: Any = None,
    created: str = OLD,
    files: Callable[[Path], object] = lambda work: None,
) -> Path:
    def build(work: Path) -> dict[str, str]:
        files(work)
        return {"created": created}

    return run_stage(StageRun(name, "1", config or {}, inputs, root), build)


def calibration(path: Path, confidence: float) -> None:
    path.mkdir()
    pl.DataFrame({"confidence": [confidence], "correct": [True]}).write_parquet(
        path / "student_mard__cold_drug.parquet"
    )


def pipeline(
    root: Path, world: dict[str, Any], base: Path, created: str = OLD, seed: int = 0
) -> dict[str, Path]:
    """ingest → index → teachers → prm → dpo (merged student) → its evaluation (with calibration) →
    evaluate."""
    out = {
        "ingest": stage(
            root,
            "ingest",
            {"source": f"release-{seed}"},
            created=created,
            files=lambda w: shutil.copy(world["root"] / "ingest" / "drugs.parquet", w),
        )
    }
    out["index"] = stage(
        root,
        "index",
        {"ingest": out["ingest"].name},
        created=created,
        files=lambda w: [
            shutil.copytree(world["root"] / "index" / s, w / s) for s in ("random", "cold_drug")
        ],
    )
    out["teachers"] = stage(root, "teachers", {"index": out["index"].name}, {"split": "cold_drug"}, created)
    out["prm"] = stage(
        root, "prm", {"ingest": out["ingest"].name, "teachers": out["teachers"].name}, created=created
    )
    out["dpo"] = stage(
        root,
        "dpo",
        {"prm": out["prm"].name, "ingest": out["ingest"].name},
        {"seed": seed},
        created,
        files=lambda w: shutil.copytree(base, merged_dir(w)),
    )
    out["eval"] = evaluation(root, out, created, confidence=0.3)
    out["evaluate"] = stage(root, "evaluate", {out["eval"].parent.name: out["eval"].name}, created=created)
    return out


def evaluation(root: Path, out: dict[str, Path], created: str, confidence: float, pairs: int = 24) -> Path:
    config = {
        "system": {"name": "student:mard", "model": "{dpo}"},
        "strategy": "cold_drug",
        "split": "cold_drug",
        "evaluation": {"max_test_pairs": pairs},
    }
    inputs = {"ingest": out["ingest"].name, "index": out["index"].name, "dpo": out["dpo"].name}
    return stage(
        root,
        "eval-student_mard__cold_drug",
        inputs,
        config,
        created,
        lambda w: calibration(w / "calibration", confidence),
    )


@pytest.fixture(autouse=True)
def no_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No MLflow registry unless a test asks for one (a SQLite store that does not exist)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'no-mlflow.db'}")


def test_newest_completed_student_not_the_latest_run(
    tmp_path: Path, real_world: dict[str, Any], student_base: Path
) -> None:
    root = tmp_path / "runs"
    done = pipeline(root, real_world, student_base)
    damaged = pipeline(root, real_world, student_base, created=NEW, seed=1)  # newer, then a file lost
    (merged_dir(damaged["dpo"]) / "config.json").unlink()
    (root / "dpo" / "0123456789abcdef").mkdir()  # an output that never finished: no manifest
    runlog.record(root, "later-run", "dpo", state="failed", out=str(damaged["dpo"]))
    choice = choose(root)
    assert (choice.source, choice.model, choice.split) == (
        "newest-completed",
        merged_dir(done["dpo"]),
        "cold_drug",
    )
    assert choice.description == f"{merged_dir(done['dpo'])} (newest completed student)"
    assert (choice.ingest, choice.index) == (done["ingest"], done["index"] / "cold_drug")
    assert choice.calibration == done["eval"] / "calibration" / "student_mard__cold_drug.parquet"
    assert choice.summary()["student"] == f"dpo/{done['dpo'].name}"


def test_a_student_never_evaluated_uses_its_training_data_uncalibrated(
    tmp_path: Path, real_world: dict[str, Any], student_base: Path
) -> None:
    root = tmp_path / "runs"
    out = pipeline(root, real_world, student_base)
    pipeline(root, real_world, student_base, created=NEW, seed=1)  # another run's newer data
    shutil.rmtree(out["eval"])
    choice = choose(root, model=str(out["dpo"]), split="random")
    assert (choice.ingest, choice.index) == (out["ingest"], out["index"] / "random")  # through prm → teachers
    assert (choice.split, choice.calibration) == ("random", None)


def test_explicit_model_directory(tmp_path: Path, real_world: dict[str, Any], student_base: Path) -> None:
    root = tmp_path / "runs"
    first = pipeline(root, real_world, student_base)
    second = pipeline(root, real_world, student_base, created=NEW, seed=1)
    for given in (merged_dir(first["dpo"]), first["dpo"]):  # the merged student, or the dpo output holding it
        choice = choose(root, model=str(given))
        assert (choice.source, choice.model, choice.ingest) == (
            "directory",
            merged_dir(first["dpo"]),
            first["ingest"],
        )
        assert choice.calibration == first["eval"] / "calibration" / "student_mard__cold_drug.parquet"
    outside = choose(root, model=str(student_base))  # not a pipeline output: the newest data, uncalibrated
    assert (outside.model, outside.index, outside.calibration) == (
        student_base,
        second["index"] / "cold_drug",
        None,
    )
    assert outside.description == f"{student_base} (--model; not a pipeline output: uncalibrated)"
    with pytest.raises(InputError, match="not a model directory"):
        choose(root, model=str(tmp_path))


def test_no_model_is_an_error_unless_a_baseline_is_asked_for(
    tmp_path: Path, real_world: dict[str, Any], student_base: Path
) -> None:
    root = tmp_path / "runs"
    out = pipeline(root, real_world, student_base)
    shutil.rmtree(out["dpo"])
    with pytest.raises(InputError, match=r"no student model: no mard-student@champion .* run `mard run`"):
        choose(root)
    choice = choose(root, baseline="knowledge_rules")
    assert (choice.source, choice.model, choice.baseline, choice.calibration) == (
        "baseline",
        None,
        "knowledge_rules",
        None,
    )
    assert choice.description == "knowledge_rules baseline (--baseline; no language model)"
    with pytest.raises(InputError, match="expected one of knowledge_rules"):
        choose(root, baseline="majority")
    with pytest.raises(InputError, match="not both"):
        choose(root, model="x", baseline="knowledge_rules")


@pytest.fixture(scope="module")
def registered(
    tmp_path_factory: pytest.TempPathFactory, real_world: dict[str, Any], student_base: Path
) -> dict[str, Any]:
    """A pipeline whose student is version 1 of mard-student (merged weights as its run's artifact, lineage
    tags as tasks/register.py sets them) and the champion; its student was evaluated again later with other
    settings."""
    base = tmp_path_factory.mktemp("registry")
    root = base / "runs"
    out = pipeline(root, real_world, student_base)
    out["later-eval"] = evaluation(
        root, out, NEW, confidence=0.9, pairs=5
    )  # not the one the registry compared
    uri = f"sqlite:///{base / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("mard", artifact_location=str(base / "artifacts")))
    client.log_artifacts(run.info.run_id, str(student_base), artifact_path=MERGED_ARTIFACT)
    client.create_registered_model("mard-student")
    tags = {
        "dpo_key": out["dpo"].name,
        "evaluate_key": out["evaluate"].name,
        "split": "cold_drug",
        "input_prm": out["prm"].name,
        "input_ingest": out["ingest"].name,
    }
    version = client.create_model_version(
        "mard-student", f"{run.info.artifact_uri}/{MERGED_ARTIFACT}", run.info.run_id, tags=tags
    )
    client.set_registered_model_alias("mard-student", "champion", version.version)
    return {"root": root, "uri": uri, "out": out, "version": version.version, "run_id": run.info.run_id}


@pytest.fixture
def registry(
    registered: dict[str, Any], monkeypatch: pytest.MonkeyPatch, no_registry: None
) -> dict[str, Any]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered["uri"])
    return registered


def test_the_champion_answers_by_default_with_its_own_calibration(
    registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, out = registry["root"], registry["out"]
    choice = choose(root)
    assert (choice.source, choice.description) == ("champion", "mard-student v1 (champion)")
    assert choice.summary() | {"path": None} == {
        "source": "champion",
        "description": "mard-student v1 (champion)",
        "name": "mard-student",
        "version": "1",
        "alias": "champion",
        "uri": "models:/mard-student@champion",
        "path": None,
        "student": f"dpo/{out['dpo'].name}",
        "split": "cold_drug",
        "ingest": str(out["ingest"]),
        "index": str(out["index"] / "cold_drug"),
        "calibration": str(out["eval"] / "calibration" / "student_mard__cold_drug.parquet"),
    }  # not the later one
    assert choice.model == root / ".cache" / "models" / "mard-student" / f"v1-{registry['run_id']}"
    assert (choice.weights() / "config.json").is_file()  # downloaded once into the cache ...
    monkeypatch.setattr("mlflow.artifacts.download_artifacts", lambda **kw: pytest.fail("downloaded again"))
    assert choose(root).weights() == choice.model  # ... and found there the next time
    newest = choose(root, model=str(out["dpo"]))  # the same student as a directory: its newest evaluation
    assert newest.calibration == out["later-eval"] / "calibration" / "student_mard__cold_drug.parquet"


@pytest.mark.parametrize("uri", ["models:/mard-student/1", "models:/mard-student@champion"])
def test_a_registered_version_by_uri(registry: dict[str, Any], uri: str) -> None:
    choice = choose(registry["root"], model=uri)
    assert (choice.source, choice.description, choice.summary()["uri"]) == (
        "registry",
        f"mard-student v1 ({uri})",
        uri,
    )
    assert choice.ingest == registry["out"]["ingest"] and choice.calibration is not None


def test_registry_errors(registry: dict[str, Any], tmp_path: Path) -> None:
    for uri in ("models:/mard-student/7", "models:/nobody@champion"):
        with pytest.raises(InputError, match=f"{uri}: no such registered model version"):
            choose(registry["root"], model=uri)
    with pytest.raises(InputError, match="expected models:/NAME@ALIAS or models:/NAME/VERSION"):
        choose(registry["root"], model="models:/mard-student")
    elsewhere = (
        tmp_path / "runs"
    )  # the champion's pipeline outputs are not under this root: no mixing, no fallback
    elsewhere.mkdir()
    with pytest.raises(
        MardError, match=r"mard-student v1 \(champion\): the ingest and retrieval index .* not under"
    ):
        choose(elsewhere)


@pytest.fixture
def short_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's student writes 8 tokens (the random-init tiny student never stops by itself: 256 take
    ~10 s)."""
    monkeypatch.setattr("mard_core.predict.load_system", functools.partial(load_system, max_tokens=8))


def test_cli_names_the_model_and_loads_it_once_per_batch(
    tmp_path: Path,
    real_world: dict[str, Any],
    student_base: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    short_answers: None,
) -> None:
    root = tmp_path / "runs"
    out = pipeline(root, real_world, student_base)
    code, text, err = run_main(
        monkeypatch, capsys, "predict", "voriconazole", "axitinib", "--root", str(root)
    )
    assert code == 0, err
    assert text.startswith("Voriconazole (DB00582) + Axitinib (DB06626)\n")
    assert text.rstrip().endswith(f"\n  Model: {merged_dir(out['dpo'])} (newest completed student)")
    loads = []
    init = StudentSystem.__init__
    monkeypatch.setattr(StudentSystem, "__init__", lambda s, *a, **k: loads.append(a) or init(s, *a, **k))
    (tmp_path / "pairs.csv").write_text("drug_a,drug_b\nvoriconazole,axitinib\nDB06626,DB00582\n")
    code, lines, err = run_main(
        monkeypatch, capsys, "predict", "--input", str(tmp_path / "pairs.csv"), "--json", "--root", str(root)
    )
    answers = [json.loads(line) for line in lines.splitlines()]
    assert code == 0 and len(answers) == 2 and len(loads) == 1, err
    assert answers[0]["model"] == answers[1]["model"] == choose(root).summary()
    assert answers[0]["model"]["source"] == "newest-completed" and answers[1]["drug_a"]["name"] == "Axitinib"


def test_cli_champion_baseline_and_no_model(
    registry: dict[str, Any],
    tmp_path: Path,
    real_world: dict[str, Any],
    student_base: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    short_answers: None,
) -> None:
    code, text, err = run_main(
        monkeypatch, capsys, "predict", "voriconazole", "axitinib", "--root", str(registry["root"])
    )
    assert code == 0 and text.rstrip().endswith("\n  Model: mard-student v1 (champion)"), err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none.db'}")
    root = tmp_path / "runs"
    shutil.rmtree(pipeline(root, real_world, student_base)["dpo"])
    code, _, err = run_main(monkeypatch, capsys, "predict", "voriconazole", "axitinib", "--root", str(root))
    assert one_line_error(code, err, "no student model", "--baseline knowledge_rules")
    code, text, err = run_main(
        monkeypatch,
        capsys,
        "predict",
        "voriconazole",
        "axitinib",
        "--baseline",
        "knowledge_rules",
        "--root",
        str(root),
    )
    assert code == 0 and "(uncalibrated)" in text, err
    assert text.rstrip().endswith("\n  Model: knowledge_rules baseline (--baseline; no language model)")
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "predict",
        "[b]" + "x" * 100_000,
        "axitinib",
        "--baseline",
        "knowledge_rules",
        "--root",
        str(root),
    )
    assert one_line_error(code, err, "drug '[b]xxx") and len(err) < 200  # echoed short, not read as markup
