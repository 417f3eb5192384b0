"""How a run lives on this machine: the data root, where local services keep their state (Prefect and MLflow
default to SQLite files under the root), the temporary Prefect server, the one-writer lock, and a supervisor
that stops a run promptly on SIGINT/SIGTERM.

Production sets PREFECT_API_URL (a Prefect server backed by PostgreSQL) and MLFLOW_TRACKING_URI; those
win over these defaults, which only fill in what the environment leaves unset.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from mard_core.errors import MardError

DEFAULT_ROOT = Path("runs")


def data_root(root: str | Path | None = None) -> Path:
    """The data root: explicit argument, else $MARD_ROOT, else ./runs."""
    return Path(root or os.environ.get("MARD_ROOT") or DEFAULT_ROOT).resolve()


def configure_services(root: Path) -> dict[str, str]:
    """Point Prefect and MLflow at project-local SQLite stores under ``root`` unless already configured."""
    state = root / ".services"
    state.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_LOCAL_STORAGE_PATH": str(state / "prefect" / "storage"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow.db'}",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    if not os.environ.get("PREFECT_API_URL"):
        defaults["PREFECT_API_DATABASE_CONNECTION_URL"] = (
            f"sqlite+aiosqlite:///{state / 'prefect' / 'prefect.db'}"
        )
    applied = {k: v for k, v in defaults.items() if not os.environ.get(k)}
    os.environ.update(applied)
    return applied


def dying_with_this_process(cmd: list[str]) -> list[str]:
    """``cmd`` started through a wrapper that makes it get SIGKILL when this process dies, even by SIGKILL
    (Linux ``PR_SET_PDEATHSIG``, kept across ``exec``), so a killed run leaves no server or stage behind."""
    return [sys.executable, "-m", "mard_core.runtime", str(os.getpid()), *cmd]


def _exec_dying_with(parent: int, cmd: list[str]) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the signal was armed
        sys.exit(1)
    os.execvp(cmd[0], cmd)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def prefect_server(root: Path, timeout_s: float = 90.0) -> Iterator[str]:
    """A temporary Prefect API server for this run (unless PREFECT_API_URL names one), which dies with this
    process, however it ends; yields the API URL and sets PREFECT_API_URL to it."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    port, log = _free_port(), root / ".services" / "prefect-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            dying_with_this_process(cmd),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                state = (
                    f"exited with code {proc.returncode}"
                    if proc.poll() is not None
                    else f"not up in {timeout_s:.0f} s"
                )
                raise MardError(
                    f"the temporary Prefect server {state} (log: {log}); start one with `make serve` "
                    "and set PREFECT_API_URL=http://127.0.0.1:4200/api"
                )
            time.sleep(0.2)
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        if os.environ.get("PREFECT_API_URL") == url:
            del os.environ["PREFECT_API_URL"]
        proc.terminate()
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def supervise(cmd: list[str], grace_s: float = 3.0) -> int:
    """Run ``cmd`` in its own process group and return its exit code. SIGINT/SIGTERM stop it within
    ``grace_s`` seconds (SIGTERM to the group, then SIGKILL), leaving what a kill leaves; the child also
    dies if this process is killed."""
    proc = subprocess.Popen(dying_with_this_process(cmd), start_new_session=True)

    def stop(signum: int, _frame: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(grace_s)
                break
        raise MardError(
            f"stopped by {signal.Signals(signum).name}; finished stages and resumable work are kept: "
            "run the same command again to continue"
        )

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def hold_root(root: Path) -> Iterator[None]:
    """One writer per data root: an exclusive lock on ``<root>/.lock`` for as long as the block runs.

    A root held by a live process is refused in one line naming its pid; the lock dies with its process, so a
    lock left by a killed run is simply taken over.
    """
    root.mkdir(parents=True, exist_ok=True)
    path = root / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise MardError(
                f"{root}: another `mard run` (pid {holder}) is writing this data root; wait for it to "
                "end or stop it, or use another --root"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


if __name__ == "__main__":  # python -m mard_core.runtime PARENT_PID CMD...: see dying_with_this_process
    _exec_dying_with(int(sys.argv[1]), sys.argv[2:])
