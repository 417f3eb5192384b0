"""PRM-weighted DPO of the student, starting from its SFT adapter.

Pairs: chosen = a screened trajectory; rejected = its programmatic hard negatives
(:mod:`mard_core.negatives`) and the teacher trajectories the PRM rejected for the same prompt.

PRM weight of a pair: ``w = 2 * sigmoid(weight_beta * (s_chosen - s_rejected))`` with ``s`` the PRM trajectory
score (min over steps). ``w`` lies in (0, 2): 1 when the PRM is indifferent (or a score is missing, or
``weight_beta = 0``: plain DPO, the ablation), towards 2 when the PRM clearly prefers the chosen side, towards
0 when it prefers the rejected one. :class:`WeightedDPOTrainer` (a TRL ``DPOTrainer``) multiplies each pair's
sigmoid DPO loss by ``w`` before the batch mean, so ``w = 1`` everywhere is exactly stock DPO.

The SFT adapter is merged into the base; DPO trains a fresh adapter of the same shape on top, so the
reference model (adapter disabled) is exactly the SFT student. Reference log-probs are precomputed once by
TRL (``precompute_ref_log_probs``) and cached next to the pair dataset, which is saved under ``output_dir``
keyed by its content hash, so a resumed run reuses them.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset, load_from_disk
from peft import LoraConfig
from transformers import AutoTokenizer, TrainerCallback
from trl import DPOConfig as TRLDPOConfig
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from mard_core.chains import Completion, Row, row_name
from mard_core.errors import InputError
from mard_core.negatives import NEGATIVE_KINDS, hard_negatives
from mard_core.prm.model import trajectory_scores
from mard_core.student_prompt import StudentView
from mard_core.training.config import DPOConfig
from mard_core.training.data import DIRECTION_TOKEN_LIST
from mard_core.training.runs import TrainResult, content_hash, prepare_run, run_trainer, trainer_kwargs
from mard_core.training.student import (
    FINAL_DIR,
    STUDENT_FILE,
    merged_student,
    save_student,
    student_identity,
    wrap_lora,
)

WEIGHT = "weight"
TEACHER_REJECTED = "teacher_rejected"
ScoreFn = Callable[[Sequence[str], Sequence[str]], Sequence[float]]
"""``score_fn(prompts, completions)`` -> one PRM trajectory score per completion."""


# --- pairs --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreferencePair:
    """One preference: completions (student format) for ``prompt`` and their PRM trajectory scores."""

    prompt: str
    chosen: str
    rejected: str
    kind: str  # a negatives.NEGATIVE_KINDS entry or "teacher_rejected"
    score_chosen: float | None = None
    score_rejected: float | None = None

    def weight(self, weight_beta: float) -> float:
        return prm_weight(self.score_chosen, self.score_rejected, weight_beta)


def prm_weight(score_chosen: float | None, score_rejected: float | None, weight_beta: float) -> float:
    """``2 * sigmoid(weight_beta * (score_chosen - score_rejected))``; 1.0 when a score is missing."""
    if score_chosen is None or score_rejected is None:
        return 1.0
    return 2.0 / (1.0 + math.exp(-weight_beta * (score_chosen - score_rejected)))


def prm_score_fn(prm: Any) -> ScoreFn:
    """:data:`ScoreFn` of a :class:`mard_core.prm.model.PRM`: the minimum of its step scores."""

    def score(prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        return trajectory_scores(prm.score(list(prompts), list(completions)))[0]

    return score


def _student_text(row: Row) -> str:
    """A teacher row in the student format; a row without a parsed answer keeps its raw text."""
    if row.get("answer") and row.get("steps"):
        return Completion.from_row(row).render()
    return str(row.get("text") or "").strip() + "\n"


def _row_score(row: Row, column: str) -> float | None:
    value = row.get(column)
    return None if value is None else float(value)


def build_preference_pairs(
    chosen_rows: Iterable[Row],
    rejected_rows: Iterable[Row] = (),
    *,
    siblings: Mapping[str, Sequence[str]],
    proteins: Sequence[str],
    score_fn: ScoreFn | None = None,
    score_column: str = "prm_min",
    kinds: Sequence[str] = NEGATIVE_KINDS,
) -> list[PreferencePair]:
    """Pairs for every chosen row: its hard negatives (``kinds``), then the rejected teacher rows of the same
    prompt.

    Scores come from ``score_column`` of a row when set, otherwise from ``score_fn`` (one batched call),
    otherwise stay None (weight 1). Rejected rows whose student text equals the chosen text are skipped.
    """
    rejected_by_prompt: dict[str, list[Row]] = {}
    for row in rejected_rows:
        rejected_by_prompt.setdefault(str(row.get("prompt")), []).append(row)
    pairs: list[PreferencePair] = []
    for row in chosen_rows:
        prompt = row.get("prompt")
        if not prompt:
            raise InputError(f"{row_name(row)}: no prompt")
        source = Completion.from_row(row)
        chosen, s_chosen = source.render(), _row_score(row, score_column)
        pairs += [
            PreferencePair(prompt, chosen, n.completion.render(), n.kind, s_chosen)
            for n in hard_negatives(prompt, source, siblings, proteins, kinds)
        ]
        teacher_rows = rejected_by_prompt.get(prompt, [])
        for rej in sorted(teacher_rows, key=lambda r: (str(r.get("teacher")), r.get("sample") or 0)):
            text = _student_text(rej)
            if text != chosen:
                pairs.append(
                    PreferencePair(
                        prompt, chosen, text, TEACHER_REJECTED, s_chosen, _row_score(rej, score_column)
                    )
                )
    return _fill_scores(pairs, score_fn) if score_fn is not None else pairs


def student_pairs(pairs: Sequence[PreferencePair], view: StudentView) -> list[PreferencePair]:
    """Preference pairs (teacher-format prompts, PRM scores kept) in the student's view."""
    out = []
    for p in pairs:
        evidence = view.evidence(p.prompt)
        prompt, chosen = view.example(p.prompt, p.chosen, evidence=evidence)
        rejected = view.example(p.prompt, p.rejected, evidence=evidence)[1]
        if rejected != chosen:  # e.g. a negative that differed only in the confidence the student omits
            out.append(replace(p, prompt=prompt, chosen=chosen, rejected=rejected))
    return out


def _fill_scores(pairs: list[PreferencePair], score_fn: ScoreFn) -> list[PreferencePair]:
    """Score every (prompt, completion) that lacks a score with one ``score_fn`` call."""
    wanted = sorted(
        {(p.prompt, p.chosen) for p in pairs if p.score_chosen is None}
        | {(p.prompt, p.rejected) for p in pairs if p.score_rejected is None}
    )
    if not wanted:
        return pairs
    values = list(score_fn([w[0] for w in wanted], [w[1] for w in wanted]))
    if len(values) != len(wanted):
        raise InputError(f"score_fn returned {len(values)} scores for {len(wanted)} completions")
    scores = dict(zip(wanted, (float(v) for v in values), strict=True))

    def filled(score: float | None, prompt: str, text: str) -> float:
        return scores[(prompt, text)] if score is None else score

    return [
        replace(
            p,
            score_chosen=filled(p.score_chosen, p.prompt, p.chosen),
            score_rejected=filled(p.score_rejected, p.prompt, p.rejected),
        )
        for p in pairs
    ]


# --- trainer ------------------------------------------------------------------------------------------------


class WeightedPreferenceCollator(DataCollatorForPreference):
    """TRL's preference collator plus the per-pair ``weight`` column."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        batch[WEIGHT] = torch.tensor([float(e[WEIGHT]) for e in examples], dtype=torch.float32)
        return batch


class WeightedDPOTrainer(DPOTrainer):
    """DPOTrainer whose sigmoid DPO loss is ``mean(weight * per_pair_loss)``.

    Needs ``loss_type=["sigmoid"]``, reverse-KL, no ``ld_alpha``/``use_weighting`` and precomputed reference
    log-probs (the batch carries ``ref_chosen_logps``/``ref_rejected_logps``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        a = self.args
        assert isinstance(a, TRLDPOConfig)  # DPOTrainer takes a DPOConfig
        if (
            list(a.loss_type) != ["sigmoid"]
            or a.f_divergence_type != "reverse_kl"
            or a.ld_alpha is not None
            or a.use_weighting
            or not a.precompute_ref_log_probs
        ):
            raise InputError(
                "WeightedDPOTrainer needs loss_type=['sigmoid'], f_divergence_type='reverse_kl', "
                "ld_alpha=None, use_weighting=False and precompute_ref_log_probs=True"
            )
        self.train_tokens = 0

    def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
        return super().compute_ref_log_probs(model, {k: v for k, v in inputs.items() if k != WEIGHT})

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        assert self.model is not None  # the trainer was built with one
        mode = "train" if self.model.training else "eval"
        weight = inputs.pop(WEIGHT)
        completion_mask = inputs["completion_mask"]
        model_kwargs = {
            k: v
            for k, v in inputs.items()
            if k not in ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")
        }
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, use_cache=False, fused_lm_head=True)
        logps = outputs.log_probs[:, -(completion_mask.size(1) - 1) :].sum(dim=1)
        chosen_logps, rejected_logps = logps.chunk(2, dim=0)
        chosen_ratio = chosen_logps - inputs["ref_chosen_logps"]
        rejected_ratio = rejected_logps - inputs["ref_rejected_logps"]
        per_pair = -F.logsigmoid(self.beta * (chosen_ratio - rejected_ratio))
        loss = (weight.to(per_pair) * per_pair).mean()
        if mode == "train":
            self.train_tokens += int(inputs["attention_mask"].sum())
        gather = self.accelerator.gather_for_metrics
        chosen_rewards, rejected_rewards = (
            self.beta * chosen_ratio.detach(),
            self.beta * rejected_ratio.detach(),
        )
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
        metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
        metrics["rewards/accuracies"].append(
            gather((chosen_rewards > rejected_rewards).float()).mean().item()
        )
        metrics["prm_weight"].append(gather(weight).mean().item())
        return (loss, outputs) if return_outputs else loss


# --- training -----------------------------------------------------------------------------------------------


def _pair_rows(pairs: Sequence[PreferencePair], tokenizer: Any, cfg: DPOConfig) -> list[dict[str, Any]]:
    if not pairs:
        raise InputError("no preference pairs to train on")
    rows = []
    for i, p in enumerate(pairs):
        for side, text in (("chosen", p.chosen), ("rejected", p.rejected)):
            n = len(tokenizer(p.prompt + text + tokenizer.eos_token)["input_ids"])
            if n > cfg.max_length:
                raise InputError(
                    f"preference pair {i} ({p.kind}): prompt + {side} is {n} tokens, over "
                    f"DPOConfig.max_length {cfg.max_length}"
                )
        rows.append(
            {
                "prompt": p.prompt,
                "chosen": p.chosen,
                "rejected": p.rejected,
                WEIGHT: p.weight(cfg.weight_beta),
            }
        )
    return rows


def _dataset_on_disk(rows: list[dict[str, Any]], path: Path) -> Any:
    """The pair dataset saved at ``path`` (written once, atomically); TRL caches tokens and ref log-probs
    beside it."""
    if not path.exists():
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        Dataset.from_list(rows).save_to_disk(str(tmp))
        os.replace(tmp, path)
    return load_from_disk(str(path))


def train_dpo(
    cfg: DPOConfig,
    sft_adapter_dir: str | Path,
    pairs: Sequence[PreferencePair],
    resume: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """DPO from the SFT student at ``sft_adapter_dir`` (its ``final`` directory) on ``pairs``; the student
    goes to ``output_dir/final``. ``resume`` continues from the last checkpoint of the same config, student
    and data."""
    sft_dir = Path(sft_adapter_dir).resolve()
    sft_id = student_identity(sft_dir)
    sft_meta = json.loads((sft_dir / STUDENT_FILE).read_text())
    tokenizer = AutoTokenizer.from_pretrained(sft_dir)
    rows = _pair_rows(pairs, tokenizer, cfg)
    data_hash = content_hash(rows)
    out = Path(cfg.output_dir)
    checkpoint = prepare_run(out, {"config": asdict(cfg), "sft": sft_id, "data": data_hash}, resume)
    dataset = _dataset_on_disk(rows, out / f"data-{data_hash[:16]}")
    dir_ids = tokenizer.convert_tokens_to_ids(list(DIRECTION_TOKEN_LIST))
    assert isinstance(dir_ids, list)  # a list of tokens converts to a list of ids
    lora = LoraConfig.from_pretrained(str(sft_dir))
    targets = lora.target_modules if isinstance(lora.target_modules, str) else sorted(lora.target_modules)
    model = wrap_lora(
        merged_student(sft_dir, bf16=cfg.bf16),
        dir_ids,
        lora.r,
        lora.lora_alpha,
        lora.lora_dropout,
        targets,
        cfg.seed,
    )
    args = TRLDPOConfig(
        **trainer_kwargs(str(out), cfg, cfg.batch_size),
        beta=cfg.beta,
        max_length=cfg.max_length,
        loss_type=["sigmoid"],
        precompute_ref_log_probs=True,
    )
    collator = WeightedPreferenceCollator(pad_token_id=tokenizer.pad_token_id, max_length=cfg.max_length)
    trainer = WeightedDPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=collator,
        callbacks=list(callbacks),
    )
    loss, wall = run_trainer(trainer, checkpoint)
    meta = {
        "kind": "dpo",
        "base_model": sft_meta["base_model"],
        "parent": str(sft_dir),
        "config": asdict(cfg),
        "direction_tokens": sft_meta["direction_tokens"],
    }
    student = save_student(trainer.model, tokenizer, out / FINAL_DIR, meta)
    weights = [r[WEIGHT] for r in rows]
    return TrainResult(
        student,
        trainer.state.global_step,
        loss,
        trainer.train_tokens,
        wall,
        checkpoint,
        {"n_pairs": float(len(rows)), "mean_weight": sum(weights) / len(weights)},
    )
