"""The release watcher: drop directory, download service (a fake DrugBank on 127.0.0.1), event emission."""

from __future__ import annotations

import ast
import base64
import json
import logging
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from prefect.events import DeploymentTriggerTypes
from prefect.events.clients import AssertingEventsClient
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.testing.fixtures import asserting_events_worker  # noqa: F401  (pytest fixture)
from pydantic import TypeAdapter

from mard_core.errors import InputError
from mard_core.releases import add_release
from mard_core.stage import sha256_file
from mard_core.watch import (
    Credentials,
    DetectedRelease,
    WatchError,
    WatchReport,
    credentials_from_env,
    watch,
)
from mard_core.watch_config import WatchConfig

PROJECT = Path(__file__).resolve().parents[1]
USER, PASSWORD = "watcher@example.org", "pa55-Very-S3cret-xyzzy"
ETAG = '"release-5.1.99"'


def make_release(path: Path, marker: str) -> Path:
    """A small zip standing in for a DrugBank release (the watcher only looks at its bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("full database.xml", f"<drugbank version='{marker}'/>")
    return path


def register(root: Path, path: Path, version: str) -> None:
    add_release(root / "releases.yaml", version, sha256_file(path), path.stat().st_size)


def collect(
    root: Path,
    cfg: WatchConfig,
    credentials: Credentials | None = None,
) -> tuple[list[DetectedRelease], WatchReport]:
    got: list[DetectedRelease] = []
    report = watch(root, cfg, got.append, credentials)
    return got, report


# --- drop directory ---------------------------------------------------------------------------------------


def test_drop_dir_new_release_is_emitted_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    release = make_release(root / "drop" / "drugbank_5.1.98.zip", "5.1.98")
    register(root, release, "5.1.98")
    cfg = WatchConfig(drop_dir="drop")  # relative: under the data root

    got, report = collect(root, cfg)
    assert [r.payload() for r in got] == [
        {"version": "5.1.98", "sha256": sha256_file(release), "path": str(release)}
    ]
    seen = json.loads((root / "watch" / "seen.json").read_text())["seen"]
    assert seen[sha256_file(release)]["version"] == "5.1.98"

    got, report = collect(root, cfg)
    assert got == [] and report.already_seen == 1 and report.releases == []


def test_same_bytes_under_another_name_are_not_a_new_release(tmp_path: Path) -> None:
    root = tmp_path / "root"
    release = make_release(tmp_path / "drop" / "a.zip", "5.1.98")
    register(root, release, "5.1.98")
    cfg = WatchConfig(drop_dir=str(tmp_path / "drop"))
    assert len(collect(root, cfg)[0]) == 1
    (tmp_path / "drop" / "copy.zip").write_bytes(release.read_bytes())
    got, report = collect(root, cfg)
    assert got == [] and report.already_seen == 2


def test_unregistered_file_is_reported_until_its_hash_is_added(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    release = make_release(root / "drop" / "new.zip", "5.2.0")
    (root / "drop" / "notes.txt").write_text("not a release")
    (root / "drop" / ".partial.zip").write_bytes(b"still copying")
    cfg = WatchConfig(drop_dir="drop")

    with caplog.at_level(logging.WARNING, logger="mard.watch"):
        got, report = collect(root, cfg)
    assert got == []
    assert [u.path for u in report.unregistered] == [str(release)]
    assert f"mard verify {release} --add VERSION" in caplog.text
    assert not (root / "watch" / "seen.json").exists()

    register(root, release, "5.2.0")
    got, report = collect(root, cfg)
    assert [r.version for r in got] == ["5.2.0"] and report.unregistered == []


def test_failed_handler_leaves_release_unseen(tmp_path: Path) -> None:
    root = tmp_path / "root"
    register(root, make_release(root / "drop" / "r.zip", "5.1.98"), "5.1.98")
    cfg = WatchConfig(drop_dir="drop")

    def fail(_: DetectedRelease) -> None:
        raise RuntimeError("event bus down")

    with pytest.raises(RuntimeError):
        watch(root, cfg, fail)
    assert [r.version for r in collect(root, cfg)[0]] == ["5.1.98"]


def test_config_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothing to watch"):
        watch(tmp_path, WatchConfig(), lambda r: None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        watch(tmp_path, WatchConfig(drop_dir="file"), lambda r: None)
    with pytest.raises(InputError, match="must not be part of the URL"):
        watch(tmp_path, WatchConfig(url=f"https://{USER}:{PASSWORD}@example.org/x"), lambda r: None)
    (tmp_path / "watch").mkdir()
    (tmp_path / "watch" / "seen.json").write_text("{not json")
    with pytest.raises(WatchError, match="seen.json: not a valid watch state file"):
        watch(tmp_path, WatchConfig(drop_dir="drop"), lambda r: None)


# --- download service -------------------------------------------------------------------------------------


class FakeDrugBank(BaseHTTPRequestHandler):
    """GET /release: basic auth, ETag validation; /broken answers 500."""

    body: bytes = b""
    requests: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.requests.append(dict(self.headers))
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.path == "/broken":
            self.send_error(500, "Internal Server Error")
        elif self.headers.get("Authorization") != expected:
            self.send_error(401, "Unauthorized")
        elif self.headers.get("If-None-Match") == ETAG:
            self.send_response(304)
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(self.body)))
            self.send_header("ETag", ETAG)
            self.send_header("Last-Modified", "Tue, 04 Nov 2025 10:00:00 GMT")
            self.end_headers()
            self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def drugbank(tmp_path: Path) -> Iterator[str]:
    release = make_release(tmp_path / "served.zip", "5.1.99")
    FakeDrugBank.body, FakeDrugBank.requests = release.read_bytes(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDrugBank)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> Credentials:
    monkeypatch.setenv("DRUGBANK_USERNAME", USER)
    monkeypatch.setenv("DRUGBANK_PASSWORD", PASSWORD)
    found = credentials_from_env(WatchConfig())
    assert found is not None
    return found


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and USER not in text


def test_download_verifies_then_skips_unchanged_release(
    tmp_path: Path, drugbank: str, creds: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    register(root, tmp_path / "served.zip", "5.1.99")
    cfg = WatchConfig(url=f"{drugbank}/release")
    caplog.set_level(logging.DEBUG)

    got, report = collect(root, cfg, creds)
    assert report.download == "downloaded"
    assert [r.version for r in got] == ["5.1.99"]
    saved = Path(got[0].path)
    assert saved.parent == root / "releases" and saved.suffix == ".zip"
    assert saved.read_bytes() == (tmp_path / "served.zip").read_bytes()
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temp file left behind

    got, report = collect(root, cfg, creds)
    assert report.download == "not-modified" and got == [] and report.already_seen == 1
    assert FakeDrugBank.requests[-1]["If-None-Match"] == ETAG
    assert FakeDrugBank.requests[-1]["If-Modified-Since"] == "Tue, 04 Nov 2025 10:00:00 GMT"

    state = (root / "watch" / "seen.json").read_text()
    assert ETAG.strip('"') in state
    assert_no_secret(caplog.text, state, repr(creds), repr(report), json.dumps(report.to_dict()))


def test_download_of_unregistered_release_is_reported_not_emitted(
    tmp_path: Path, drugbank: str, creds: Credentials
) -> None:
    root = tmp_path / "root"
    got, report = collect(root, WatchConfig(url=f"{drugbank}/release"), creds)
    assert got == [] and report.download == "downloaded" and len(report.unregistered) == 1
    register(root, tmp_path / "served.zip", "5.1.99")
    got, report = collect(root, WatchConfig(url=f"{drugbank}/release"), creds)
    assert report.download == "not-modified" and [r.version for r in got] == ["5.1.99"]


@pytest.mark.parametrize(
    ("path", "password", "message"),
    [
        (
            "/release",
            "wrong-password",
            (
                r"HTTP 401 Unauthorized: the credentials from "
                r"\$DRUGBANK_USERNAME/\$DRUGBANK_PASSWORD were rejected"
            ),
        ),
        ("/release", None, "HTTP 401 Unauthorized: no credentials were given"),
        ("/broken", PASSWORD, "HTTP 500 Internal Server Error: the download service failed"),
    ],
    ids=["401-rejected", "401-no-credentials", "500"],
)
def test_download_errors_are_clear_and_secret_free(
    tmp_path: Path,
    drugbank: str,
    path: str,
    password: str | None,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    credentials = Credentials(USER, password, "$DRUGBANK_USERNAME/$DRUGBANK_PASSWORD") if password else None
    with pytest.raises(WatchError, match=message) as excinfo:
        watch(tmp_path, WatchConfig(url=drugbank + path), lambda r: None, credentials)
    assert_no_secret(str(excinfo.value), repr(excinfo.value), caplog.text)
    assert list((tmp_path / "releases").iterdir()) == []


def test_unreachable_service_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WatchError, match=r"DrugBank download http://127.0.0.1:9/x: ConnectError"):
        watch(tmp_path, WatchConfig(url="http://127.0.0.1:9/x", timeout_s=2), lambda r: None)


def test_credentials_parsing_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    creds = Credentials.parse(f"{USER}:{PASSWORD}", "Secret block 'x'")
    assert (creds.username, creds.password) == (USER, PASSWORD)
    assert_no_secret(repr(creds), str(creds))
    with pytest.raises(WatchError, match="Secret block 'x': expected credentials of the form 'user:pass"):
        Credentials.parse(PASSWORD, "Secret block 'x'")
    monkeypatch.delenv("DRUGBANK_USERNAME", raising=False)
    monkeypatch.delenv("DRUGBANK_PASSWORD", raising=False)
    assert credentials_from_env(WatchConfig()) is None
    monkeypatch.setenv("DRUGBANK_USERNAME", USER)
    with pytest.raises(WatchError, match=r"\$DRUGBANK_PASSWORD is not set"):
        credentials_from_env(WatchConfig())


# --- Prefect event and deployments ------------------------------------------------------------------------


@pytest.fixture
def captured_events(request: pytest.FixtureRequest) -> Iterator[AssertingEventsClient]:
    """Prefect's asserting events worker: emitted events are recorded, not sent.

    Outside a flow run there are no related resources to look up; an unreachable API URL (set before the
    worker thread starts) keeps the worker from starting a temporary Prefect server just to find that out.
    """
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        worker = request.getfixturevalue("asserting_events_worker")
        yield worker
        worker.drain()


def test_new_release_emits_prefect_event(tmp_path: Path, captured_events) -> None:
    from flows.watch import RELEASE_EVENT, emit_release

    root = tmp_path / "root"
    release = make_release(root / "drop" / "drugbank.zip", "5.1.98")
    register(root, release, "5.1.98")
    watch(root, WatchConfig(drop_dir="drop"), emit_release)
    watch(root, WatchConfig(drop_dir="drop"), emit_release)  # seen: no second event
    captured_events.drain()
    client = captured_events._client
    assert isinstance(client, AssertingEventsClient)
    events = [e for e in client.events if e.event == RELEASE_EVENT]
    assert len(events) == 1
    assert events[0].resource.id == "drugbank.release.5.1.98"
    assert events[0].payload == {"version": "5.1.98", "sha256": sha256_file(release), "path": str(release)}


def flow_parameters(entrypoint: str) -> set[str]:
    """Parameter names of ``path.py:function``, read from the source (importing the flows is slow)."""
    path, _, name = entrypoint.partition(":")
    tree = ast.parse((PROJECT / path).read_text())
    (fn,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
    return {a.arg for a in fn.args.args + fn.args.kwonlyargs}


def test_prefect_yaml_deployments_are_valid() -> None:
    """Triggers parse as Prefect deployment triggers; existing entrypoints accept the parameters given."""
    spec = yaml.safe_load((PROJECT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert {
        "watch-releases",
        "watch-drugbank",
        "retrain-on-release",
        "ingest",
        "data",
        "teachers",
        "prm",
        "train",
        "evaluate",
    } <= set(deployments)
    assert all(d["work_pool"]["name"] == "mard-local" for d in deployments.values())

    (trigger,) = deployments["retrain-on-release"]["triggers"]
    parsed = TypeAdapter(DeploymentTriggerTypes).validate_python({**trigger, "name": "retrain"})
    assert parsed.expect == {"drugbank.release.detected"}
    assert parsed.match.model_dump() == {"prefect.resource.id": "drugbank.release.*"}

    from mard_core.stages import NAMES

    for d in deployments.values():
        params = flow_parameters(d["entrypoint"])
        for trig in d.get("triggers", []):
            assert set(trig["parameters"]) <= params, d["name"]
        assert set(d.get("parameters") or {}) <= params, d["name"]
        if d["entrypoint"] == "flows/pipeline.py:pipeline" and "until" in (d.get("parameters") or {}):
            assert d["parameters"]["until"] in NAMES, d["name"]  # a stop point of the stage table


@pytest.mark.slow
def test_watch_flow_with_secret_block(
    tmp_path: Path, drugbank: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """The real flow: credentials from a Secret block, an event related to the run, a secret-free artifact."""
    from prefect.artifacts import Artifact
    from prefect.blocks.system import Secret

    from flows.watch import RELEASE_EVENT, watch_flow

    root = tmp_path / "root"
    register(root, tmp_path / "served.zip", "5.1.99")
    Secret(value=f"{USER}:{PASSWORD}").save("test-drugbank-credentials", overwrite=True)
    # Only now the events worker: its thread and this one must not both start Prefect's temporary server.
    events_worker = request.getfixturevalue("asserting_events_worker")
    caplog.set_level(logging.DEBUG)

    result = watch_flow(
        root=str(root), watch=WatchConfig(url=f"{drugbank}/release", secret_block="test-drugbank-credentials")
    )
    assert result["download"] == "downloaded" and [r["version"] for r in result["releases"]] == ["5.1.99"]

    events_worker.drain()
    (event,) = [e for e in events_worker._client.events if e.event == RELEASE_EVENT]
    assert event.resource.id == "drugbank.release.5.1.99"
    assert "flow-run" in {r.role for r in event.related}
    artifact = Artifact.get("release-watch")
    assert artifact is not None and "5.1.99" in json.dumps(artifact.data)
    assert_no_secret(
        caplog.text,
        json.dumps(artifact.data),
        artifact.description or "",
        json.dumps(result),
        event.model_dump_json(),
    )

    with pytest.raises(WatchError, match="Prefect Secret block 'no-such-block': cannot be loaded"):
        watch_flow(root=str(root), watch=WatchConfig(url=f"{drugbank}/release", secret_block="no-such-block"))


def test_ray_cluster_yaml_uses_only_cluster_launcher_keys() -> None:
    """Ray's schema (no unknown keys allowed) accepts infra/ray-cluster.yaml; GPU workers start on demand."""
    from ray.autoscaler._private.util import validate_config

    cfg = yaml.safe_load((PROJECT / "infra" / "ray-cluster.yaml").read_text())
    validate_config(cfg)
    workers = {k: v for k, v in cfg["available_node_types"].items() if k != cfg["head_node_type"]}
    assert workers and all(v["min_workers"] == 0 for v in workers.values())
    assert any("vllm-env.sh" in c for c in cfg["setup_commands"])
