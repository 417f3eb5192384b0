"""Serving cost per 1,000 predictions: self-hosted device time versus a hosted API at the same token
counts."""

from __future__ import annotations

from typing import Literal

from pydantic.dataclasses import dataclass

from mard_core.errors import InputError
from mard_core.validation import CONFIG, NonNegativeFloat

Device = Literal["gpu", "cpu"]


@dataclass(frozen=True, config=CONFIG)
class PriceTable:
    """Prices in USD; every field is configurable.

    API defaults are OpenAI's GPT-4o list prices (gpt-4o-2024-08-06: $2.50 per million input tokens,
    $10.00 per million output tokens). ``gpu_hour_usd`` is an assumed on-demand price for one data-centre GPU
    and ``cpu_hour_usd`` for one small CPU instance.
    """

    gpu_hour_usd: NonNegativeFloat = 2.5
    cpu_hour_usd: NonNegativeFloat = 0.05
    api_input_per_mtok_usd: NonNegativeFloat = 2.5
    api_output_per_mtok_usd: NonNegativeFloat = 10.0
    api_name: str = "gpt-4o"


def cost_per_1k(
    prompt_tokens: int,
    completion_tokens: int,
    wall_s: float,
    n_predictions: int,
    prices: PriceTable = PriceTable(),
    device: Device = "gpu",
) -> dict[str, float | str | None]:
    """Measured tokens and wall time per 1k predictions, and their self-hosted and API dollar costs.

    Self-hosted cost is device-hours times the hourly price; the API cost prices the same prompt and
    completion token counts. ``self_over_api`` is None when the API cost is zero.
    """
    if n_predictions <= 0:
        raise InputError(f"cost_per_1k: n_predictions must be positive, got {n_predictions}")
    if prompt_tokens < 0 or completion_tokens < 0 or wall_s < 0:
        raise InputError(
            f"cost_per_1k: token counts and wall time must be >= 0 (prompt={prompt_tokens}, "
            f"completion={completion_tokens}, wall_s={wall_s})"
        )
    hourly = {"gpu": prices.gpu_hour_usd, "cpu": prices.cpu_hour_usd}
    if device not in hourly:
        raise InputError(f"cost_per_1k: device {device!r} is not one of {tuple(hourly)}")
    scale = 1000 / n_predictions
    prompt_1k, completion_1k, wall_1k = prompt_tokens * scale, completion_tokens * scale, wall_s * scale
    self_usd = wall_1k / 3600 * hourly[device]
    api_usd = (
        prompt_1k * prices.api_input_per_mtok_usd + completion_1k * prices.api_output_per_mtok_usd
    ) / 1e6
    return {
        "device": device,
        "api_name": prices.api_name,
        "prompt_tokens_per_1k": prompt_1k,
        "completion_tokens_per_1k": completion_1k,
        "wall_s_per_1k": wall_1k,
        "self_hosted_usd_per_1k": self_usd,
        "api_usd_per_1k": api_usd,
        "self_over_api": self_usd / api_usd if api_usd > 0 else None,
    }
