"""The dashboards, for real: infra/serve.sh starts Prefect + MLflow under a temp data root, the demo pipeline
runs against them, and headless Chromium (driven over the DevTools protocol) must show the flow run, its
artifact and the MLflow experiments. A second test registers prefect.yaml's deployments and checks that a
release dropped for the watcher triggers the retrain deployment with the release's path and version.

Screenshots go to ``<tmp>/screenshots`` (and ``runs/test-artifacts/dashboards`` when $MARD_TEST_ARTIFACTS is
set). Skipped only when no Chromium binary is installed (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
BIN = PROJECT / ".venv" / "bin"
# The pipeline runs through the data phase only: the later stages (teachers, training) take minutes.
# Move this to the first stage that logs to MLflow once that fits the test's time budget.
STOP_AFTER = "index"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1000",
    "--remote-debugging-port=0",
)


def chromium() -> str:
    found = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if found is None:
        pytest.skip("no Chromium binary (install the Debian package: apt-get install -y chromium)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """Headless Chromium driven over the DevTools protocol: open a page, wait for text, take a screenshot."""

    def __init__(self, binary: str, profile: Path, shots: Path) -> None:
        self.shots = shots
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{binary} did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        page = next(t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page")
        self.ws: ClientConnection = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.calls = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.calls += 1
        self.ws.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.calls:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def show(self, url: str, expect: list[str], name: str, timeout: float = 45) -> str:
        """Open ``url``, wait until its rendered text contains every string of ``expect``, screenshot it."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while True:
            result = self.call(
                "Runtime.evaluate",
                expression="document.body ? document.body.innerText : ''",
                returnByValue=True,
            )
            text = result["result"].get("value", "")
            missing = [e for e in expect if e not in text]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        shot = self.call("Page.captureScreenshot", format="png")
        (self.shots / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
        assert not missing, f"{url}: {missing} not shown after {timeout}s (see {name}.png):\n{text[:3000]}"
        return text

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


@dataclass(frozen=True)
class Services:
    root: Path
    prefect: str  # base URL of the Prefect server (UI; API under /api)
    mlflow: str
    env: dict[str, str]  # what a client process needs to use them
    start_s: float

    def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.prefect}/api/{path}"
        response = httpx.get(url, timeout=30) if body is None else httpx.post(url, json=body, timeout=30)
        response.raise_for_status()
        return response.json()


def sh(args: list[str], env: dict[str, str], timeout: float, cwd: Path = PROJECT) -> str:
    """Run a command; fail with the tail of its output unless it exits 0. Returns its stdout."""
    done = subprocess.run(
        args, check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{' '.join(args)}: exit {done.returncode}\n{output}"
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the test session's Prefect/MLflow settings (conftest sets them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    return {**env, **extra}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("screenshots")
    yield directory
    if os.environ.get("MARD_TEST_ARTIFACTS"):
        shutil.copytree(directory, PROJECT / "runs" / "test-artifacts" / "dashboards", dirs_exist_ok=True)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, shots: Path) -> Iterator[Browser]:
    b = Browser(chromium(), tmp_path_factory.mktemp("chromium-profile"), shots)
    yield b
    b.close()


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    chromium()  # skip before starting anything
    root = tmp_path_factory.mktemp("data-root")
    ports = {"PREFECT_PORT": free_port(), "MLFLOW_PORT": free_port(), "WORKER_PORT": free_port()}
    env = clean_env(MARD_ROOT=str(root), **{k: str(v) for k, v in ports.items()})
    serve, stop = ["bash", str(PROJECT / "infra" / "serve.sh")], ["bash", str(PROJECT / "infra" / "stop.sh")]
    try:
        start = time.perf_counter()
        out = sh(serve, env, timeout=240)
        start_s = time.perf_counter() - start
        print(out, f"services up in {start_s:.1f} s")
        prefect, mlflow = (
            f"http://127.0.0.1:{ports['PREFECT_PORT']}",
            f"http://127.0.0.1:{ports['MLFLOW_PORT']}",
        )
        assert f"export PREFECT_API_URL={prefect}/api" in out
        assert sh(serve, env, timeout=60).count("already running") == 3  # idempotent
        yield Services(
            root,
            prefect,
            mlflow,
            clean_env(
                MARD_ROOT=str(root),
                PREFECT_API_URL=f"{prefect}/api",
                MLFLOW_TRACKING_URI=mlflow,
                PREFECT_HOME=str(root / ".services" / "prefect"),
            ),
            start_s,
        )
    finally:
        print(sh(stop, env, timeout=120))
    assert not list((root / ".services").glob("*.pid")), "stop.sh left pid files behind"


@pytest.fixture(scope="module")
def pipeline_outputs(services: Services) -> dict[str, str]:
    """``mard run`` against the servers (through the data phase); its stage outputs."""
    out = sh([str(BIN / "mard"), "run", "--only", STOP_AFTER], services.env, timeout=180, cwd=services.root)
    return json.loads(out[out.rindex("\n{\n") if "\n{\n" in out else 0 :])  # the JSON printed last


def test_dashboards_show_the_pipeline_run(
    services: Services, pipeline_outputs: dict[str, str], browser: Browser
) -> None:
    runs = services.api("flow_runs/filter", {"flow_runs": {"parent_task_run_id": {"is_null_": True}}})
    flows = {f["id"]: f["name"] for f in services.api("flows/filter", {})}
    (pipeline,) = [r for r in runs if flows[r["flow_id"]] == "mard-pipeline"]
    assert pipeline["state_type"] == "COMPLETED"
    assert pipeline["parameters"]["until"] == STOP_AFTER

    browser.show(f"{services.prefect}/runs", [pipeline["name"], "mard-pipeline", "Completed"], "prefect-runs")
    browser.show(
        f"{services.prefect}/runs/flow-run/{pipeline['id']}",
        [pipeline["name"], "Completed"],
        "prefect-flow-run",
    )

    (artifact,) = services.api("artifacts/filter", {"artifacts": {"key": {"any_": ["ingest-counts"]}}})
    table = json.loads(artifact["data"]) if isinstance(artifact["data"], str) else artifact["data"]
    rows = {row["table"]: row["rows"] for row in table}
    assert rows["drugs"] > 0 and rows["interactions"] > 0
    ingest_run = services.api(f"flow_runs/{artifact['flow_run_id']}")
    browser.show(
        f"{services.prefect}/artifacts/key/ingest-counts",
        ["ingest-counts", ingest_run["name"]],
        "prefect-artifact-versions",
    )
    browser.show(
        f"{services.prefect}/artifacts/artifact/{artifact['id']}",
        ["ingest-counts", *rows, *map(str, rows.values())],
        "prefect-artifact",
    )

    mlflow_api = f"{services.mlflow}/api/2.0/mlflow"
    experiments = httpx.post(
        f"{mlflow_api}/experiments/search", json={"max_results": 100}, timeout=30
    ).json()["experiments"]
    names = [e["name"] for e in experiments]
    browser.show(f"{services.mlflow}/#/experiments", ["Experiments", *names], "mlflow-experiments")
    mard = next((e for e in experiments if e["name"] == "mard"), None)
    if mard is not None:  # the pipeline's stages log to experiment "mard" once they run
        found = httpx.post(
            f"{mlflow_api}/runs/search",
            json={"experiment_ids": [mard["experiment_id"]], "max_results": 5},
            timeout=30,
        ).json()
        run_names = [r["info"]["run_name"] for r in found.get("runs", [])]
        if run_names:
            page = f"{services.mlflow}/#/experiments/{mard['experiment_id']}/runs"
            browser.show(page, ["mard", *run_names], "mlflow-mard-runs")


def test_dropped_release_triggers_retrain_deployment(
    services: Services, pipeline_outputs: dict[str, str], browser: Browser
) -> None:
    prefect = str(BIN / "prefect")
    sh(
        [prefect, "--no-prompt", "deploy", "--name", "watch-releases", "--name", "retrain-on-release"],
        services.env,
        timeout=180,
    )
    (automation,) = services.api("automations/filter", {})
    assert automation["trigger"]["expect"] == ["drugbank.release.detected"]

    dropped = services.root / "drop" / "drugbank_all_full_database.xml.zip"
    dropped.parent.mkdir(exist_ok=True)
    shutil.copyfile(pipeline_outputs["demo-release"], dropped)  # the demo release: registered as demo-600-0
    sh(
        [prefect, "deployment", "run", "mard-watch/watch-releases", "--watch", "--watch-timeout", "120"],
        services.env,
        timeout=150,
    )
    (deployment,) = services.api(
        "deployments/filter", {"deployments": {"name": {"any_": ["retrain-on-release"]}}}
    )
    deadline, triggered = time.monotonic() + 60, []
    while not triggered and time.monotonic() < deadline:
        time.sleep(1)
        triggered = services.api(
            "flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}}
        )
    assert triggered, "no retrain run within 60 s of the drugbank.release.detected event"
    (run,) = triggered
    assert run["parameters"] == {"source": str(dropped), "version": "demo-600-0"}
    # The retrain itself (minutes) is not this test's business: cancel it.
    services.api(f"flow_runs/{run['id']}/set_state", {"state": {"type": "CANCELLING"}, "force": True})
    browser.show(
        f"{services.prefect}/runs/flow-run/{run['id']}",
        [run["name"], "retrain-on-release"],
        "prefect-triggered-retrain",
    )
