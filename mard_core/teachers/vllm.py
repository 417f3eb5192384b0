"""vLLM backend: an OpenAI-compatible vLLM server run from its own venv, queried through ``HTTPBackend``.

vLLM cannot share the project environment (see ``infra/vllm-env.sh``), so the engine runs as a child
process in its own session (process group); ``close()`` terminates the whole group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import httpx

from mard_core.teachers.base import Backend, Completion, GenerationParams, TeacherError
from mard_core.teachers.config import HTTPConfig, VLLMConfig
from mard_core.teachers.http import HTTPBackend

VENV_ENV_VAR = "MARD_VLLM_VENV"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_LOG_TAIL_LINES = 40
_TERMINATE_GRACE_S = 20.0


def default_venv() -> Path:
    """``$MARD_VLLM_VENV`` if set, else ``<project root>/.venv-vllm`` (what ``infra/vllm-env.sh`` creates)."""
    return Path(os.environ.get(VENV_ENV_VAR) or PROJECT_ROOT / ".venv-vllm")


def free_port(host: str) -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" when unreadable)."""
    try:
        with path.open(errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError:
        return ""


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after a grace period."""
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=_TERMINATE_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


class VLLMBackend(Backend):
    """Start a vLLM server for ``config.model``, wait until healthy, generate through HTTP."""

    config_cls: ClassVar[type[VLLMConfig]] = VLLMConfig

    def __init__(self, config: VLLMConfig) -> None:
        self.config = config
        self.name = f"vllm:{config.model}"
        venv = Path(config.venv) if config.venv else default_venv()
        python = venv / "bin" / "python"
        if not python.exists():
            raise TeacherError(f"vLLM venv {venv} has no bin/python: create it with infra/vllm-env.sh {venv}")
        port = config.port or free_port(config.host)
        self.base_url = f"http://{config.host}:{port}"
        self.log_path, self._own_log = self._open_log(config.log_path)
        self.startup_s = 0.0
        start = time.monotonic()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(python, port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._environment(venv),
                start_new_session=True,
            )
        self._finalizer = weakref.finalize(self, _terminate, self._process)
        try:
            self._wait_healthy()
        except BaseException:
            self._finalizer()
            raise
        self.startup_s = time.monotonic() - start
        served = config.served_model_name or config.model
        self._http = HTTPBackend(
            HTTPConfig(
                base_url=f"{self.base_url}/v1",
                model=served,
                timeout_s=config.request_timeout_s,
                max_concurrency=config.max_concurrency,
            )
        )

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.config.model!r}, url={self.base_url!r})"

    @staticmethod
    def _open_log(path: str | None) -> tuple[Path, bool]:
        if path:
            return Path(path), False
        fd, name = tempfile.mkstemp(prefix="mard-vllm-", suffix=".log")
        os.close(fd)
        return Path(name), True

    def _command(self, python: Path, port: int) -> list[str]:
        cfg = self.config
        command = [
            str(python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", cfg.model,
            "--served-model-name", cfg.served_model_name or cfg.model,
            "--host", cfg.host,
            "--port", str(port),
            "--dtype", cfg.dtype,
            "--max-model-len", str(cfg.max_model_len),
            "--generation-config", "vllm",
            "--disable-uvicorn-access-log",
        ]  # fmt: skip
        if cfg.enforce_eager:
            command.append("--enforce-eager")
        if cfg.gpu_memory_utilization is not None:
            command += ["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]
        return [*command, *cfg.extra_args]

    def _environment(self, venv: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(
            VIRTUAL_ENV=str(venv),
            PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            VLLM_CPU_KVCACHE_SPACE=str(self.config.cpu_kvcache_space_gb),
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
        )
        if Path(self.config.model).is_dir():
            env["HF_HUB_OFFLINE"] = "1"
        return env

    def _server_failure(self, what: str) -> TeacherError:
        return TeacherError(
            f"vLLM server for {self.config.model} {what}; log {self.log_path}, last lines:\n"
            f"{log_tail(self.log_path)}"
        )

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise self._server_failure(f"exited with code {code} before becoming healthy")
                try:
                    if client.get(f"{self.base_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise self._server_failure(f"not healthy after {self.config.startup_timeout_s} s")
                time.sleep(0.5)

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Completion]]:
        code = self._process.poll()
        if code is not None:
            raise self._server_failure(f"is not running (exit code {code})")
        return self._http.generate(prompts, params)

    def close(self) -> None:
        """Stop the server's process group; the temporary log is removed."""
        if not self._finalizer.alive:
            return
        self._http.close()
        self._finalizer()
        if self._own_log:
            self.log_path.unlink(missing_ok=True)
