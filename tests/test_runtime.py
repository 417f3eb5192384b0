"""How a run lives on the machine, with real processes: one writer per root, prompt stops, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mard_core import runlog
from mard_core.errors import MardError
from mard_core.runtime import hold_root, prefect_server


def _python(code: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, **kwargs)


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_holders_lock_is_taken_over(
    tmp_path: Path,
) -> None:
    holder = _python(
        f"import time; from pathlib import Path; from mard_core.runtime import hold_root\n"
        f"with hold_root(Path({str(tmp_path)!r})):\n    print('held', flush=True); time.sleep(120)"
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = pytest.raises(
            MardError, match=rf"another `mard run` \(pid {holder.pid}\) is writing this data root"
        )
        with refused, hold_root(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    with hold_root(tmp_path):  # the killed holder's lock is free again
        assert (tmp_path / ".lock").read_text() == str(os.getpid())


SUPERVISOR = """
import sys
from mard_core.errors import MardError
from mard_core.runtime import supervise
child = (
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print(os.getpid(), flush=True); time.sleep(300)"
)
try:
    sys.exit(supervise([sys.executable, "-c", child], grace_s=1.0))
except MardError as exc:
    print("error:", exc, file=sys.stderr)
    sys.exit(1)
"""


def test_sigterm_stops_a_supervised_run_within_seconds_even_if_the_stages_ignore_it() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert time.monotonic() - start < 5 and proc.returncode == 1
    assert stderr.strip().splitlines() == [
        (
            "error: stopped by SIGTERM; finished stages and resumable work are kept: "
            "run the same command again to continue"
        )
    ]
    assert _gone(child, 2.0)


def test_a_killed_supervisor_takes_its_stages_with_it() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    assert _gone(child, 5.0)


def test_a_stage_whose_process_is_gone_reads_as_interrupted(tmp_path: Path) -> None:
    code = (
        "from mard_core import runlog; "
        f"runlog.record({str(tmp_path)!r}, 'r1', 'label', state='running', out='x')\n"
        f"runlog.record({str(tmp_path)!r}, 'r1', 'ingest', state='completed', out='y')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    runlog.record(tmp_path, "r2", "label", state="running", out="z")  # this process: alive
    states = {
        json_run["run_id"]: {s: e["state"] for s, e in json_run["stages"].items()}
        for json_run in (runlog.with_liveness(r) for r in runlog.runs(tmp_path))
    }
    assert states == {"r1": {"label": "interrupted", "ingest": "completed"}, "r2": {"label": "running"}}


def test_a_prefect_server_that_does_not_come_up_is_one_line_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(sys, "executable", "/bin/false")
    refused = pytest.raises(
        MardError,
        match=r"temporary Prefect server exited with code 1 \(log: .*prefect-server.log\); "
        r"start one with `make serve`",
    )
    with refused, prefect_server(tmp_path):
        pass
    assert "PREFECT_API_URL" not in os.environ
