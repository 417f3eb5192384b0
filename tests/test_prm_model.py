"""PRM step scorer on a tiny random-init Llama: encoding, head shapes, loss masking, learning a toy set,
evaluation, save/load round trips (full and LoRA)."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest
import torch

from mard_core.errors import InputError
from mard_core.prm.config import PRMConfig
from mard_core.prm.model import (
    IGNORE,
    PRM,
    PRMExample,
    evaluate,
    examples_from_labels,
    trajectory_scores,
)
from mard_core.tiny import build_tiny_model
from mard_core.tiny_config import TinyModelConfig
from mard_core.validation import parse_config

WORDS = ["alpha", "beta", "gamma", "delta", "kappa", "omega"]
KEY = {"split": "toy", "part": "test", "drug_a": "DB1", "drug_b": "DB2", "teacher": "t"}


def _toy(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Trajectories whose steps say "good" (verifier: correct) or "bad" (incorrect), and their step labels."""
    rng = random.Random(seed)
    trajs, labels = [], []
    for i in range(n):
        good = [rng.random() < 0.5 for _ in range(rng.randint(1, 4))]
        steps = [
            {
                "index": j + 1,
                "text": f"{rng.choice(WORDS)} is {'good' if g else 'bad'} {rng.choice(WORDS)}.",
                "citations": [],
            }
            for j, g in enumerate(good)
        ]
        trajs.append(
            {
                **KEY,
                "sample": i,
                "prompt": f"Drug A: X{i}\nReasoning:\n",
                "steps": steps,
                "correct": all(good),
            }
        )
        labels += [
            {**KEY, "sample": i, "step": j + 1, "label": "correct" if g else "incorrect"}
            for j, g in enumerate(good)
        ]
    return pl.DataFrame(trajs), pl.DataFrame(labels)


TRAIN, TRAIN_LABELS = _toy(64, seed=1)
TEST, TEST_LABELS = _toy(32, seed=2)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [
        r["prompt"] + "\n".join(s["text"] for s in r["steps"]) for r in pl.concat([TRAIN, TEST]).to_dicts()
    ]
    cfg = TinyModelConfig(
        hidden_size=64,
        num_heads=2,
        num_layers=2,
        intermediate_size=128,
        vocab_size=320,
        max_position_embeddings=256,
    )
    return build_tiny_model(tmp_path_factory.mktemp("prm") / "base", texts, cfg)


@pytest.fixture(scope="module")
def trained(base: Path) -> tuple[PRM, dict[str, float]]:
    prm = PRM.create(PRMConfig(str(base), lr=5e-3, epochs=3, batch_size=8, device="cpu"))
    before = evaluate(prm, TEST, TEST_LABELS)["step_auroc"]
    return prm, {**prm.train(examples_from_labels(TRAIN, TRAIN_LABELS)), "step_auroc_before": before}


def test_config_rejects_bad_values() -> None:
    with pytest.raises(InputError, match="^prm: device: must be 'auto', 'cpu' or 'cuda', got 'tpu'$"):
        parse_config(PRMConfig, {"base_model": "x", "device": "tpu"}, "prm")
    with pytest.raises(InputError, match="^prm: batch_size: must be > 0, got 0$"):
        parse_config(PRMConfig, {"base_model": "x", "batch_size": 0}, "prm")


def test_encode_marks_step_ends_and_truncates_the_prompt(base: Path) -> None:
    prm = PRM.create(PRMConfig(str(base), max_length=40, device="cpu"))
    step_id, bos = prm.model.step_token_id, prm.tokenizer.bos_token_id
    enc = prm.encode("Drug A: X\nReasoning:\n", ["Step 1: a.", "Step 2: b.", "Step 3: c."], [1, None, 0])
    ids, labels = enc["input_ids"], enc["labels"]
    ends = [i for i, t in enumerate(ids) if t == step_id]
    assert ids[0] == bos and len(ends) == 3 and ends[-1] == len(ids) - 1
    assert [labels[i] for i in ends] == [1.0, IGNORE, 0.0]
    assert all(lab == IGNORE for i, lab in enumerate(labels) if i not in ends)
    long = prm.encode("alpha beta gamma " * 40, ["Step 1: a."])
    assert len(long["input_ids"]) == 40 and long["input_ids"][0] == bos and long["input_ids"][-1] == step_id
    with pytest.raises(InputError, match="over max_length 40"):
        prm.encode(
            "p", ["Step 1: alpha beta gamma delta kappa omega alpha beta gamma delta kappa omega."] * 4
        )


def test_head_shapes_and_loss_uses_step_positions_only(base: Path) -> None:
    prm = PRM.create(PRMConfig(str(base), device="cpu"))
    batch = prm.collate(
        [
            prm.encode("Drug A: X\n", ["Step 1: good.", "Step 2: bad."], [1, 0]),
            prm.encode("Drug A: Y\n", ["Step 1: good."], [None]),
        ]
    )
    out = prm.model(**batch)
    assert out["logits"].shape == batch["input_ids"].shape and out["loss"].ndim == 0
    is_step = batch["input_ids"] == prm.model.step_token_id
    assert int(is_step.sum()) == 3
    noisy = batch["labels"].clone()
    noisy[~is_step] = 1.0  # labels at non-step positions must not matter
    assert torch.equal(prm.model(**{**batch, "labels": noisy})["loss"], out["loss"])
    flipped = batch["labels"].clone()
    flipped[0][is_step[0]] = torch.tensor([0.0, 1.0])
    assert not torch.equal(prm.model(**{**batch, "labels": flipped})["loss"], out["loss"])
    masked = batch["labels"].clone()
    masked[1][is_step[1]] = 1.0  # the unverifiable step's label joins the loss once set
    assert not torch.equal(prm.model(**{**batch, "labels": masked})["loss"], out["loss"])


def test_learns_separable_toy_set(trained: tuple[PRM, dict[str, float]]) -> None:
    prm, metrics = trained
    assert metrics["n_examples"] == 64 and metrics["n_labelled_steps"] == TRAIN_LABELS.height
    report = evaluate(prm, TEST, TEST_LABELS)
    assert metrics["step_auroc_before"] < 0.7 and report["step_auroc"] > 0.9
    assert report["verifier_trajectory_auroc"] == 1.0  # all steps correct <=> trajectory correct here
    assert report["trajectory_min_auroc"] > 0.9
    assert report["n_trajectories"] == 32 and report["n_labelled_steps"] == TEST_LABELS.height
    roc = report["roc"]["step"]
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0 and len(roc["fpr"]) == len(roc["tpr"])


def test_scores_from_raw_text_and_frames_agree(trained: tuple[PRM, dict[str, float]]) -> None:
    prm, _ = trained
    row = TEST.row(0, named=True)
    lines = [f"Step {s['index']}: {s['text']}" for s in row["steps"]]
    completion = "\n".join(lines) + "\nANSWER: PK Exposure/Other/A to B/Increase | confidence 0.5\n"
    (by_text,) = prm.score([row["prompt"]], [completion])
    (by_steps,) = prm.score_steps([row["prompt"]], [lines])
    assert by_text == by_steps and len(by_text) == len(lines) and all(0 < p < 1 for p in by_text)
    scored = prm.score_trajectories(TEST.head(3))
    assert scored["prm_steps"][0].to_list() == pytest.approx(by_steps)
    assert scored["prm_min"][0] == pytest.approx(min(by_steps))
    assert trajectory_scores([[0.5, 0.8], []]) == ([0.5, 0.0], [0.4, 0.0])


def test_save_load_round_trip(trained: tuple[PRM, dict[str, float]], tmp_path: Path) -> None:
    prm, _ = trained
    examples = examples_from_labels(TEST, TEST_LABELS)
    prompts, steps = [e.prompt for e in examples], [e.steps for e in examples]
    out = prm.save(tmp_path / "prm")
    assert (out / "backbone").is_dir() and (out / "head.safetensors").is_file()
    assert PRM.load(out).score_steps(prompts, steps) == prm.score_steps(prompts, steps)
    (out / "head.safetensors").write_bytes(b"broken")
    with pytest.raises(InputError, match="incomplete or changed"):
        PRM.load(out)


def test_lora_trains_adapters_and_round_trips(base: Path, tmp_path: Path) -> None:
    prm = PRM.create(PRMConfig(str(base), lora=True, lora_r=4, lr=5e-3, epochs=1, device="cpu"))
    trainable = {n for n, p in prm.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    frozen = {n: p.detach().clone() for n, p in prm.model.named_parameters() if not p.requires_grad}
    prm.train(examples_from_labels(TRAIN.head(16), TRAIN_LABELS))
    assert all(torch.equal(p, frozen[n]) for n, p in prm.model.named_parameters() if n in frozen)
    out = prm.save(tmp_path / "lora")
    assert (out / "adapter" / "adapter_config.json").is_file() and not (out / "backbone").exists()
    examples = examples_from_labels(TEST.head(8), TEST_LABELS)
    args = ([e.prompt for e in examples], [e.steps for e in examples])
    assert PRM.load(out).score_steps(*args) == prm.score_steps(*args)


def test_examples_mask_unlabelled_steps() -> None:
    labels = TRAIN_LABELS.filter(~((pl.col("sample") == 0) & (pl.col("step") == 1)))
    first = examples_from_labels(TRAIN.head(1), labels)[0]
    assert first.labels[0] is None and len(first.labels) == len(first.steps)
    assert isinstance(first, PRMExample) and first.steps[0].startswith("Step 1: ")
    with pytest.raises(InputError, match="unknown step labels"):
        examples_from_labels(TRAIN, TRAIN_LABELS.with_columns(pl.lit("maybe").alias("label")))
