"""LoRA SFT of the student with a mirror-symmetric KL on the single direction token.

Built on TRL's :class:`~trl.SFTTrainer`; :class:`MirrorSFTTrainer` only overrides ``compute_loss``. A batch
holds ``batch_pairs`` pairs: the (A, B) sequences first, then their (B, A) mirrors in the same order. The loss
is the token-mean LM loss over the completions of both halves plus ``mirror_lambda`` times :func:`mirror_kl`
between the model's direction-token distributions at the direction position of (A, B) and of (B, A). The
hidden states at those positions are taken with a forward hook on the backbone, so the term costs one (rows x
vocab) projection, not a second forward. ``mirror_lambda=0`` is plain SFT (the ablation): no hook, no extra
work.

The student (direction tokens with trainable embedding rows, LoRA, its directory) is built and written by
:mod:`.student`, the run (resume, summary) by :mod:`.runs`.

Output layout: ``output_dir/checkpoint-N`` every ``save_steps`` (HF Trainer checkpoints, used to resume),
``output_dir/final`` (adapter, tokenizer, ``student.json``, manifest) written atomically at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import PreTrainedTokenizerBase, TrainerCallback
from trl import SFTConfig as TRLSFTConfig
from trl import SFTTrainer

from mard_core.errors import InputError
from mard_core.training.config import SFTConfig
from mard_core.training.data import DIRECTION_TOKEN_LIST, MIRROR_PERMUTATION, SFTExample, group_pairs
from mard_core.training.runs import TrainResult, content_hash, prepare_run, run_trainer, trainer_kwargs
from mard_core.training.student import (
    FINAL_DIR,
    load_base,
    load_tokenizer,
    model_ref,
    save_student,
    wrap_lora,
)

IGNORE_INDEX = -100


# --- the mirror term ----------------------------------------------------------------------------------------


def mirror_kl(logits_ab: torch.Tensor, logits_ba: torch.Tensor, dir_token_ids: Sequence[int]) -> torch.Tensor:
    """Mean symmetric KL between direction distributions of (A, B) and of the mirrored (B, A).

    ``logits_*``: (n, vocab) logits at the direction position of each pair; ``dir_token_ids``: the ids of
    ``<dir_ab>``, ``<dir_ba>``, ``<dir_bi>`` in that order. Each side is softmaxed over those three tokens
    only; the (B, A) distribution is permuted by the mirror map (ab <-> ba, bi fixed) into (A, B) terms, and
    the loss is ``(KL(p || q) + KL(q || p)) / 2`` (halved Jeffreys divergence, so it equals KL for small
    differences), averaged over pairs. Computed in float32; zero exactly when the two are mirror images.
    """
    if logits_ab.shape != logits_ba.shape:
        raise InputError(
            f"mirror_kl: logits shapes differ, {tuple(logits_ab.shape)} vs {tuple(logits_ba.shape)}"
        )
    if len(dir_token_ids) != len(MIRROR_PERMUTATION):
        raise InputError(
            f"mirror_kl: need {len(MIRROR_PERMUTATION)} direction token ids, got {list(dir_token_ids)}"
        )
    ids = torch.as_tensor(list(dir_token_ids), device=logits_ab.device)
    perm = torch.as_tensor(MIRROR_PERMUTATION, device=logits_ab.device)
    log_p = F.log_softmax(logits_ab.index_select(-1, ids).float(), dim=-1)
    log_q = F.log_softmax(logits_ba.index_select(-1, ids).float(), dim=-1).index_select(-1, perm)
    kl_pq = (log_p.exp() * (log_p - log_q)).sum(-1)
    kl_qp = (log_q.exp() * (log_q - log_p)).sum(-1)
    return ((kl_pq + kl_qp) / 2).mean()


# --- SFT ----------------------------------------------------------------------------------------------------


def encode_example(
    tokenizer: PreTrainedTokenizerBase, example: SFTExample, max_length: int, dir_ids: Sequence[int]
) -> dict[str, Any]:
    """Token ids, labels (completion + eos only) and the position whose next token is the direction token."""
    completion = tokenizer(example.completion, add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]
    hits = [i for i, t in enumerate(completion) if t in dir_ids]
    if len(hits) != 1:
        raise InputError(
            f"SFT example {example.pair_id} ({example.orientation}): completion has {len(hits)} "
            "direction tokens, expected exactly 1"
        )
    prompt = tokenizer(example.prompt)["input_ids"]
    if len(prompt) + len(completion) > max_length:
        raise InputError(
            f"SFT example {example.pair_id} ({example.orientation}): {len(prompt)} prompt + "
            f"{len(completion)} completion tokens exceed max_length {max_length}; raise max_length"
        )
    return {
        "input_ids": prompt + completion,
        "labels": [IGNORE_INDEX] * len(prompt) + completion,
        "dir_pos": len(prompt) + hits[0] - 1,
    }


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[SFTExample],
    max_length: int,
    dir_ids: Sequence[int],
) -> list[dict[str, Any]]:
    """One dataset row per pair: the (A, B) and (B, A) encodings side by side."""
    rows = []
    for ab, ba in group_pairs(examples):
        enc = [encode_example(tokenizer, ex, max_length, dir_ids) for ex in (ab, ba)]
        rows.append(
            {"pair_id": ab.pair_id, **{k: [e[k] for e in enc] for k in ("input_ids", "labels", "dir_pos")}}
        )
    return rows


@dataclass
class PairCollator:
    """Right-padded batch of pair rows: all (A, B) sequences, then their (B, A) mirrors in the same order."""

    pad_token_id: int

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        seqs = [
            (r["input_ids"][side], r["labels"][side], r["dir_pos"][side]) for side in (0, 1) for r in rows
        ]
        width = max(len(ids) for ids, _, _ in seqs)
        input_ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (ids, labs, _) in enumerate(seqs):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(labs)] = torch.tensor(labs)
            mask[i, : len(ids)] = 1
        dir_pos = torch.tensor([pos for _, _, pos in seqs], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels, "dir_pos": dir_pos}


class MirrorSFTTrainer(SFTTrainer):
    """SFTTrainer whose loss adds ``mirror_lambda * mirror_kl`` at the direction positions of each pair."""

    def __init__(self, *args: Any, dir_token_ids: Sequence[int], mirror_lambda: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dir_token_ids = list(dir_token_ids)
        self.mirror_lambda = mirror_lambda
        self.train_tokens = 0
        self.kl_values: list[float] = []

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        dir_pos = inputs.pop("dir_pos")
        assert self.model is not None  # the trainer was built with one
        if self.model.training:
            self.train_tokens += int(inputs["attention_mask"].sum())
        if not self.mirror_lambda:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        causal_lm = self.accelerator.unwrap_model(model)
        if hasattr(causal_lm, "get_base_model"):
            causal_lm = causal_lm.get_base_model()
        captured: list[torch.Tensor] = []
        hook = causal_lm.base_model.register_forward_hook(
            lambda _module, _args, out: captured.append(out.last_hidden_state)
        )
        try:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            hook.remove()
        hidden = captured[0]  # the training forward (a return_outputs re-forward comes later, without grad)
        rows = hidden[torch.arange(hidden.size(0), device=hidden.device), dir_pos.to(hidden.device)]
        logits = causal_lm.get_output_embeddings()(rows)
        logits_ab, logits_ba = logits.chunk(2)
        kl = mirror_kl(logits_ab, logits_ba, self.dir_token_ids)
        value = self.accelerator.gather_for_metrics(kl.detach()).mean().item()
        self._metrics["train" if self.model.training else "eval"]["mirror_kl"].append(value)
        self.kl_values.append(value)
        if return_outputs:
            loss, outputs = result
            return loss + self.mirror_lambda * kl, outputs
        return result + self.mirror_lambda * kl


def sft_trainer(
    cfg: SFTConfig, examples: Sequence[SFTExample], callbacks: Sequence[TrainerCallback] = ()
) -> MirrorSFTTrainer:
    """A ready :class:`MirrorSFTTrainer` on ``examples`` (both orientations of every pair, see
    :func:`mard_core.training.data.build_sft_examples`), writing checkpoints to ``cfg.output_dir``."""
    tokenizer, dir_ids = load_tokenizer(cfg.base_model)
    rows = encode_pairs(tokenizer, examples, cfg.max_length, dir_ids)
    model = wrap_lora(
        load_base(cfg.base_model, len(tokenizer), cfg.bf16),
        dir_ids,
        cfg.lora_r,
        cfg.lora_alpha,
        cfg.lora_dropout,
        cfg.target_modules,
        cfg.seed,
    )
    args = TRLSFTConfig(
        **trainer_kwargs(cfg.output_dir, cfg, cfg.batch_pairs),
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,
    )
    return MirrorSFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        data_collator=PairCollator(tokenizer.pad_token_id),
        callbacks=list(callbacks),
        dir_token_ids=dir_ids,
        mirror_lambda=cfg.mirror_lambda,
    )


def train_sft(
    cfg: SFTConfig,
    examples: Sequence[SFTExample],
    resume: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """LoRA SFT of ``cfg.base_model`` on ``examples``; returns the run summary and ``output_dir/final``.

    With ``resume`` a run finds the last checkpoint in ``output_dir`` and continues it (same seed, data order,
    optimizer and RNG state, so it ends where an uninterrupted run ends).
    """
    trainer = sft_trainer(cfg, examples, callbacks)
    out = Path(cfg.output_dir)
    checkpoint = prepare_run(out, {"config": asdict(cfg), "data": content_hash(examples)}, resume)
    loss, wall = run_trainer(trainer, checkpoint)
    meta = {
        "kind": "sft",
        "base_model": model_ref(cfg.base_model),
        "config": asdict(cfg),
        "direction_tokens": dict(zip(DIRECTION_TOKEN_LIST, trainer.dir_token_ids, strict=True)),
    }
    tokenizer = trainer.processing_class
    assert isinstance(tokenizer, PreTrainedTokenizerBase)  # sft_trainer passes the tokenizer
    student = save_student(trainer.model, tokenizer, out / FINAL_DIR, meta)
    extra = {"mirror_kl": sum(trainer.kl_values) / len(trainer.kl_values)} if trainer.kl_values else {}
    return TrainResult(
        student, trainer.state.global_step, loss, trainer.train_tokens, wall, checkpoint, extra
    )
