"""PRM-weighted DPO: pair building, weights, equivalence with stock TRL DPO, training from the SFT student."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from trl import DPOConfig as TRLDPOConfig
from trl import DPOTrainer

from mard_core.errors import InputError
from mard_core.negatives import NEGATIVE_KINDS
from mard_core.prm.config import PRMConfig
from mard_core.prm.model import PRM
from mard_core.prompts import parse_completion
from mard_core.training.config import DPOConfig, SFTConfig
from mard_core.training.data import build_sft_examples, synthetic_trajectories
from mard_core.training.dpo import (
    TEACHER_REJECTED,
    PreferencePair,
    WeightedDPOTrainer,
    WeightedPreferenceCollator,
    build_preference_pairs,
    prm_score_fn,
    prm_weight,
    train_dpo,
)
from mard_core.training.runs import trainer_kwargs
from mard_core.training.sft import train_sft
from mard_core.training.student import load_base, load_student, load_tokenizer, wrap_lora
from mard_core.validation import parse_config

SIBLINGS = {"PK Metabolism": ["Metabolism", "Other"], "PD Additive": ["Bleeding", "Other"]}
PROTEINS = ["CYP3A4", "CYP2D6", "CYP2C9"]


def _rejected(row: dict) -> dict:
    """A teacher trajectory for the same prompt with the wrong direction, as the PRM would reject it."""
    wrong = row["answer"].replace("A to B", "B to A")
    return {
        **row,
        "teacher": "other",
        "answer": wrong,
        "correct": False,
        "prm_min": 0.1,
        "text": row["text"].replace("A to B", "B to A"),
    }


# --- pairs and weights --------------------------------------------------------------------------------------


def test_prm_weight() -> None:
    assert prm_weight(0.7, 0.7, 5.0) == 1.0
    assert prm_weight(0.9, 0.1, 0.0) == 1.0  # weight_beta 0: plain DPO
    assert prm_weight(None, 0.1, 5.0) == prm_weight(0.9, None, 5.0) == 1.0
    assert prm_weight(0.9, 0.5, 5.0) == pytest.approx(2 / (1 + math.exp(-2.0)))
    assert 0 < prm_weight(0.1, 0.9, 5.0) < 1 < prm_weight(0.9, 0.1, 5.0) < 2


def test_pairs_from_negatives_and_prm_rejected_teacher_rows() -> None:
    rows = synthetic_trajectories(3)
    chosen = [{**r, "prm_min": 0.9} for r in rows]
    calls: list[int] = []

    def score_fn(prompts: list[str], completions: list[str]) -> list[float]:
        calls.append(len(completions))
        return [0.4] * len(completions)

    pairs = build_preference_pairs(
        chosen,
        [_rejected(rows[0]), {**_rejected(rows[0]), "prompt": "other\n"}],
        siblings=SIBLINGS,
        proteins=PROTEINS,
        score_fn=score_fn,
    )
    kinds = [p.kind for p in pairs]
    assert kinds.count(TEACHER_REJECTED) == 1  # only the row with the same prompt
    assert set(kinds) == {*NEGATIVE_KINDS, TEACHER_REJECTED}
    assert len(calls) == 1  # one batched PRM call, for the unscored negatives only
    teacher = next(p for p in pairs if p.kind == TEACHER_REJECTED)
    assert (teacher.score_chosen, teacher.score_rejected) == (0.9, 0.1)
    assert parse_completion(teacher.rejected).answer.direction == "B to A" and "<dir_ba>" in teacher.rejected
    assert all(p.score_rejected == 0.4 for p in pairs if p.kind != TEACHER_REJECTED)
    assert all(p.chosen != p.rejected and p.prompt in {r["prompt"] for r in rows} for p in pairs)
    unscored = build_preference_pairs(rows[:1], siblings=SIBLINGS, proteins=PROTEINS)
    assert all(p.weight(5.0) == 1.0 for p in unscored)
    with pytest.raises(InputError, match="no parsed answer"):
        build_preference_pairs([{**rows[0], "answer": None}], siblings=SIBLINGS, proteins=PROTEINS)


# --- trainer ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pairs() -> list[PreferencePair]:
    rows = [{**r, "prm_min": 0.9} for r in synthetic_trajectories(4)]
    return build_preference_pairs(
        rows,
        siblings=SIBLINGS,
        proteins=PROTEINS,
        score_fn=lambda _p, c: [0.2 + 0.1 * (len(t) % 5) for t in c],
    )


def test_prm_score_fn_is_the_min_step_score(student_base: Path, pairs: list[PreferencePair]) -> None:
    prm = PRM.create(PRMConfig(base_model=str(student_base), device="cpu"))
    prompts, completions = [p.prompt for p in pairs[:3]], [p.rejected for p in pairs[:3]]
    scores = prm_score_fn(prm)(prompts, completions)
    assert scores == [min(s) for s in prm.score(prompts, completions)]
    assert all(0 < s < 1 for s in scores)


def _trainer(cls: type, student_base: Path, rows: list[dict], out: Path, **kw: object) -> DPOTrainer:
    tokenizer, dir_ids = load_tokenizer(student_base)
    model = wrap_lora(
        load_base(student_base, len(tokenizer), False), dir_ids, 8, 16, 0.0, ("q_proj", "v_proj"), 0
    )
    args = TRLDPOConfig(
        **trainer_kwargs(
            str(out),
            DPOConfig(device="cpu", report_to="none", save_steps=10, logging_steps=1, lr=1e-3, max_steps=1),
            batch_size=4,
        ),
        beta=0.1,
        max_length=512,
        loss_type=["sigmoid"],
        precompute_ref_log_probs=True,
    )
    return cls(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer, **kw
    )


def test_weight_one_is_stock_dpo_and_weights_scale_each_pair(
    student_base: Path, pairs: list[PreferencePair], tmp_path: Path
) -> None:
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs[:4]]
    tokenizer, _ = load_tokenizer(student_base)
    collate = WeightedPreferenceCollator(pad_token_id=tokenizer.pad_token_id)
    weighted = _trainer(
        WeightedDPOTrainer,
        student_base,
        [{**r, "weight": 1.0} for r in rows],
        tmp_path / "w",
        data_collator=collate,
    )
    stock = _trainer(DPOTrainer, student_base, rows, tmp_path / "s")
    examples = [weighted.train_dataset[i] for i in range(4)]

    def stock_loss(items: list[dict]) -> torch.Tensor:
        batch = {k: v for k, v in collate(items).items() if k != "weight"}
        return stock.compute_loss(stock.model, batch).detach()

    ones = weighted.compute_loss(weighted.model, collate(examples)).detach()
    assert ones.item() == pytest.approx(stock_loss(examples).item(), abs=1e-6)
    per_pair = torch.stack([stock_loss([e]) for e in examples])
    w = [0.5, 1.5, 0.2, 1.8]
    reweighted = [{**e, "weight": x} for e, x in zip(examples, w, strict=True)]
    scaled = weighted.compute_loss(weighted.model, collate(reweighted))
    assert scaled.item() == pytest.approx((torch.tensor(w) * per_pair).mean().item(), abs=1e-6)


def _mean_margin(student_dir: Path, pairs: list[PreferencePair]) -> float:
    """Mean log p(chosen) - log p(rejected) of the student's completions."""
    model, tokenizer = load_student(student_dir)
    model.eval()
    total = 0.0
    for p in pairs:
        start = len(tokenizer(p.prompt)["input_ids"])
        logps = []
        for text in (p.chosen, p.rejected):
            ids = torch.tensor([tokenizer(p.prompt + text + tokenizer.eos_token)["input_ids"]])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
            logps.append(logits.gather(-1, ids[0, 1:, None])[start - 1 :].sum().item())
        total += logps[0] - logps[1]
    return total / len(pairs)


def test_train_dpo_from_the_sft_student(
    student_base: Path, pairs: list[PreferencePair], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sft = train_sft(
        SFTConfig(
            base_model=str(student_base),
            output_dir=str(tmp_path / "sft"),
            max_steps=2,
            report_to="none",
            device="cpu",
        ),
        build_sft_examples(synthetic_trajectories(8)),
    )
    cfg = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        lr=5e-3,
        max_steps=8,
        save_steps=4,
        logging_steps=2,
        report_to="none",
        device="cpu",
    )
    result = train_dpo(cfg, sft.student_dir, pairs)
    assert result.steps == 8 and result.extra["n_pairs"] == len(pairs)
    assert result.extra["mean_weight"] == pytest.approx(sum(p.weight(5.0) for p in pairs) / len(pairs))
    meta = json.loads((result.student_dir / "student.json").read_text())
    assert meta["kind"] == "dpo" and meta["parent"] == str(sft.student_dir.resolve())
    state = json.loads((tmp_path / "dpo" / "checkpoint-8" / "trainer_state.json").read_text())
    assert all("prm_weight" in e and "rewards/margins" in e for e in state["log_history"] if "loss" in e)
    assert (
        _mean_margin(result.student_dir, pairs) > _mean_margin(sft.student_dir, pairs) + 0.25
    )  # 3.89 -> 4.38

    def no_recompute(*_a: object, **_k: object) -> None:
        raise AssertionError("reference log-probs recomputed instead of read from the cache")

    monkeypatch.setattr(WeightedDPOTrainer, "compute_ref_log_probs", no_recompute)
    rerun = train_dpo(cfg, sft.student_dir, pairs, resume=False)
    assert rerun.steps == 8 and rerun.train_loss == pytest.approx(result.train_loss, abs=1e-6)


def test_dpo_config_and_input_errors(student_base: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^dpo: beta: must be > 0"):
        parse_config(DPOConfig, {"output_dir": str(tmp_path), "beta": 0.0}, "dpo")
    with pytest.raises(InputError, match=r"^dpo: max_steps: must be -1 \(use epochs\) or >= 1, got 0$"):
        parse_config(DPOConfig, {"output_dir": str(tmp_path), "max_steps": 0}, "dpo")
    with pytest.raises(InputError, match="incomplete"):
        train_dpo(
            DPOConfig(output_dir=str(tmp_path / "dpo"), device="cpu", report_to="none"),
            tmp_path / "missing",
            [],
        )
