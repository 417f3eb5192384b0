"""The `mard` command line: real subprocesses for exit codes and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mard_core.releases import load_registry
from mard_core.synth import write_release


def mard(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from mard_core.cli import main; sys.argv = ['mard', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args, "--root", str(root)] if args[0] in ("verify", "ingest", "run")
                          else [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def demo_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "release.xml.zip"
    write_release(out, 400, 0)
    return out


def test_demo_release_hash_is_registered(demo_release: Path, tmp_path: Path) -> None:
    entry = load_registry()["demo-400-0"]
    assert demo_release.stat().st_size == entry.size
    result = mard("verify", str(demo_release), "--version", "demo-400-0", root=tmp_path)
    assert result.returncode == 0 and "matches demo-400-0" in result.stdout and entry.sha256 in result.stdout


def test_ingest_verify_refuses_wrong_hash_and_user_can_add_theirs(small_release, tmp_path: Path) -> None:
    release, truth = small_release
    out = tmp_path / "tables"
    bad = mard("ingest", str(release), "--out", str(out), "--version", "demo-400-0", "--verify", root=tmp_path)
    assert bad.returncode == 1 and "does not match release demo-400-0" in bad.stderr and not out.exists()
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    added = mard("verify", str(release), "--add", "5.1.99", root=tmp_path)
    assert added.returncode == 0 and (tmp_path / "releases.yaml").is_file()
    ok = mard("ingest", str(release), "--out", str(out), "--version", "5.1.99", "--verify", root=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["counts"]["drugs"] == truth.n_drugs
    again = mard("ingest", str(release), "--out", str(out), root=tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_ingest_refuses_to_overwrite_a_users_directory(small_release, tmp_path: Path) -> None:
    release, _ = small_release
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = mard("ingest", str(release), "--out", str(mine), root=tmp_path)
    assert result.returncode == 1 and "not a MARD ingest output" in result.stderr
    assert (mine / "notes.txt").read_text() == "keep me"


def test_truncated_release_gives_one_line_error_and_no_output(tmp_path: Path, fixture_xml: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_bytes(fixture_xml.read_bytes()[:50_000])
    out = tmp_path / "tables"
    result = mard("ingest", str(broken), "--out", str(out), root=tmp_path)
    assert result.returncode == 1 and "truncated XML near byte" in result.stderr and str(broken) in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".partial*"))


def test_classify_jsonl_keeps_order(tmp_path: Path) -> None:
    lines = [
        {"a": "Voriconazole", "b": "Axitinib", "sentence": "The metabolism of Axitinib can be decreased when combined with Voriconazole."},
        {"a": "Axitinib", "b": "Voriconazole", "sentence": "The metabolism of Axitinib can be decreased when combined with Voriconazole."},
        {"a": "x", "b": "y", "sentence": "Nothing here."},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = mard("classify", "--input", str(path), root=tmp_path)
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["direction"] for o in out] == ["A to B", "B to A", None]
    assert out[0]["family"] == "PK Metabolism" and out[0]["modality"] == "Inhibition" and out[2]["matched"] is False


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("release: {source: /nonexistent/drugbank.zip}\n", "release.source: /nonexistent/drugbank.zip: no such file"),
        ("release: {demo_drugs: -5}\n", "release.demo_drugs: must be > 0, got -5"),
        ("teachers: {file: /nonexistent/teachers.yaml}\n", "teachers.file: /nonexistent/teachers.yaml: no such file"),
        ("ingest: {batch_rows: 0}\n", "ingest.batch_rows: must be > 0, got 0"),
        ("ingest: {batch_rowz: 5}\n", "ingest.batch_rowz: unknown key; allowed: batch_rows, compression"),
        ("models: {size: {hidden: 64}}\n", "models.size.hidden: unknown key; allowed: arch, hidden_size, "),
        ("splits: {valid_frac: lots}\n", "splits.valid_frac: must be a valid number, got 'lots'"),
    ],
)
def test_run_refuses_a_bad_config_before_starting(tmp_path: Path, config: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config)
    result = mard("run", "--config", str(path), root=tmp_path)
    assert result.returncode == 1 and f"{path}: {message}" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".services").exists()  # no orchestrator or tracking state was created
