"""OpenAI-compatible HTTP backend (``/v1/completions`` or ``/v1/chat/completions``) for any endpoint.

The API key is read from the environment variable named in the config and only ever placed in the
Authorization header: it is scrubbed from every log line and error message.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import httpx

from mard_core.errors import InputError
from mard_core.teachers.base import Backend, Completion, GenerationParams, TeacherError
from mard_core.teachers.config import HTTPConfig

log = logging.getLogger(__name__)

_APIS = {"completions": "/completions", "chat": "/chat/completions"}
_BODY_SNIPPET_CHARS = 300


class RateLimiter:
    """Spaces calls to ``wait()`` at least ``1 / rate`` seconds apart across threads (None: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        time.sleep(start - now)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent/invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HTTPBackend(Backend):
    """Generate through an OpenAI-compatible server; one request per prompt carrying ``n``."""

    config_cls: ClassVar[type[HTTPConfig]] = HTTPConfig

    def __init__(self, config: HTTPConfig) -> None:
        self.config = config
        self.url = config.base_url.rstrip("/") + _APIS[config.api]
        self.name = f"openai:{config.model}@{self.url}"
        self._secret = self._read_key(config.api_key_env)
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s),
            limits=httpx.Limits(max_connections=config.max_concurrency),
        )
        self._limiter = RateLimiter(config.requests_per_second)
        self._jitter = random.Random()

    @staticmethod
    def _read_key(env_name: str | None) -> str | None:
        if env_name is None:
            return None
        key = os.environ.get(env_name)
        if not key:
            raise InputError(f"HTTP backend: environment variable {env_name} (api_key_env) is not set")
        return key

    def __repr__(self) -> str:
        return f"HTTPBackend(url={self.url!r}, model={self.config.model!r})"

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Completion]]:
        """Send the prompts concurrently (at most ``max_concurrency`` in flight); results in prompt order."""
        if not prompts:
            return []
        with ThreadPoolExecutor(max_workers=min(self.config.max_concurrency, len(prompts))) as pool:
            futures = [pool.submit(self._complete, prompt, params) for prompt in prompts]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def close(self) -> None:
        self._client.close()

    def _complete(self, prompt: str, params: GenerationParams) -> list[Completion]:
        """Greedy decoding (temperature 0) asks for one choice and repeats it n times (some servers,
        vLLM among them, reject n > 1 without sampling)."""
        n = params.n if params.temperature > 0 else 1
        start = time.perf_counter()
        data = self._post(self._body(prompt, params, n))
        completions = self._parse(data, n, time.perf_counter() - start)
        return completions * (params.n // n)

    def _body(self, prompt: str, params: GenerationParams, n: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "seed": params.seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if self.config.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if n > 1 and self.config.per_choice_token_counts:
            body["logprobs"] = True if self.config.api == "chat" else 0
        return {**body, **self.config.extra_body}

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        problem = ""
        for attempt in range(self.config.max_retries + 1):
            self._limiter.wait()
            retry_after = None
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TimeoutException:
                problem = f"timed out after {self.config.timeout_s} s"
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return self._json(response)
                body_text = self._redact(response.text)[:_BODY_SNIPPET_CHARS]
                problem = f"HTTP {response.status_code}: {body_text}"
                if response.status_code != 429 and response.status_code < 500:
                    raise TeacherError(self._redact(f"{self.url} answered {problem}"))
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt == self.config.max_retries:
                break
            delay = self._delay(attempt, retry_after)
            message = f"{self.url}: {problem}; retry {attempt + 1}/{self.config.max_retries} in {delay:.2f} s"
            log.warning("%s", self._redact(message))
            time.sleep(delay)
        raise TeacherError(
            self._redact(f"{self.url} failed after {self.config.max_retries + 1} attempts; last: {problem}")
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After when given, else exponential backoff with jitter in [50 %, 100 %]; capped."""
        if retry_after is not None:
            return min(retry_after, self.config.max_backoff_s)
        backoff = min(self.config.backoff_base_s * 2**attempt, self.config.max_backoff_s)
        return backoff * self._jitter.uniform(0.5, 1.0)

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            snippet = self._redact(response.text)[:_BODY_SNIPPET_CHARS]
            raise TeacherError(f"{self.url} answered non-JSON: {snippet}") from exc
        if not isinstance(data, dict):
            raise TeacherError(f"{self.url} answered JSON that is not an object")
        return data

    def _parse(self, data: dict[str, Any], n: int, latency: float) -> list[Completion]:
        choices = sorted(data.get("choices") or [], key=lambda choice: choice.get("index", 0))
        usage = data.get("usage") or {}
        if len(choices) != n or "prompt_tokens" not in usage or "completion_tokens" not in usage:
            raise TeacherError(
                f"{self.url} answered {len(choices)} choices (expected {n}) "
                f"and usage {sorted(usage)} (need prompt_tokens and completion_tokens)"
            )
        counts = self._choice_token_counts(choices, int(usage["completion_tokens"]))
        return [
            Completion(
                text=self._choice_text(choice),
                prompt_tokens=int(usage["prompt_tokens"]),
                completion_tokens=count,
                latency_s=latency,
                finish_reason=str(choice.get("finish_reason") or "unknown"),
            )
            for choice, count in zip(choices, counts, strict=True)
        ]

    def _choice_text(self, choice: Mapping[str, Any]) -> str:
        if self.config.api == "chat":
            return (choice.get("message") or {}).get("content") or ""
        return choice.get("text") or ""

    def _choice_token_counts(self, choices: list[dict[str, Any]], total: int) -> list[int]:
        """``usage.completion_tokens`` is summed over choices: split it by each choice's logprobs entries
        when the server returned them, else evenly (remainder to the first choices)."""
        if len(choices) == 1:
            return [total]
        key = "content" if self.config.api == "chat" else "tokens"
        per_choice = [((choice.get("logprobs") or {}).get(key)) for choice in choices]
        token_lists = [tokens for tokens in per_choice if isinstance(tokens, list)]
        if len(token_lists) == len(per_choice) and sum(map(len, token_lists)) == total:
            return [len(tokens) for tokens in token_lists]
        base, extra = divmod(total, len(choices))
        return [base + (i < extra) for i in range(len(choices))]
