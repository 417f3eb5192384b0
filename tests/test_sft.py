"""Student SFT: mirrored examples, the mirror KL term, pair batching, LoRA training on a tiny model,
resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, TrainerCallback

from mard_core.chains import prompt_drugs
from mard_core.errors import InputError
from mard_core.prompts import parse_completion
from mard_core.taxonomy import mirror_direction
from mard_core.training.config import SFTConfig
from mard_core.training.data import (
    DIRECTION_TOKEN_LIST,
    FORWARD,
    MIRROR,
    SFTExample,
    build_sft_examples,
    group_pairs,
    synthetic_trajectories,
)
from mard_core.training.sft import mirror_kl, sft_trainer, train_sft
from mard_core.training.student import FINAL_DIR, load_student, save_merged
from mard_core.validation import parse_config

IDS = [5, 7, 9]  # where the three direction tokens sit in a 12-token test vocabulary


def _logits(*rows: list[float]) -> torch.Tensor:
    """(n, 12) logits whose softmax over IDS is each row; other vocabulary entries are arbitrary."""
    out = torch.randn(len(rows), 12, generator=torch.Generator().manual_seed(0))
    out[:, IDS] = torch.log(torch.tensor(rows))
    return out


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


# --- the mirror term ----------------------------------------------------------------------------------------


def test_mirror_kl_is_zero_for_exact_mirrors() -> None:
    ab = _logits([0.7, 0.2, 0.1], [0.1, 0.1, 0.8])
    ba = _logits([0.2, 0.7, 0.1], [0.1, 0.1, 0.8]) + 3.0  # a shift of all logits changes nothing
    assert mirror_kl(ab, ba, IDS).item() == pytest.approx(0.0, abs=1e-7)


def test_mirror_kl_matches_hand_computation_and_is_positive() -> None:
    p, q_ba = [0.6, 0.3, 0.1], [0.5, 0.2, 0.3]
    q = [q_ba[1], q_ba[0], q_ba[2]]  # (B, A) read in (A, B) terms
    expected = (_kl(p, q) + _kl(q, p)) / 2
    assert mirror_kl(_logits(p), _logits(q_ba), IDS).item() == pytest.approx(expected, rel=1e-6)
    # averaged over pairs: a second, exactly mirrored pair halves it
    both = mirror_kl(_logits(p, [0.7, 0.2, 0.1]), _logits(q_ba, [0.2, 0.7, 0.1]), IDS)
    assert both.item() == pytest.approx(expected / 2, rel=1e-6)
    same = mirror_kl(_logits([0.7, 0.2, 0.1]), _logits([0.7, 0.2, 0.1]), IDS)  # unmirrored copy is wrong
    assert same.item() > 0.1


def test_mirror_kl_gradients_reach_both_sides_only_at_direction_tokens() -> None:
    ab = _logits([0.6, 0.3, 0.1]).requires_grad_()
    ba = _logits([0.5, 0.2, 0.3]).requires_grad_()
    mirror_kl(ab, ba, IDS).backward()
    others = [i for i in range(12) if i not in IDS]
    for grad in (ab.grad, ba.grad):
        assert grad[:, IDS].abs().sum() > 0
        assert grad[:, others].abs().sum() == 0
    with pytest.raises(InputError, match="shapes differ"):
        mirror_kl(ab, ba[:, :6], IDS)


# --- data ---------------------------------------------------------------------------------------------------


def test_examples_come_in_mirrored_pairs() -> None:
    rows = synthetic_trajectories(6)
    examples = build_sft_examples(rows)
    pairs = group_pairs(examples)
    assert len(examples) == 12 and len(pairs) == 6
    for (ab, ba), row in zip(pairs, rows, strict=True):
        assert (ab.orientation, ba.orientation, ab.pair_id) == (FORWARD, MIRROR, ba.pair_id)
        assert ab.prompt == row["prompt"]
        a, b = prompt_drugs(ab.prompt)
        assert prompt_drugs(ba.prompt) == (b, a)
        assert ab.prompt.split("\n", 2)[2] == ba.prompt.split("\n", 2)[2]  # evidence and task unchanged
        fwd, rev = parse_completion(ab.completion), parse_completion(ba.completion)
        assert fwd.ok and rev.ok
        assert [s.text for s in fwd.steps] == [s.text for s in rev.steps]
        assert rev.answer.direction == mirror_direction(fwd.answer.direction)
        assert (fwd.answer.family, fwd.answer.subtype, fwd.answer.modality) == (
            rev.answer.family,
            rev.answer.subtype,
            rev.answer.modality,
        )
        assert sum(t in ab.completion for t in DIRECTION_TOKEN_LIST) == 1
    assert {parse_completion(e.completion).answer.direction for e in examples} == {
        "A to B",
        "B to A",
        "Bidirectional",
    }


def test_custom_swap_renderer_and_bad_rows() -> None:
    rows = synthetic_trajectories(2)
    examples = build_sft_examples(rows, render_swapped=lambda row: f"swapped {row['drug_a']}\n")
    assert examples[1].prompt == f"swapped {rows[0]['drug_a']}\n"
    assert len(build_sft_examples(rows + rows)) == 4  # exact duplicates give one pair
    with pytest.raises(InputError, match="no parsed answer"):
        build_sft_examples([{**rows[0], "answer": None}])
    with pytest.raises(InputError, match="lack their mirrored example"):
        group_pairs([examples[0]])
    with pytest.raises(InputError, match="two 'ab' examples"):
        group_pairs([examples[0], examples[0]])
    with pytest.raises(InputError, match="Drug A"):
        build_sft_examples([{**rows[0], "prompt": "Evidence only\n"}])


# --- training -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def examples() -> list[SFTExample]:
    return build_sft_examples(synthetic_trajectories(16))


def _cfg(student_base: Path, out: Path, **kw: object) -> SFTConfig:
    return SFTConfig(
        base_model=str(student_base),
        output_dir=str(out),
        max_steps=4,
        save_steps=2,
        logging_steps=1,
        report_to="none",
        device="cpu",
        **kw,
    )


def test_batches_hold_both_orientations_of_each_pair(
    student_base: Path, examples: list[SFTExample], tmp_path: Path
) -> None:
    trainer = sft_trainer(_cfg(student_base, tmp_path, batch_pairs=3), examples)
    tokenizer = trainer.processing_class
    dir_ids = trainer.dir_token_ids
    mirrored = {dir_ids[0]: dir_ids[1], dir_ids[1]: dir_ids[0], dir_ids[2]: dir_ids[2]}
    batch = next(iter(trainer.get_train_dataloader()))
    n = batch["input_ids"].shape[0] // 2
    assert n == 3
    for i in range(n):
        ab, ba = (tokenizer.decode(batch["input_ids"][r], skip_special_tokens=True) for r in (i, i + n))
        a, b = prompt_drugs(ab)
        assert prompt_drugs(ba) == (b, a)
        tok_ab, tok_ba = (int(batch["input_ids"][r, batch["dir_pos"][r] + 1]) for r in (i, i + n))
        assert tok_ab in dir_ids and mirrored[tok_ab] == tok_ba
        assert (
            batch["labels"][i, batch["dir_pos"][i] + 1] == tok_ab
        )  # the direction token is a training target


def test_train_sft_writes_a_loadable_student_with_trained_direction_rows(
    student_base: Path, examples: list[SFTExample], tmp_path: Path
) -> None:
    result = train_sft(_cfg(student_base, tmp_path / "run", lr=5e-3), examples)
    assert result.steps == 4 and result.train_tokens > 0 and math.isfinite(result.train_loss)
    assert result.extra["mirror_kl"] >= 0 and result.student_dir == tmp_path / "run" / FINAL_DIR
    state = json.loads((tmp_path / "run" / "checkpoint-4" / "trainer_state.json").read_text())
    assert all("mirror_kl" in entry for entry in state["log_history"] if "loss" in entry)
    meta = json.loads((result.student_dir / "student.json").read_text())
    assert meta["kind"] == "sft" and list(meta["direction_tokens"]) == list(DIRECTION_TOKEN_LIST)
    model, tokenizer = load_student(result.student_dir)
    ids = tokenizer.convert_tokens_to_ids(list(DIRECTION_TOKEN_LIST))
    assert [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in DIRECTION_TOKEN_LIST] == [
        1,
        1,
        1,
    ]
    assert isinstance(model, PeftModel)
    merged = AutoModelForCausalLM.from_pretrained(save_merged(result.student_dir, tmp_path / "merged"))
    original = AutoModelForCausalLM.from_pretrained(student_base)
    for layer in ("get_input_embeddings", "get_output_embeddings"):
        new, old = getattr(merged, layer)().weight, getattr(original, layer)().weight
        assert not torch.allclose(new[ids], old[ids])  # direction rows trained
        others = [i for i in range(old.shape[0]) if i not in ids]
        assert torch.equal(new[others], old[others])  # every other row frozen


def test_lambda_zero_is_plain_sft_without_the_kl(
    student_base: Path, examples: list[SFTExample], tmp_path: Path
) -> None:
    result = train_sft(_cfg(student_base, tmp_path, mirror_lambda=0.0), examples)
    assert "mirror_kl" not in result.extra
    state = json.loads((tmp_path / "checkpoint-4" / "trainer_state.json").read_text())
    assert not any("mirror_kl" in entry for entry in state["log_history"])


class _Kill(TrainerCallback):
    """Stops the process right after the checkpoint at ``step`` is written, like a crash."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args: object, state: object, control: object, **kwargs: object) -> None:
        if state.global_step == self.step:  # type: ignore[attr-defined]
            raise KeyboardInterrupt


def test_interrupted_run_resumes_to_the_same_adapter(
    student_base: Path, examples: list[SFTExample], tmp_path: Path
) -> None:
    full = train_sft(_cfg(student_base, tmp_path / "full"), examples)
    with pytest.raises(KeyboardInterrupt):
        train_sft(_cfg(student_base, tmp_path / "cut"), examples, callbacks=[_Kill(2)])
    assert not (tmp_path / "cut" / FINAL_DIR).exists()
    resumed = train_sft(_cfg(student_base, tmp_path / "cut"), examples)
    assert resumed.resumed_from and resumed.resumed_from.endswith("checkpoint-2") and resumed.steps == 4
    a = load_file(full.student_dir / "adapter_model.safetensors")
    b = load_file(resumed.student_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and any("trainable_tokens" in k for k in a)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    again = train_sft(_cfg(student_base, tmp_path / "cut"), examples)  # a finished run takes no extra step
    assert again.steps == 4 and again.train_tokens == 0
    c = load_file(again.student_dir / "adapter_model.safetensors")
    assert all(torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(InputError, match="different run"):
        train_sft(_cfg(student_base, tmp_path / "cut", lr=2e-3), examples)


def test_config_errors(student_base: Path, tmp_path: Path) -> None:
    base = {"base_model": str(student_base), "output_dir": str(tmp_path)}
    with pytest.raises(InputError, match=r"^sft: batch_pairs: must be > 0, got 0$"):
        parse_config(SFTConfig, {**base, "batch_pairs": 0}, "sft")
    with pytest.raises(InputError, match=r"^sft: mirror_lambda: must be >= 0"):
        parse_config(SFTConfig, {**base, "mirror_lambda": -1.0}, "sft")
    with pytest.raises(InputError, match=r"^sft: device: must be 'auto', 'cpu' or 'cuda'"):
        parse_config(SFTConfig, {**base, "device": "tpu"}, "sft")
    with pytest.raises(InputError, match=r"^sft: lr: must be a valid number, got '1e-3'"):
        parse_config(SFTConfig, {**base, "lr": "1e-3"}, "sft")
    too_short = _cfg(student_base, tmp_path, max_length=32)
    with pytest.raises(InputError, match="exceed max_length"):
        sft_trainer(too_short, build_sft_examples(synthetic_trajectories(1)))
