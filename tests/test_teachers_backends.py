"""Teacher backends: protocol/factory, transformers, OpenAI-compatible HTTP (fake local server), real vLLM."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mard_core.errors import InputError
from mard_core.teachers import Backend, GenerationParams, TeacherError, make_backend
from mard_core.teachers.config import HFConfig, HTTPConfig, VLLMConfig
from mard_core.teachers.hf import HFBackend
from mard_core.teachers.http import HTTPBackend, parse_retry_after
from mard_core.teachers.vllm import VLLMBackend, default_venv
from mard_core.tiny import build_tiny_model
from mard_core.tiny_config import TinyModelConfig
from mard_core.validation import parse_config

CORPUS = [f"Drug{i} may increase the serum concentration of Drug{i + 2} when combined." for i in range(80)]
PROMPTS = ["Drug1 may increase", "The serum concentration of Drug5 can be increased when Drug7 is combined"]
SECRET = "sk-test-0123456789abcdef-SECRET"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = TinyModelConfig(max_position_embeddings=256)
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", CORPUS, cfg)


@pytest.fixture(scope="module")
def hf(tiny_model: Path) -> Iterator[HFBackend]:
    with HFBackend(HFConfig(str(tiny_model), batch_size=4)) as backend:
        yield backend


# ---------------------------------------------------------------- protocol and factory


def test_generation_params_validation() -> None:
    assert GenerationParams(stop=["a", "b"]).stop == ("a", "b")  # type: ignore[arg-type]
    assert GenerationParams(stop="a").stop == ("a",)  # type: ignore[arg-type]
    for options, message in [
        ({"n": 0}, "params: n: must be > 0, got 0"),
        ({"temperature": -0.1}, "params: temperature: must be >= 0.0, got -0.1"),
        ({"top_p": 0.0}, "params: top_p: must be > 0.0, got 0.0"),
        ({"max_tokens": 0}, "params: max_tokens: must be > 0, got 0"),
        ({"stop": [""]}, "params: stop[0]: string should have at least 1 character, got ''"),
        ({"stop": []}, "params: stop: tuple should have at least 1 item after validation, not 0, got []"),
        ({"n": "2"}, "params: n: must be a valid integer, got '2'"),
    ]:
        with pytest.raises(InputError) as info:
            parse_config(GenerationParams, options, "params")
        assert str(info.value).startswith(message)


def test_make_backend_rejects_bad_specs() -> None:
    with pytest.raises(InputError, match="'backend' must be one of \\['hf', 'openai', 'vllm'\\], got 'tgi'"):
        make_backend({"backend": "tgi", "model": "m"})
    with pytest.raises(
        InputError, match=r"teacher spec for 'openai': temprature: unknown key; allowed: api, "
    ):
        make_backend(
            {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1", "temprature": 1}
        )
    with pytest.raises(InputError, match=r"teacher spec for 'openai': base_url: required key missing"):
        make_backend({"backend": "openai", "model": "m"})
    with pytest.raises(
        InputError,
        match=r"teacher spec for 'hf': dtype: must be 'auto', 'float32', 'float16' or "
        r"'bfloat16', got 'fp8'",
    ):
        make_backend({"backend": "hf", "model": "m", "dtype": "fp8"})


def test_make_backend_builds_hf_backend(tiny_model: Path) -> None:
    with make_backend({"backend": "hf", "model": str(tiny_model), "device": "cpu"}) as backend:
        assert isinstance(backend, HFBackend) and isinstance(backend, Backend)
        assert backend.name == f"hf:{tiny_model}"
        assert len(backend.generate(PROMPTS[:1], GenerationParams(max_tokens=2))[0]) == 1


# ---------------------------------------------------------------- transformers backend


def test_hf_generates_n_samples_per_prompt_with_exact_counts(hf: HFBackend, tiny_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    params = GenerationParams(n=3, max_tokens=12, seed=7)
    results = hf.generate(PROMPTS, params)
    assert [len(row) for row in results] == [3, 3]
    for prompt, row in zip(PROMPTS, results, strict=True):
        for completion in row:
            assert completion.prompt_tokens == len(tokenizer(prompt).input_ids)
            assert completion.finish_reason in {"stop", "length"}
            if completion.finish_reason == "length":
                assert completion.completion_tokens == 12
            assert completion.latency_s > 0
    assert len({c.text for c in results[0]}) == 3
    again = hf.generate(PROMPTS, params)
    assert [[c.text for c in row] for row in again] == [[c.text for c in row] for row in results]
    other = hf.generate(PROMPTS, GenerationParams(n=3, max_tokens=12, seed=8))
    assert [c.text for c in other[0]] != [c.text for c in results[0]]


def _greedy_tokens(model_dir: Path, prompt: str, max_tokens: int) -> list[int]:
    """Greedy continuation computed directly with transformers (independent of the backend)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = AutoTokenizer.from_pretrained(model_dir)(prompt, return_tensors="pt").input_ids
    tokens = []
    with torch.no_grad():
        for _ in range(max_tokens):
            token = int(model(ids).logits[0, -1].argmax())
            tokens.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return tokens


def test_hf_greedy_stop_string_and_eos_counts(hf: HFBackend, tiny_model: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    reference = _greedy_tokens(tiny_model, PROMPTS[0], 10)
    greedy = hf.generate(PROMPTS[:1], GenerationParams(n=2, temperature=0, max_tokens=10))[0]
    assert greedy[0] == greedy[1]
    assert greedy[0].text == tokenizer.decode(reference, skip_special_tokens=True)
    assert (greedy[0].completion_tokens, greedy[0].finish_reason) == (10, "length")

    # Stop string: the text ends before it; the count runs to the token that completed it.
    cut = next(
        k for k in range(3, 10) if tokenizer.decode(reference[:k]) != tokenizer.decode(reference[: k - 1])
    )
    stop = tokenizer.decode(reference[:cut])[-1:]
    full = tokenizer.decode(reference)
    stopped = hf.generate(PROMPTS[:1], GenerationParams(temperature=0, max_tokens=10, stop=(stop,)))[0][0]
    first = next(k for k in range(1, 11) if stop in tokenizer.decode(reference[:k]))
    assert (stopped.text, stopped.completion_tokens, stopped.finish_reason) == (
        full[: full.find(stop)], first, "stop",
    )  # fmt: skip

    # EOS: declare the third greedy token an end-of-sequence token; it is counted, not decoded.
    variant = tmp_path / "eos-variant"
    shutil.copytree(tiny_model, variant)
    config_path = variant / "generation_config.json"
    generation = json.loads(config_path.read_text())
    generation["eos_token_id"] = [tokenizer.eos_token_id, reference[2]]
    config_path.write_text(json.dumps(generation))
    end = reference.index(reference[2])
    with HFBackend(HFConfig(str(variant))) as backend:
        ended = backend.generate(PROMPTS[:1], GenerationParams(temperature=0, max_tokens=10))[0][0]
    assert (ended.completion_tokens, ended.finish_reason) == (end + 1, "stop")
    assert ended.text == tokenizer.decode(reference[:end], skip_special_tokens=True)


def test_hf_errors(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="cannot load model"):
        HFBackend(HFConfig(str(tmp_path / "missing")))
    backend = HFBackend(HFConfig(str(tiny_model)))
    backend.close()
    with pytest.raises(TeacherError, match="after close"):
        backend.generate(PROMPTS, GenerationParams())


# ---------------------------------------------------------------- HTTP backend against a fake server


@dataclass
class FakeOpenAI:
    """Answers each request with the next scripted action; then with success."""

    script: list[tuple[Any, ...]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        with self.lock:
            self.requests.append(
                {"path": handler.path, "body": body, "headers": dict(handler.headers), "t": time.monotonic()}
            )
            action = self.script.pop(0) if self.script else ("ok",)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if action[0] == "sleep":
                time.sleep(action[1])
                action = ("ok",)
            if action[0] == "status":
                headers = {"Retry-After": action[2]} if len(action) > 2 else {}
                echo = f"upstream rejected token {handler.headers.get('Authorization')}"
                self._send(handler, action[1], {"error": {"message": echo}}, headers)
            else:
                self._send(handler, 200, self._success(handler.path, body), {})
        finally:
            with self.lock:
                self.in_flight -= 1

    @staticmethod
    def _success(path: str, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["messages"][0]["content"] if path.endswith("chat/completions") else body["prompt"]
        choices = []
        for i in range(body["n"]):
            tokens = [f"t{j}" for j in range(i + 2)]
            choice: dict[str, Any] = {"index": i, "finish_reason": "length" if i else "stop"}
            if path.endswith("chat/completions"):
                choice["message"] = {"role": "assistant", "content": f"{prompt}|{i}"}
                choice["logprobs"] = (
                    {"content": [{"token": t} for t in tokens]} if body.get("logprobs") else None
                )
            else:
                choice["text"] = f"{prompt}|{i}"
                choice["logprobs"] = {"tokens": tokens} if body.get("logprobs") == 0 else None
            choices.append(choice)
        completion = sum(i + 2 for i in range(body["n"]))
        prompt_tokens = len(prompt.split())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion}
        return {"choices": list(reversed(choices)), "usage": usage}

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], headers: dict[str, str]
    ) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    state = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.respond(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _http(base_url: str, **overrides: Any) -> HTTPBackend:
    options: dict[str, Any] = {"base_url": base_url, "model": "teacher", "backoff_base_s": 0.01, **overrides}
    return HTTPBackend(HTTPConfig(**options))


def test_http_success_orders_results_and_counts_tokens(fake: tuple[FakeOpenAI, str]) -> None:
    state, url = fake
    prompts = ["alpha beta", "gamma", "delta epsilon zeta"]
    with _http(url, max_concurrency=3) as backend:
        results = backend.generate(prompts, GenerationParams(n=2, max_tokens=5, seed=4, stop=("\n",)))
    assert [[c.text for c in row] for row in results] == [[f"{p}|0", f"{p}|1"] for p in prompts]
    assert [[c.completion_tokens for c in row] for row in results] == [[2, 3]] * 3
    assert [row[0].prompt_tokens for row in results] == [2, 1, 3]
    assert [c.finish_reason for c in results[0]] == ["stop", "length"]
    assert len(state.requests) == 3 and all(r["path"] == "/v1/completions" for r in state.requests)
    sent = state.requests[0]["body"]
    assert {k: sent[k] for k in ("model", "n", "max_tokens", "seed", "stop", "logprobs")} == {
        "model": "teacher", "n": 2, "max_tokens": 5, "seed": 4, "stop": ["\n"], "logprobs": 0,
    }  # fmt: skip
    assert "authorization" not in {k.lower() for k in state.requests[0]["headers"]}


def test_http_chat_api_with_key_and_greedy_single_request(
    fake: tuple[FakeOpenAI, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = fake
    monkeypatch.setenv("FAKE_TEACHER_KEY", SECRET)
    with _http(url, api="chat", api_key_env="FAKE_TEACHER_KEY") as backend:
        sampled = backend.generate(["one two"], GenerationParams(n=2))[0]
        greedy = backend.generate(["one two"], GenerationParams(n=3, temperature=0))[0]
    assert [c.text for c in sampled] == ["one two|0", "one two|1"]
    assert [c.completion_tokens for c in sampled] == [2, 3]
    assert greedy == [greedy[0]] * 3 and greedy[0].completion_tokens == 2
    assert [r["path"] for r in state.requests] == ["/v1/chat/completions"] * 2
    assert state.requests[0]["body"]["messages"] == [{"role": "user", "content": "one two"}]
    assert state.requests[1]["body"]["n"] == 1
    assert state.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"


def test_http_retries_500_then_succeeds(
    fake: tuple[FakeOpenAI, str], caplog: pytest.LogCaptureFixture
) -> None:
    state, url = fake
    state.script = [("status", 500), ("status", 502)]
    with caplog.at_level(logging.WARNING), _http(url) as backend:
        result = backend.generate(["p"], GenerationParams())
    assert result[0][0].text == "p|0"
    assert len(state.requests) == 3
    assert "HTTP 500" in caplog.text and "retry 2/5" in caplog.text


def test_http_honours_retry_after_on_429(fake: tuple[FakeOpenAI, str]) -> None:
    state, url = fake
    state.script = [("status", 429, "1")]
    with _http(url) as backend:
        assert backend.generate(["p"], GenerationParams())[0][0].text == "p|0"
    assert len(state.requests) == 2
    assert state.requests[1]["t"] - state.requests[0]["t"] >= 0.95


def test_http_retries_after_timeout(fake: tuple[FakeOpenAI, str]) -> None:
    state, url = fake
    state.script = [("sleep", 1.0)]
    with _http(url, timeout_s=0.3) as backend:
        assert backend.generate(["p"], GenerationParams())[0][0].text == "p|0"
    assert len(state.requests) == 2


def test_http_exhausted_retries_and_client_errors_are_clear(fake: tuple[FakeOpenAI, str]) -> None:
    state, url = fake
    state.script = [("status", 503)] * 3
    with _http(url, max_retries=2) as backend, pytest.raises(TeacherError) as failure:
        backend.generate(["p"], GenerationParams())
    assert f"{url}/completions failed after 3 attempts; last: HTTP 503" in str(failure.value)
    state.script = [("status", 400)]
    with _http(url) as backend, pytest.raises(TeacherError, match="answered HTTP 400"):
        backend.generate(["p"], GenerationParams())
    assert len(state.requests) == 4


def test_http_key_never_leaks(
    fake: tuple[FakeOpenAI, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    state, url = fake
    monkeypatch.setenv("FAKE_TEACHER_KEY", SECRET)
    state.script = [("status", 500), ("status", 500), ("status", 401)]
    with caplog.at_level(logging.DEBUG), _http(url, api_key_env="FAKE_TEACHER_KEY") as backend:
        shown = [repr(backend), str(backend.config), backend.name]
        with pytest.raises(TeacherError) as failure:
            backend.generate(["p"], GenerationParams())
    assert state.requests[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert "upstream rejected token Bearer ***" in str(failure.value)
    assert "HTTP 500" in caplog.text
    for text in [str(failure.value), repr(failure.value), caplog.text, *shown]:
        assert SECRET not in text
    monkeypatch.delenv("FAKE_TEACHER_KEY")
    with pytest.raises(InputError, match="environment variable FAKE_TEACHER_KEY"):
        _http(url, api_key_env="FAKE_TEACHER_KEY")


def test_http_rate_limit_and_concurrency(fake: tuple[FakeOpenAI, str]) -> None:
    state, url = fake
    state.script = [("sleep", 0.2)] * 6
    with _http(url, max_concurrency=2, requests_per_second=20) as backend:
        results = backend.generate([f"p{i}" for i in range(6)], GenerationParams())
    assert [row[0].text for row in results] == [f"p{i}|0" for i in range(6)]
    assert state.max_in_flight == 2
    starts = sorted(r["t"] for r in state.requests)
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.04


def test_parse_retry_after() -> None:
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# ---------------------------------------------------------------- vLLM backend


def test_vllm_missing_venv_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match=r"has no bin/python: create it with infra/vllm-env.sh"):
        VLLMBackend(VLLMConfig(model="m", venv=str(tmp_path / "no-venv")))


@pytest.mark.slow
def test_vllm_generates_through_real_server(tiny_model: Path) -> None:
    if not (default_venv() / "bin" / "python").exists():
        pytest.skip(f"vLLM venv {default_venv()} does not exist: run infra/vllm-env.sh")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    params = GenerationParams(n=2, max_tokens=16, seed=5)
    with make_backend({"backend": "vllm", "model": str(tiny_model), "max_model_len": 256}) as backend:
        assert isinstance(backend, VLLMBackend) and backend.startup_s > 0
        results = backend.generate(PROMPTS, params)
        again = backend.generate(PROMPTS, params)
        greedy = backend.generate(PROMPTS[:1], GenerationParams(n=2, temperature=0, max_tokens=8))[0]
        process = backend._process
    assert process.poll() is not None
    assert [len(row) for row in results] == [2, 2]
    for prompt, row in zip(PROMPTS, results, strict=True):
        for completion in row:
            assert completion.prompt_tokens == len(tokenizer(prompt).input_ids)
            assert 1 <= completion.completion_tokens <= 16
            assert completion.finish_reason == "length" or completion.completion_tokens < 16
    assert [[c.text for c in row] for row in again] == [[c.text for c in row] for row in results]
    assert greedy[0] == greedy[1] and greedy[0].completion_tokens <= 8


@pytest.mark.slow
def test_vllm_server_death_reports_log_lines(tmp_path: Path) -> None:
    if not (default_venv() / "bin" / "python").exists():
        pytest.skip(f"vLLM venv {default_venv()} does not exist: run infra/vllm-env.sh")
    model = tmp_path / "broken-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    log = tmp_path / "server.log"
    with pytest.raises(TeacherError, match=r"exited with code \d+ before becoming healthy") as failure:
        VLLMBackend(VLLMConfig(model=str(model), startup_timeout_s=120, log_path=str(log)))
    assert f"log {log}, last lines:" in str(failure.value)
    last_line = log.read_text().strip().splitlines()[-1]
    assert last_line in str(failure.value)
