"""The `mard` command line: real subprocesses for exit codes and one-line errors."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mard_core.cli import main
from mard_core.releases import load_registry
from mard_core.synth import write_release

CLI = "import sys; from mard_core.cli import main; sys.argv = ['mard', *sys.argv[1:]]; main()"


def mard(*args: str, root: Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = prelude + CLI
    return subprocess.run(
        [sys.executable, "-c", code, *args, "--root", str(root)]
        if args[0] in ("verify", "ingest", "run")
        else [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """`mard ARGS` in this process (exit code, stdout, stderr), where a test can make the file system
    misbehave."""
    monkeypatch.setattr(sys, "argv", ["mard", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def one_line_error(code: int, err: str, *parts: str) -> bool:
    return (
        code == 1
        and len(err.strip().splitlines()) == 1
        and all(p in err for p in parts)
        and "Traceback" not in err
    )


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
    bad = mard(
        "ingest", str(release), "--out", str(out), "--version", "demo-400-0", "--verify", root=tmp_path
    )
    assert bad.returncode == 1 and "does not match release demo-400-0" in bad.stderr and not out.exists()
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    added = mard("verify", str(release), "--add", "5.1.99", root=tmp_path)
    assert added.returncode == 0 and (tmp_path / "releases.yaml").is_file()
    ok = mard("ingest", str(release), "--out", str(out), "--version", "5.1.99", "--verify", root=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["counts"]["drugs"] == truth.n_drugs
    again = mard("ingest", str(release), "--out", str(out), root=tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_verify_refuses_an_in_place_edit_that_keeps_size_and_mtime(small_release, tmp_path: Path) -> None:
    release = tmp_path / "release.xml.zip"
    release.write_bytes(small_release[0].read_bytes())
    assert mard("verify", str(release), "--add", "9.8", root=tmp_path).returncode == 0
    st = release.stat()
    with open(release, "r+b") as f:
        f.seek(st.st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(release, ns=(st.st_atime_ns, st.st_mtime_ns))
    out = tmp_path / "tables"
    bad = mard("ingest", str(release), "--out", str(out), "--version", "9.8", "--verify", root=tmp_path)
    assert bad.returncode == 1 and "does not match release 9.8" in bad.stderr and not out.exists()
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    checked = mard("verify", str(release), "--version", "9.8", root=tmp_path)
    assert checked.returncode == 1 and "does NOT match 9.8" in checked.stdout


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
    assert (
        result.returncode == 1 and "truncated XML near byte" in result.stderr and str(broken) in result.stderr
    )
    assert not out.exists() and not list(tmp_path.glob(".partial*"))


LIMIT_MEMORY = (  # address space: what the imports map, plus 300 MB
    "import re, resource; from pathlib import Path; import mard_core.ingest; "
    "vm = int(re.search(r'VmSize:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1)) << 10; "
    "resource.setrlimit(resource.RLIMIT_AS, (vm + (300 << 20), resource.getrlimit(resource.RLIMIT_AS)[1])); "
)


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc and an enforced RLIMIT_AS")
def test_ingest_out_of_memory_gives_one_line_error_and_no_output(tmp_path: Path) -> None:
    """A 16 MB record of 4M empty elements (max_record_bytes allows it) needs 500 MB parsed: over the cap."""
    src = tmp_path / "huge-record.zip"
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("db.xml", "w") as f:
        f.write(
            b'<?xml version="1.0"?>\n<drugbank xmlns="http://www.drugbank.ca" version="5.1">'
            b'<drug><drugbank-id primary="true">DB00001</drugbank-id>'
            + b"<x/>" * 4_000_000
            + b"</drug></drugbank>\n"
        )
    out = tmp_path / "tables"
    result = mard("ingest", str(src), "--out", str(out), root=tmp_path, prelude=LIMIT_MEMORY)
    assert one_line_error(result.returncode, result.stderr, f"{src}: ran out of memory while ingesting")
    assert not out.exists() and not list(tmp_path.glob(".partial*"))


def test_classify_jsonl_keeps_order(tmp_path: Path) -> None:
    lines = [
        {
            "a": "Voriconazole",
            "b": "Axitinib",
            "sentence": "The metabolism of Axitinib can be decreased when combined with Voriconazole.",
        },
        {
            "a": "Axitinib",
            "b": "Voriconazole",
            "sentence": "The metabolism of Axitinib can be decreased when combined with Voriconazole.",
        },
        {"a": "x", "b": "y", "sentence": "Nothing here."},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = mard("classify", "--input", str(path), root=tmp_path)
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["direction"] for o in out] == ["A to B", "B to A", None]
    assert (
        out[0]["family"] == "PK Metabolism"
        and out[0]["modality"] == "Inhibition"
        and out[2]["matched"] is False
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "release: {source: /nonexistent/drugbank.zip}\n",
            "release.source: /nonexistent/drugbank.zip: no such file",
        ),
        ("release: {demo_drugs: -5}\n", "release.demo_drugs: must be > 0, got -5"),
        (
            "teachers: {file: /nonexistent/teachers.yaml}\n",
            "teachers.file: /nonexistent/teachers.yaml: no such file",
        ),
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
    assert (
        result.returncode == 1 and f"{path}: {message}" in result.stderr and "Traceback" not in result.stderr
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".services").exists()  # no orchestrator or tracking state was created


def test_synth_previous_writes_the_next_release_of_the_same_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old.xml.zip", tmp_path / "new.xml.zip"
    code, out, _ = run_main(monkeypatch, capsys, "synth", "--drugs", "30", "--seed", "4", "--out", str(old))
    first = json.loads(out)
    assert code == 0 and 0.5 < first["ceiling"] <= 1 and (tmp_path / "old.xml.zip.world.json").is_file()
    args = ("synth", "--previous", str(old), "--seed", "1", "--out", str(new), "--exported-on", "2026-09-01")
    code, out, _ = run_main(monkeypatch, capsys, *args)
    assert code == 0 and json.loads(out)["n_drugs"] > first["n_drugs"]
    with zipfile.ZipFile(new) as zf:
        assert b'exported-on="2026-09-01"' in zf.read("full database.xml")[:400]
    missing = tmp_path / "missing.xml.zip"
    code, _, err = run_main(monkeypatch, capsys, "synth", "--previous", str(missing), "--out", str(new))
    assert one_line_error(code, err, str(missing))


def test_output_to_a_full_disk_is_one_line(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:  # every write fails with ENOSPC
        result = subprocess.run(
            [sys.executable, "-c", CLI, "synth", "--drugs", "1", "--out", str(tmp_path / "r.xml")],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert one_line_error(result.returncode, result.stderr, "error: no space left on device; free disk space")


@pytest.mark.parametrize("wrapped", [False, True])
def test_disk_full_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], wrapped: bool
) -> None:
    out = tmp_path / "r.xml"

    def full(*args: object, **kwargs: object) -> None:
        error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))
        if not wrapped:
            raise error
        raise RuntimeError("writing the release failed") from error

    monkeypatch.setattr("mard_core.synth.write_release", full)
    code, _, err = run_main(monkeypatch, capsys, "synth", "--out", str(out))
    assert one_line_error(code, err, f"error: {out}: no space left on device")


def test_out_of_memory_is_one_line_and_other_failures_keep_their_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(error: BaseException) -> Callable[..., None]:
        def raise_(*args: object, **kwargs: object) -> None:
            raise error

        return raise_

    monkeypatch.setattr("mard_core.synth.write_release", fail(MemoryError()))
    code, _, err = run_main(monkeypatch, capsys, "synth", "--out", str(tmp_path / "r.xml"))
    assert one_line_error(code, err, "error: out of memory")
    monkeypatch.setattr("mard_core.synth.write_release", fail(ValueError("a bug")))
    monkeypatch.setattr(sys, "argv", ["mard", "synth", "--out", str(tmp_path / "r.xml")])
    with pytest.raises(ValueError, match="a bug"):
        main()


def test_classify_refuses_a_binary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(bytes(range(256)) * 4)
    code, _, err = run_main(monkeypatch, capsys, "classify", "--input", str(path))
    assert one_line_error(code, err, f"{path}: not UTF-8 text")


COMMANDS = {  # each command's input file argument
    "verify": lambda p, tmp: ["verify", str(p), "--root", str(tmp)],
    "ingest": lambda p, tmp: ["ingest", str(p), "--out", str(tmp / "out"), "--root", str(tmp)],
    "predict": lambda p, tmp: ["predict", "--input", str(p), "--root", str(tmp)],
    "classify": lambda p, tmp: ["classify", "--input", str(p)],
    "run --config": lambda p, tmp: ["run", "--config", str(p), "--root", str(tmp)],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_directory_or_an_unreadable_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    folder, locked = tmp_path / "pairs.csv", tmp_path / "locked.csv"
    folder.mkdir()
    locked.write_text("voriconazole,axitinib\n")
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads anything: deny this one file as the kernel would deny another user
        access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != locked and access(p, mode, **kw))
    code, _, err = run_main(monkeypatch, capsys, *COMMANDS[command](folder, tmp_path))
    assert one_line_error(code, err, f"{folder}: is a directory") and "Usage" not in err
    code, _, err = run_main(monkeypatch, capsys, *COMMANDS[command](locked, tmp_path))
    assert one_line_error(code, err, f"{locked}: permission denied") and "Usage" not in err


def test_run_names_a_directory_given_as_the_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"release: {{source: {tmp_path}}}\n")
    code, _, err = run_main(monkeypatch, capsys, "run", "--config", str(config), "--root", str(tmp_path))
    assert one_line_error(code, err, f"{config}: release.source: {tmp_path}: is a directory, not a file")
