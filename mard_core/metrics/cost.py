"""Serving cost per 1,000 predictions: a self-hosted system at a stated throughput and GPU-hour price, versus
a hosted API (GPT-4o) on the same prompts, both from token counts only (the same inputs give the same costs);
plus the cost of the measured wall time on the device the evaluation ran on.

GPT-4o's prompt tokens are counted with its own ``o200k_base`` encoding (the ``toktok`` package compiles the
encoding into its binary, so nothing is fetched at run time; its counts equal ``tiktoken``'s).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import toktok
from pydantic.dataclasses import dataclass

from mard_core.errors import InputError
from mard_core.validation import CONFIG, NonNegativeFloat, NonNegativeInt, PositiveFloat

Device = Literal["gpu", "cpu"]
API_ENCODING = "o200k_base"  # GPT-4o's tokenizer


@dataclass(frozen=True, config=CONFIG)
class PriceTable:
    """Prices and throughputs; every field is configurable.

    API defaults are OpenAI's GPT-4o list prices (gpt-4o-2024-08-06: $2.50 per million input tokens,
    $10.00 per million output tokens); the API column prices each prompt's o200k_base tokens plus
    ``api_completion_tokens`` per answer (a reasoning chain and its ANSWER line). Self-hosted cost is device
    time at ``gpu_hour_usd`` (an assumed on-demand price of one data-centre GPU): the system's own prompt
    tokens at ``prompt_tokens_per_s`` plus its completion tokens at ``completion_tokens_per_s``, the batched
    serving throughput that ``bench/teachers.py`` measures (its vLLM row's ``prompt_tokens_per_s``, run with
    ``--max-tokens 1``, and ``tokens_per_s``). ``cpu_hour_usd`` prices the measured wall time when the
    evaluation runs on a CPU.
    """

    gpu_hour_usd: NonNegativeFloat = 2.5
    prompt_tokens_per_s: PositiveFloat = 50_000.0
    completion_tokens_per_s: PositiveFloat = 5_000.0
    cpu_hour_usd: NonNegativeFloat = 0.05
    api_input_per_mtok_usd: NonNegativeFloat = 2.5
    api_output_per_mtok_usd: NonNegativeFloat = 10.0
    api_completion_tokens: NonNegativeInt = 256
    api_name: str = "gpt-4o"


def api_prompt_tokens(prompts: Sequence[str]) -> list[int]:
    """Each prompt's token count in GPT-4o's o200k_base encoding (special-token text counts as text)."""
    return toktok.batch_count(list(prompts), API_ENCODING, threads=1)


def cost_per_1k(
    prompt_tokens: int,
    completion_tokens: int,
    api_prompt_tokens: int,
    wall_s: float,
    n_predictions: int,
    prices: PriceTable = PriceTable(),
    device: Device = "gpu",
) -> dict[str, float | str | None]:
    """Tokens and dollars per 1k predictions.

    ``prompt_tokens``/``completion_tokens``: the system's own token counts; ``api_prompt_tokens``: the same
    prompts' o200k_base tokens (:func:`api_prompt_tokens`); ``wall_s``: the measured prediction time on
    ``device``. ``self_hosted_usd_per_1k`` and ``api_usd_per_1k`` depend on token counts only;
    ``measured_usd_per_1k`` prices the wall time at the device's hourly price. ``self_over_api`` is None when
    the API cost is zero.
    """
    if n_predictions <= 0:
        raise InputError(f"cost_per_1k: n_predictions must be positive, got {n_predictions}")
    if min(prompt_tokens, completion_tokens, api_prompt_tokens) < 0 or wall_s < 0:
        raise InputError(
            f"cost_per_1k: token counts and wall time must be >= 0 (prompt={prompt_tokens}, "
            f"completion={completion_tokens}, api_prompt={api_prompt_tokens}, wall_s={wall_s})"
        )
    hourly = {"gpu": prices.gpu_hour_usd, "cpu": prices.cpu_hour_usd}
    if device not in hourly:
        raise InputError(f"cost_per_1k: device {device!r} is not one of {tuple(hourly)}")
    scale = 1000 / n_predictions
    prompt_1k, completion_1k = prompt_tokens * scale, completion_tokens * scale
    api_prompt_1k, api_completion_1k = api_prompt_tokens * scale, 1000.0 * prices.api_completion_tokens
    device_s = prompt_1k / prices.prompt_tokens_per_s + completion_1k / prices.completion_tokens_per_s
    self_usd = device_s / 3600 * prices.gpu_hour_usd
    api_usd = (
        api_prompt_1k * prices.api_input_per_mtok_usd + api_completion_1k * prices.api_output_per_mtok_usd
    ) / 1e6
    return {
        "device": device,
        "api_name": prices.api_name,
        "prompt_tokens_per_1k": prompt_1k,
        "completion_tokens_per_1k": completion_1k,
        "api_prompt_tokens_per_1k": api_prompt_1k,
        "api_completion_tokens_per_1k": api_completion_1k,
        "self_hosted_usd_per_1k": self_usd,
        "api_usd_per_1k": api_usd,
        "self_over_api": self_usd / api_usd if api_usd > 0 else None,
        "wall_s_per_1k": wall_s * scale,
        "measured_usd_per_1k": wall_s * scale / 3600 * hourly[device],
    }
