"""The real pipeline on the tiny demo release, in real processes: end to end, cached re-runs, and kills.

Fault injection kills the `mard run` process group (SIGKILL) while teachers write shards and while SFT writes
checkpoints, re-runs, and checks that finished work was reused and that the outputs equal an uninterrupted
run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import psutil
import pytest
import yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "data" / "e2e.yaml"
CLI = "import sys; from mard_core.cli import main; sys.argv = ['mard', *sys.argv[1:]]; main()"


def mard(root: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MARD_ROOT": str(root)}
    for key in [k for k in env if k.startswith(("PREFECT_", "MLFLOW_"))]:
        del env[key]  # each root gets its own SQLite Prefect and MLflow (configure_services)
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_until(root: Path, marker: str, *args: str, stderr: int = subprocess.DEVNULL) -> subprocess.Popen[str]:
    """Start `mard run --config CONFIG *args` in its own process group; return it once a file matching
    ``marker`` appears (on any failure here the group is killed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))} | {
        "MARD_ROOT": str(root)
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "run", "--config", str(CONFIG), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    try:
        while not list(root.glob(marker)):
            assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before {marker} appeared"
            assert time.monotonic() < deadline, f"{marker} never appeared"
            time.sleep(0.2)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return proc


def run_and_kill(root: Path, marker: str) -> None:
    """Start `mard run` and SIGKILL its whole process group as soon as a file matching ``marker`` appears."""
    proc = run_until(root, marker)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stages(root: Path) -> dict[str, dict]:
    result = mard(root, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["stages"]


def trajectories(stage_dir: Path) -> pl.DataFrame:
    files = sorted((stage_dir / "train" / "shards" / "train").glob("*/*.parquet"))
    return pl.read_parquet(files).drop("latency_s").sort("teacher", "drug_a", "drug_b", "sample")


def adapter(stage_dir: Path) -> dict:
    return load_file(str(stage_dir / "run" / "final" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted end-to-end run of the demo pipeline."""
    root = tmp_path_factory.mktemp("clean")
    result = mard(root, "run", "--config", str(CONFIG))
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_end_to_end_then_everything_is_cached(clean_run: Path) -> None:
    first = stages(clean_run)
    assert {s: e["state"] for s, e in first.items()} == dict.fromkeys(first, "completed")
    assert {
        "ingest",
        "gate-ingest",
        "label",
        "splits",
        "index",
        "teachers",
        "prm",
        "sft",
        "sft-no-mirror",
        "dpo",
        "evaluate",
        "register",
    } <= first.keys()
    board = pl.read_parquet(Path(first["evaluate"]["out"]) / "leaderboard.parquet")
    assert {"majority", "knowledge_rules", "student:mard", "student:sft", "student:sft-no-mirror"} <= set(
        board["system"]
    )
    students = board.filter(pl.col("system").str.starts_with("student"))
    assert students["strategy"].unique().to_list() == ["cold_drug"]
    assert (students["no_answer_rate"] < 1).all()  # the warmed-up base learnt the answer format
    registered = json.loads((Path(first["register"]["out"]) / "manifest.json").read_text())
    assert registered["model_name"] == "mard-student" and registered["promoted"] is True
    again = mard(clean_run, "run", "--config", str(CONFIG))
    assert again.returncode == 0, again.stderr[-3000:]
    assert {e["state"] for e in stages(clean_run).values()} == {"cached"}
    forced = mard(clean_run, "run", "--config", str(CONFIG), "--force", "register")
    assert forced.returncode == 0, forced.stderr[-3000:]
    reregistered = json.loads((Path(stages(clean_run)["register"]["out"]) / "manifest.json").read_text())
    assert reregistered["version"] == registered["version"]  # a re-registration finds its model version


def test_predict_uses_the_trained_student(clean_run: Path) -> None:
    result = mard(clean_run, "predict", "Voriconazole", "DB06626", "--json")
    assert result.returncode == 0, result.stderr
    [answer] = [json.loads(line) for line in result.stdout.splitlines()]  # JSON lines, one per pair
    assert answer["drug_a"]["drugbank_id"] == "DB00582" and answer["drug_b"]["name"] == "Axitinib"
    assert answer["system"].startswith("student:")
    model = answer["model"]  # the registered champion answers, with the evaluation it was registered on
    assert (model["source"], model["name"], model["alias"]) == ("champion", "mard-student", "champion")
    assert model["description"] == f"mard-student v{model['version']} (champion)"
    assert Path(model["index"]).parent.parent.name == "index" and Path(model["path"], "config.json").is_file()
    # The demo student is tiny and barely trained: it either answers in the label format or says why not.
    assert answer["label"] is not None or answer["parse_errors"]
    unknown = mard(clean_run, "predict", "Voriconazol", "Axitinbi")  # a typo: close matches are offered
    assert unknown.returncode == 1 and "close matches" in unknown.stderr and "Traceback" not in unknown.stderr


def test_kill_during_teacher_generation_resumes_to_the_same_trajectories(
    clean_run: Path, tmp_path: Path
) -> None:
    run_and_kill(tmp_path, "teachers/.partial-*/train/shards/train/*/00000.parquet")
    written = {
        p: p.stat().st_mtime_ns for p in tmp_path.glob("teachers/.partial-*/train/shards/train/*/*.parquet")
    }
    assert written and not list(tmp_path.glob("teachers/*/manifest.json"))  # nothing looks complete
    result = mard(tmp_path, "run", "--config", str(CONFIG), "--only", "teachers")
    assert result.returncode == 0, result.stderr[-3000:]
    out = Path(stages(tmp_path)["teachers"]["out"])
    for path, mtime in written.items():  # finished shards were reused, not regenerated
        assert (out / path.relative_to(path.parents[4])).stat().st_mtime_ns == mtime
    assert trajectories(out).equals(trajectories(Path(stages(clean_run)["teachers"]["out"])))


def test_kill_during_training_resumes_to_the_same_student(clean_run: Path, tmp_path: Path) -> None:
    run_and_kill(tmp_path, "sft/.partial-*/run/checkpoint-*/trainer_state.json")
    result = mard(tmp_path, "run", "--config", str(CONFIG), "--only", "sft")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed, clean = (
        adapter(Path(stages(tmp_path)["sft"]["out"])),
        adapter(Path(stages(clean_run)["sft"]["out"])),
    )
    assert resumed.keys() == clean.keys()
    for name, tensor in clean.items():
        assert (resumed[name] - tensor).abs().max().item() < 1e-6, name


def test_an_error_inside_the_flow_is_one_line_after_the_progress(tmp_path: Path) -> None:
    """A stage that fails (here: a release whose hash is not the declared version's) prints its error once, as
    one line, with no traceback; the rest of stderr is the stages' progress."""
    from mard_core.synth import write_release

    release = tmp_path / "release.xml.zip"
    write_release(release, 20, seed=1)
    (tmp_path / "verify.yaml").write_text(
        yaml.safe_dump({"release": {"source": str(release), "version": "9.9.9", "verify": True}})
    )
    result = mard(tmp_path, "run", "--config", str(tmp_path / "verify.yaml"), "--until", "ingest")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert lines[-1].startswith("error: ") and "9.9.9" in lines[-1]
    assert sum(line.startswith("error:") for line in lines) == 1
    progress = re.compile(r"\S+ \| INFO +\| (Flow run|Task run) '[^']+' - ")
    assert all(progress.match(line) for line in lines[:-1]), lines[:-1]
    assert not (tmp_path / "ingest").exists()


def test_sigterm_during_the_model_warm_up_stops_the_run_within_seconds(tmp_path: Path) -> None:
    """SIGTERM while the models stage trains: one line, exit 1, within seconds; no server or stage process
    left, nothing that looks complete, the stage shown as interrupted; a rerun continues."""
    proc = run_until(tmp_path, "models/.partial-*/tiny-llama", "--until", "models", stderr=subprocess.PIPE)
    children = psutil.Process(proc.pid).children(recursive=True)  # the temporary Prefect server, the stages
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - start < 10 and proc.returncode == 1
    assert (
        stderr.strip().splitlines()[-1].startswith("error: stopped by SIGTERM") and "Traceback" not in stderr
    )
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [p.cmdline()[:4] for p in alive]
    assert not list(tmp_path.glob("models/*/manifest.json"))
    assert stages(tmp_path)["models"]["state"] == "interrupted"
    again = mard(tmp_path, "run", "--config", str(CONFIG), "--until", "models")
    assert again.returncode == 0, again.stderr[-3000:]
    assert stages(tmp_path)["models"]["state"] == "completed"


def test_the_merged_student_served_by_vllm_answers_as_transformers_does(clean_run: Path) -> None:
    """Production serving: the DPO student's merged weights behind vLLM's OpenAI-compatible server, asked
    through the evaluation harness (the student's own prompts), give the transformers backend's greedy
    answers. Both decode freely: the label-constrained decoder is the in-process transformers path."""
    from mard_core.evaluation.config import EvalConfig
    from mard_core.evaluation.protocol import evaluate_one
    from mard_core.teachers.vllm import default_venv
    from mard_core.training import merged_dir

    if not (default_venv() / "bin" / "python").exists():
        pytest.skip(f"vLLM venv {default_venv()} does not exist: run infra/vllm-env.sh")
    out = {k: e["out"] for k, e in stages(clean_run).items()}
    model = str(merged_dir(out["dpo"]))
    cfg = EvalConfig(max_test_pairs=12, mirror=False, calibrate_on_valid=False)
    specs = {
        "hf": {"name": "student:hf", "max_tokens": 48, "backend": {"backend": "hf", "model": model}},
        "vllm": {
            "name": "student:vllm",
            "max_tokens": 48,
            "backend": {"backend": "vllm", "model": model, "max_model_len": 512},
        },
    }
    answers = {
        k: evaluate_one(spec, "cold_drug", cfg, out["ingest"], out["splits"], out["index"]).predictions
        for k, spec in specs.items()
    }
    assert answers["vllm"].height == answers["hf"].height == 12
    assert answers["vllm"]["prompt_tokens"].to_list() == answers["hf"]["prompt_tokens"].to_list()
    assert answers["vllm"]["pred"].to_list() == answers["hf"]["pred"].to_list()


def test_a_later_release_is_compared_with_the_champion_before_promotion(
    clean_run: Path, tmp_path: Path
) -> None:
    """Kept last in this module: it retrains ``clean_run``'s root on a later release."""
    from mlflow import MlflowClient

    from mard_core.registry import known_drugs
    from mard_core.synth import evolve_release

    first_dir = Path(stages(clean_run)["register"]["out"])
    first = json.loads((first_dir / "manifest.json").read_text())
    later = tmp_path / "later.xml.zip"
    previous = Path(stages(clean_run)["demo-release"]["out"]) / "release.xml.zip"
    evolve_release(previous, later, seed=1, exported_on="2026-07-01")
    cfg = yaml.safe_load(CONFIG.read_text()) | {
        "release": {"source": str(later)},
        "quality": {"max_row_change": 1.0},
    }
    (tmp_path / "later.yaml").write_text(yaml.safe_dump(cfg))
    result = mard(clean_run, "run", "--config", str(tmp_path / "later.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = Path(stages(clean_run)["register"]["out"])
    registered = json.loads((out / "manifest.json").read_text())
    comparison = registered["comparison"]
    assert (
        registered["champion_version"] == first["version"]
        and int(registered["version"]) == int(first["version"]) + 1
    )
    assert comparison["basis"] == "drug-unseen-by-champion" and comparison["n_pairs"] > 0
    # Both models answered the same pairs, each with a drug the champion never trained on.
    answers = {p.stem: pl.read_parquet(p) for p in (out / "comparison" / "predictions").glob("*.parquet")}
    new, old = answers["student_mard_new__cold_drug"], answers["student_mard_champion__cold_drug"]
    assert (
        new.select("query_a", "query_b").equals(old.select("query_a", "query_b"))
        and new.height == comparison["n_pairs"]
    )
    seen = set(known_drugs(pl.read_parquet(first_dir / "known_pairs.parquet")).to_list())
    assert all(a not in seen or b not in seen for a, b in new.select("drug_a", "drug_b").iter_rows())
    expected = comparison["diff_ci95"][0] > -0.02 or (
        comparison["new_only_correct"] == comparison["champion_only_correct"] == 0
    )
    assert registered["promoted"] is expected is comparison["promote"]
    client = MlflowClient(tracking_uri=f"sqlite:///{clean_run / '.services' / 'mlflow.db'}")
    version = client.get_model_version("mard-student", str(registered["version"]))
    assert (
        version.tags["release_exported_on"] == "2026-07-01"
        and version.tags["comparison_basis"] == "drug-unseen-by-champion"
    )
    champion = client.get_model_version_by_alias("mard-student", "champion")
    assert str(champion.version) == str(registered["version"] if expected else first["version"])
