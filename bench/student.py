"""The demo student's speed: warm-up training tokens/s and constrained answering, batched against one by one.

    python bench/student.py [--docs 256] [--steps 20] [--queries 128] [--batch 64]

Builds the demo student shape (``models.student``: 4 layers of 256) with a tokenizer learnt on synthetic
student-view documents of the demo's length (about 150 prompt + 45 chain tokens), times ``--steps`` warm-up
steps of 16 documents, then answers ``--queries`` prompts with the label-constrained decoder in batches of
``--batch`` and ``--queries // 8`` of them one at a time. Prints a table, the batched/unbatched speed-up and
the numbers as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mard_core.constrained import LabelTrie, generate_answers
from mard_core.student_prompt import answer_line
from mard_core.taxonomy import load_taxonomy
from mard_core.tiny import build_tiny_model
from mard_core.tiny_config import StudentShape, WarmupConfig
from mard_core.training.data import DIRECTION_TOKEN_LIST

GENES = ["CYP3A4", "CYP2D6", "CYP2C9", "CYP1A2", "CYP2C19", "ABCB1", "SLCO1B1", "KCNH2", "ALB", "PTGS1"]
ACTIONS = ["substrate", "inhibitor", "inducer", "antagonist", "agonist", "binder"]


def document(rng: random.Random, labels: list[str]) -> tuple[str, str]:
    """A synthetic (prompt, completion) shaped like the student's view of a query."""
    lines = ["Query: Drug A with Drug B"]
    for i in range(1, 11):
        role, gene = rng.choice("AB"), rng.choice(GENES)
        lines.append(f"[E{i}] Drug {role} is a {rng.choice(ACTIONS)} of {gene} (enzyme)")
    label = rng.choice(labels)
    steps = [
        f"Step 1: Drug A is an inhibitor of {rng.choice(GENES)} [E1].",
        f"Step 2: Drug B is a substrate of {rng.choice(GENES)} [E2].",
        "Step 3: Drug A decreases the metabolism of Drug B.",
    ]
    return "\n".join([*lines, "Reasoning:"]) + "\n", "\n".join([*steps, answer_line(label)]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--queries", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    rng = random.Random(0)
    labels = [label.slash() for label in load_taxonomy().labels()]
    docs = [document(rng, labels) for _ in range(args.docs)]
    with tempfile.TemporaryDirectory() as tmp:
        texts = [t for d in docs for t in d]
        shape = StudentShape()
        start = time.perf_counter()
        base = build_tiny_model(Path(tmp) / "cold", texts, shape, DIRECTION_TOKEN_LIST)
        build_s = time.perf_counter() - start  # tokenizer, init and save: subtracted from the warm build
        tokenizer = AutoTokenizer.from_pretrained(base)
        tokens_per_step = 16 * sum(len(tokenizer(p + c)["input_ids"]) for p, c in docs) / len(docs)
        start = time.perf_counter()
        warm = build_tiny_model(
            Path(tmp) / "warm", texts, shape, DIRECTION_TOKEN_LIST, docs, WarmupConfig(steps=args.steps)
        )
        train_s = time.perf_counter() - start - build_s
        model = AutoModelForCausalLM.from_pretrained(warm).eval()
        trie = LabelTrie(tokenizer, [answer_line(label) for label in labels])
        prompts = [p for p, _ in docs[: args.queries]]
        timings = {}
        for name, batch, n in (("batched", args.batch, len(prompts)), ("one by one", 1, len(prompts) // 8)):
            start = time.perf_counter()
            out = generate_answers(model, tokenizer, prompts[:n], trie, 64, batch)
            seconds = time.perf_counter() - start
            timings[name] = {
                "queries_per_s": n / seconds,
                "completion_tokens_per_s": sum(g.completion_tokens for g in out) / seconds,
            }
    result = {
        "threads": torch.get_num_threads(),
        "warmup_tokens_per_s": args.steps * tokens_per_step / train_s,
        "warmup_s_per_step": train_s / args.steps,
        **{f"{k.replace(' ', '_')}_{m}": v for k, t in timings.items() for m, v in t.items()},
        "batched_speedup": timings["batched"]["queries_per_s"] / timings["one by one"]["queries_per_s"],
    }
    print(f"{'measure':<40} value")
    for key, value in result.items():
        print(f"{key:<40} {value:,.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
