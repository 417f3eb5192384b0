"""Teacher throughput: the vLLM backend against the transformers backend on the same prompts, in one run.

    python bench/teachers.py [--prompts 32] [--n 4] [--max-tokens 64] [--arch llama] [--hidden-size 128]

Builds a tiny random-init model (tokenizer trained on a synthetic DDI-like corpus), then runs each backend in
turn (vLLM first, stopped before transformers starts so they do not share the cores): start/load, one warm-up
pass over the batch, and the timed generation. Prints trajectories/s and completion tokens/s of each and the
vLLM/transformers ratio, then the same numbers as one JSON line (with prompt tokens/s, the prefill
throughput when run with ``--max-tokens 1``). The evaluation prices self-hosted cost (``evaluate.prices``)
from these. Needs the vLLM venv (infra/vllm-env.sh).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mard_core.teachers import Backend, GenerationParams
from mard_core.teachers.config import HFConfig, VLLMConfig
from mard_core.teachers.hf import HFBackend
from mard_core.teachers.vllm import VLLMBackend
from mard_core.tiny import build_tiny_model
from mard_core.tiny_config import TinyModelConfig

EFFECTS = [
    "increase the serum concentration of",
    "decrease the absorption of",
    "increase the risk of bleeding with",
]


def corpus(size: int = 600) -> list[str]:
    return [
        f"Drug{i} can {EFFECTS[i % len(EFFECTS)]} Drug{(i * 7) % size} when combined." for i in range(size)
    ]


def prompts(count: int) -> list[str]:
    return [f"Drug{i} can {EFFECTS[i % len(EFFECTS)]}" for i in range(count)]


def measure(start: Callable[[], Backend], batch: list[str], params: GenerationParams) -> dict[str, float]:
    """Start the backend, warm it up on the whole batch (first batches of a shape are slow), then time
    ``generate`` over the batch."""
    began = time.perf_counter()
    with start() as backend:
        started = time.perf_counter() - began
        backend.generate(batch, params)
        t0 = time.perf_counter()
        results = backend.generate(batch, params)
        wall = time.perf_counter() - t0
    trajectories = sum(len(row) for row in results)
    tokens = sum(c.completion_tokens for row in results for c in row)
    prompt_tokens = sum(row[0].prompt_tokens for row in results if row)  # each prompt is read once
    return {
        "start_s": round(started, 2),
        "wall_s": round(wall, 3),
        "trajectories": trajectories,
        "completion_tokens": tokens,
        "trajectories_per_s": round(trajectories / wall, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "prompt_tokens_per_s": round(prompt_tokens / wall, 1),  # prefill throughput with --max-tokens 1
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--arch", default="llama", choices=["llama", "qwen2", "mistral"])
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--hf-batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    params = GenerationParams(
        n=args.n, max_tokens=args.max_tokens, temperature=0.8, top_p=0.95, seed=args.seed
    )
    batch = prompts(args.prompts)
    cfg = TinyModelConfig(
        arch=args.arch, hidden_size=args.hidden_size, num_heads=args.hidden_size // 64,
        num_layers=args.num_layers, intermediate_size=2 * args.hidden_size, seed=args.seed,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mard-bench-teachers-") as tmp:
        model = str(build_tiny_model(Path(tmp) / "model", corpus(), cfg))
        max_len = min(cfg.max_position_embeddings, 64 + args.max_tokens)
        results = {
            "vllm": measure(
                lambda: VLLMBackend(VLLMConfig(model=model, max_model_len=max_len)), batch, params
            ),
            "hf": measure(
                lambda: HFBackend(HFConfig(model=model, batch_size=args.hf_batch_size)), batch, params
            ),
        }
    print(
        f"{args.prompts} prompts x n={args.n}, max_tokens={args.max_tokens}, "
        f"{args.arch} hidden={args.hidden_size}"
    )
    print(f"{'backend':8} {'start s':>8} {'wall s':>8} {'traj/s':>9} {'tokens/s':>10}")
    for name, row in results.items():
        print(
            f"{name:8} {row['start_s']:8.2f} {row['wall_s']:8.3f} "
            f"{row['trajectories_per_s']:9.2f} {row['tokens_per_s']:10.1f}"
        )
    ratio = results["vllm"]["tokens_per_s"] / results["hf"]["tokens_per_s"]
    print(f"vllm/hf tokens/s ratio: {ratio:.2f}")
    print(json.dumps({**results, "vllm_over_hf_tokens_per_s": round(ratio, 2)}))


if __name__ == "__main__":
    main()
