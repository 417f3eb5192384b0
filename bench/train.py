"""Student training speed: SFT tokens/s with and without the mirror KL term, then a demo-size SFT + DPO run.

    python bench/train.py [--rows 200] [--batches 20] [--repeats 3] [--demo-rows 300]

Builds a tiny random-init model (tokenizer trained on the synthetic trajectories), then times the SFT training
step (forward + backward of one batch of 4 pairs = 8 sequences) with ``mirror_lambda=0.1`` and ``0`` on the
same batches, alternating batch by batch. Tokens/s counts the non-pad tokens of the batch; the medians are
reported with the mirror/plain cost ratio (target < 1.3). Then, unless ``--demo-rows 0``, a one-epoch SFT and
a one-epoch PRM-weighted DPO on ``--demo-rows`` trajectories are timed end to end. Prints a table and the
numbers as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mard_core.negatives import family_subtypes
from mard_core.taxonomy import load_taxonomy
from mard_core.tiny import build_tiny_model
from mard_core.tiny_config import TinyModelConfig
from mard_core.training.config import DPOConfig, SFTConfig
from mard_core.training.data import DIRECTION_TOKEN_LIST, build_sft_examples, synthetic_trajectories
from mard_core.training.dpo import build_preference_pairs, train_dpo
from mard_core.training.sft import sft_trainer, train_sft

MIRROR_LAMBDA = 0.1
PROTEINS = ["CYP3A4", "CYP2D6", "CYP2C9", "CYP1A2", "CYP2C19", "ABCB1", "SLCO1B1"]


def step_speeds(
    base: Path, examples: list, out: Path, n_batches: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Tokens/s of the SFT training step (forward + backward) with the mirror term on and off.

    One trainer and the same ``n_batches`` batches; the two settings alternate batch by batch in ABBA order so
    load on the machine hits both alike. Per setting: the median and the best (least disturbed) step.
    """
    trainer = sft_trainer(
        SFTConfig(
            base_model=str(base), output_dir=str(out), mirror_lambda=0.1, report_to="none", device="cpu"
        ),
        examples,
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by train(); the step divides the loss by it
    batches = [b for _, b in zip(range(n_batches), trainer.get_train_dataloader(), strict=False)]
    speeds: dict[float, list[float]] = {MIRROR_LAMBDA: [], 0.0: []}
    for rep in range(repeats + 1):  # the first pass warms up and is not counted
        for i, batch in enumerate(batches):
            tokens = int(batch["attention_mask"].sum())
            for lam in (MIRROR_LAMBDA, 0.0) if (i + rep) % 2 == 0 else (0.0, MIRROR_LAMBDA):
                trainer.mirror_lambda = lam
                start = time.perf_counter()
                trainer.training_step(trainer.model, dict(batch))
                if rep:
                    speeds[lam].append(tokens / (time.perf_counter() - start))
                trainer.model.zero_grad()
    return {
        name: {"median": statistics.median(speeds[lam]), "best": max(speeds[lam])}
        for name, lam in (("mirror", MIRROR_LAMBDA), ("plain", 0.0))
    }


def demo(base: Path, rows: list[dict[str, Any]], tmp: Path) -> dict[str, float]:
    """One epoch of SFT and of PRM-weighted DPO (stand-in PRM scores) on ``rows``; wall seconds of each."""
    start = time.perf_counter()
    sft = train_sft(
        SFTConfig(base_model=str(base), output_dir=str(tmp / "demo-sft"), report_to="none", device="cpu"),
        build_sft_examples(rows),
        resume=False,
    )
    sft_s = time.perf_counter() - start
    pairs = build_preference_pairs(
        rows,
        siblings=family_subtypes(load_taxonomy()),
        proteins=PROTEINS,
        score_fn=lambda _p, c: [0.9 - 0.1 * ("<dir_" not in t) for t in c],
    )
    start = time.perf_counter()
    dpo = train_dpo(
        DPOConfig(output_dir=str(tmp / "demo-dpo"), report_to="none", device="cpu"),
        sft.student_dir,
        pairs,
        resume=False,
    )
    dpo_s = time.perf_counter() - start
    return {
        "demo_rows": len(rows),
        "demo_sft_steps": sft.steps,
        "demo_sft_s": round(sft_s, 1),
        "demo_dpo_pairs": len(pairs),
        "demo_dpo_steps": dpo.steps,
        "demo_dpo_s": round(dpo_s, 1),
        "demo_total_s": round(sft_s + dpo_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200, help="trajectories (pairs) for the step timing")
    parser.add_argument(
        "--batches", type=int, default=20, help="batches (of 4 pairs) timed per setting and pass"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the batches")
    parser.add_argument(
        "--demo-rows", type=int, default=300, help="trajectories of the SFT + DPO demo (0: skip)"
    )
    parser.add_argument("--hidden-size", type=int, default=128)
    args = parser.parse_args()

    rows = synthetic_trajectories(max(args.rows, args.demo_rows))
    examples = build_sft_examples(rows[: args.rows])
    with tempfile.TemporaryDirectory(prefix="mard-bench-train-") as tmp_name:
        tmp = Path(tmp_name)
        corpus = [e.prompt + e.completion for e in build_sft_examples(rows)]
        base = build_tiny_model(
            tmp / "base",
            corpus,
            TinyModelConfig(hidden_size=args.hidden_size),
            extra_special_tokens=DIRECTION_TOKEN_LIST,
        )
        speeds = step_speeds(base, examples, tmp / "speed", args.batches, args.repeats)
        mirror, plain = speeds["mirror"], speeds["plain"]
        report: dict[str, Any] = {
            "rows": args.rows,
            "batches": args.batches,
            "repeats": args.repeats,
            "hidden_size": args.hidden_size,
            "mirror_tokens_per_s": round(mirror["median"]),
            "plain_tokens_per_s": round(plain["median"]),
            "mirror_cost_ratio": round(plain["median"] / mirror["median"], 3),
            "best_mirror_tokens_per_s": round(mirror["best"]),
            "best_plain_tokens_per_s": round(plain["best"]),
            "best_cost_ratio": round(plain["best"] / mirror["best"], 3),
            "load_avg_1m": os.getloadavg()[0],
        }
        if args.demo_rows:
            report |= demo(base, rows[: args.demo_rows], tmp)
    print(f"{'':22}{'median':>10}{'best':>10}  (tokens/s of the SFT step)")
    print(f"{'SFT with mirror KL':22}{mirror['median']:10.0f}{mirror['best']:10.0f}")
    print(f"{'SFT plain (lambda=0)':22}{plain['median']:10.0f}{plain['best']:10.0f}")
    print(
        f"{'mirror cost ratio':22}{report['mirror_cost_ratio']:10.3f}{report['best_cost_ratio']:10.3f}"
        "  (target < 1.3)"
    )
    if args.demo_rows:
        print(
            f"demo SFT + DPO     : {report['demo_total_s']:10.1f} s  (SFT {report['demo_sft_s']} s, "
            f"DPO {report['demo_dpo_s']} s on {report['demo_dpo_pairs']} pairs)"
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
