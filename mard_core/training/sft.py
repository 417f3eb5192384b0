"""LoRA SFT of the student with a mirror-symmetric KL on the single direction token.

Built on TRL's :class:`~trl.SFTTrainer`; :class:`MirrorSFTTrainer` only overrides ``compute_loss``. A batch holds
``batch_pairs`` pairs: the (A, B) sequences first, then their (B, A) mirrors in the same order. The loss is the
token-mean LM loss over the completions of both halves plus ``mirror_lambda`` times :func:`mirror_kl` between
the model's direction-token distributions at the direction position of (A, B) and of (B, A). The hidden states
at those positions are taken with a forward hook on the backbone, so the term costs one (rows x vocab)
projection, not a second forward. ``mirror_lambda=0`` is plain SFT (the ablation): no hook, no extra work.

The three direction tokens are added as special tokens when the base tokenizer lacks them (new embedding rows:
the mean of the old rows). Their input and output embedding rows are trainable through peft's
``trainable_token_indices`` (whether newly added or already in the base vocabulary): they are the student's
answer, and LoRA on attention alone cannot move them. A tied LM head follows the input embedding.

Output layout: ``output_dir/checkpoint-N`` every ``save_steps`` (HF Trainer checkpoints, used to resume),
``output_dir/final`` (adapter, tokenizer, ``student.json``, manifest) written atomically at the end.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from peft.utils import SAFETENSORS_WEIGHTS_NAME as SAFE_ADAPTER_NAME
from safetensors.torch import load_file
from torch import nn
from transformers import (
    AddedToken,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    TrainerCallback,
    TrainerState,
    set_seed,
)
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import get_last_checkpoint
from trl import SFTConfig as TRLSFTConfig
from trl import SFTTrainer

from mard_core.errors import InputError
from mard_core.stage import canonical_json, materialize, read_manifest, verify_output, write_json_atomic
from mard_core.training.data import DIRECTION_TOKEN_LIST, MIRROR_PERMUTATION, SFTExample, group_pairs

IGNORE_INDEX = -100
FINAL_DIR, STUDENT_FILE, RUN_FILE = "final", "student.json", "run.json"
DEVICES = ("auto", "cpu", "cuda")
REPORT_TO = ("auto", "none", "mlflow")


# --- the mirror term -------------------------------------------------------------------------------------------

def mirror_kl(logits_ab: torch.Tensor, logits_ba: torch.Tensor, dir_token_ids: Sequence[int]) -> torch.Tensor:
    """Mean symmetric KL between direction distributions of (A, B) and of the mirrored (B, A).

    ``logits_*``: (n, vocab) logits at the direction position of each pair; ``dir_token_ids``: the ids of
    ``<dir_ab>``, ``<dir_ba>``, ``<dir_bi>`` in that order. Each side is softmaxed over those three tokens only;
    the (B, A) distribution is permuted by the mirror map (ab <-> ba, bi fixed) into (A, B) terms, and the loss
    is ``(KL(p || q) + KL(q || p)) / 2`` (halved Jeffreys divergence, so it equals KL for small differences),
    averaged over pairs. Computed in float32; zero exactly when the two are mirror images.
    """
    if logits_ab.shape != logits_ba.shape:
        raise InputError(f"mirror_kl: logits shapes differ, {tuple(logits_ab.shape)} vs {tuple(logits_ba.shape)}")
    if len(dir_token_ids) != len(MIRROR_PERMUTATION):
        raise InputError(f"mirror_kl: need {len(MIRROR_PERMUTATION)} direction token ids, got {list(dir_token_ids)}")
    ids = torch.as_tensor(list(dir_token_ids), device=logits_ab.device)
    perm = torch.as_tensor(MIRROR_PERMUTATION, device=logits_ab.device)
    log_p = F.log_softmax(logits_ab.index_select(-1, ids).float(), dim=-1)
    log_q = F.log_softmax(logits_ba.index_select(-1, ids).float(), dim=-1).index_select(-1, perm)
    kl_pq = (log_p.exp() * (log_p - log_q)).sum(-1)
    kl_qp = (log_q.exp() * (log_q - log_p)).sum(-1)
    return ((kl_pq + kl_qp) / 2).mean()


# --- configuration ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainerSettings:
    """What every student trainer shares. ``device``: auto | cpu | cuda; ``report_to``: auto (MLflow when
    MLFLOW_TRACKING_URI is set) | none | mlflow; ``output_dir`` is set by the caller (the pipeline: the stage's
    work directory)."""

    output_dir: str = ""
    lr: float = 1e-3
    epochs: int = 1
    max_steps: int = -1
    seed: int = 0
    save_steps: int = 50
    max_length: int = 2048
    bf16: bool = False
    gradient_checkpointing: bool = False
    device: str = "auto"
    logging_steps: int = 5
    report_to: str = "auto"

    def __post_init__(self) -> None:
        where = type(self).__name__
        for name in ("epochs", "save_steps", "max_length", "logging_steps"):
            if getattr(self, name) < 1:
                raise InputError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise InputError(f"{where}.max_steps must be -1 (use epochs) or >= 1, got {self.max_steps}")
        if not self.lr > 0:
            raise InputError(f"{where}.lr must be > 0, got {self.lr}")
        check_runtime(self.device, self.report_to, where)


@dataclass(frozen=True)
class SFTConfig(TrainerSettings):
    """Student SFT: LoRA shape, mirror-KL weight, pairs per batch. ``target_modules``: names or ``"all-linear"``."""

    base_model: str = ""  # a checkpoint path or name; "" in the pipeline: the models stage's student-base
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] | str = ("q_proj", "v_proj")
    batch_pairs: int = 4
    mirror_lambda: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lora_r", "lora_alpha", "batch_pairs"):
            if getattr(self, name) < 1:
                raise InputError(f"SFTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.lora_dropout < 1 or self.mirror_lambda < 0:
            raise InputError(f"SFTConfig: need 0 <= lora_dropout < 1, mirror_lambda >= 0; got "
                             f"lora_dropout={self.lora_dropout}, mirror_lambda={self.mirror_lambda}")


def check_runtime(device: str, report_to: str, where: str) -> None:
    if device not in DEVICES:
        raise InputError(f"{where}.device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{where}.device is 'cuda' but no CUDA device is available")
    if report_to not in REPORT_TO:
        raise InputError(f"{where}.report_to must be one of {REPORT_TO}, got {report_to!r}")


def trainer_kwargs(output_dir: str, *, device: str, report_to: str, bf16: bool, gradient_checkpointing: bool,
                   seed: int, save_steps: int, logging_steps: int, lr: float, epochs: int, max_steps: int,
                   batch_size: int) -> dict[str, Any]:
    """TrainingArguments shared by the SFT and DPO trainers."""
    use_mlflow = report_to == "mlflow" or (report_to == "auto" and bool(os.environ.get("MLFLOW_TRACKING_URI")))
    return {
        "output_dir": output_dir, "per_device_train_batch_size": batch_size, "learning_rate": lr,
        "num_train_epochs": epochs, "max_steps": max_steps, "seed": seed, "data_seed": seed,
        "save_strategy": "steps", "save_steps": save_steps, "logging_steps": logging_steps,
        "report_to": ["mlflow"] if use_mlflow else "none", "bf16": bf16,
        "gradient_checkpointing": gradient_checkpointing,
        "use_cpu": device == "cpu" or (device == "auto" and not torch.cuda.is_available()),
        "disable_tqdm": True, "remove_unused_columns": False, "dataloader_num_workers": 0,
    }


# --- model and tokenizer ---------------------------------------------------------------------------------------

def load_tokenizer(path: str | Path) -> tuple[PreTrainedTokenizerBase, list[int]]:
    """The tokenizer at ``path`` with the direction tokens (added when missing) and a pad token; their ids."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise InputError(f"tokenizer of {path}: cannot load ({exc})") from exc
    missing = [t for t in DIRECTION_TOKEN_LIST if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise InputError(f"tokenizer of {path}: no pad or eos token to pad batches with")
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise InputError(f"tokenizer of {path}: no eos token to end completions with")
    ids = tokenizer.convert_tokens_to_ids(list(DIRECTION_TOKEN_LIST))
    return tokenizer, ids


def fit_embeddings(model: PreTrainedModel, n_tokens: int) -> None:
    """Grow input (and untied output) embeddings to ``n_tokens`` rows; new rows are the mean of the old rows."""
    n_old = model.get_input_embeddings().weight.shape[0]
    if n_tokens <= n_old:
        return
    model.resize_token_embeddings(n_tokens, mean_resizing=False)
    layers = {id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None}
    with torch.no_grad():
        for layer in layers.values():
            layer.weight[n_old:] = layer.weight[:n_old].mean(dim=0)


def model_ref(name: str | Path) -> str:
    """A local model path made absolute; anything else (a hub id) as given."""
    return str(Path(name).resolve()) if Path(name).exists() else str(name)


def load_base(name: str | Path, n_tokens: int, bf16: bool) -> PreTrainedModel:
    """The causal LM at ``name`` (local path or hub id) with embeddings grown to ``n_tokens`` rows."""
    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.bfloat16 if bf16 else torch.float32)
    except OSError as exc:
        raise InputError(f"base model {name}: cannot load ({exc})") from exc
    fit_embeddings(model, n_tokens)
    return model


def _module_name(model: nn.Module, module: nn.Module) -> str:
    return next(name for name, m in model.named_modules() if m is module).rsplit(".", 1)[-1]


def wrap_lora(model: PreTrainedModel, dir_ids: Sequence[int], r: int, alpha: int, dropout: float,
              target_modules: Sequence[str] | str, seed: int) -> Any:
    """A seeded PeftModel: LoRA on ``target_modules`` plus trainable direction-token rows of the input and
    (untied) output embeddings."""
    tokens = {_module_name(model, model.get_input_embeddings()): list(dir_ids)}
    output = model.get_output_embeddings()
    if output is not None and output.weight is not model.get_input_embeddings().weight:
        if output.bias is not None:
            raise InputError("trainable direction-token rows need an LM head without bias")
        tokens[_module_name(model, output)] = list(dir_ids)
    targets = target_modules if isinstance(target_modules, str) else list(target_modules)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM",
                        trainable_token_indices=tokens)
    set_seed(seed)
    return expose_head_bias(get_peft_model(model, config))


def expose_head_bias(model: Any) -> Any:
    """Give a peft-wrapped LM head the ``bias`` attribute (None) that TRL's fused LM head reads.

    peft's TrainableTokensWrapper forwards only ``weight`` and computes the head without bias itself; heads
    with a bias are refused in :func:`wrap_lora`.
    """
    head = model.get_output_embeddings()
    if not hasattr(head, "bias"):
        head.bias = None
    return model


def load_student(student_dir: str | Path, bf16: bool = False) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    """(PeftModel, tokenizer) of a student written by :func:`train_sft` or ``train_dpo``.

    A DPO student's adapter sits on its SFT parent merged into the base; the parent is loaded the same way.
    """
    path = Path(student_dir)
    problems = verify_output(path)
    if problems:
        raise InputError(f"student at {path} is incomplete or changed: {'; '.join(problems)}")
    meta = json.loads((path / STUDENT_FILE).read_text())
    tokenizer = AutoTokenizer.from_pretrained(path)
    if meta.get("parent"):
        base = merged_student(meta["parent"], bf16=bf16)
    else:
        base = load_base(meta["base_model"], len(tokenizer), bf16)
    return PeftModel.from_pretrained(base, path), tokenizer


def merged_student(student_dir: str | Path, bf16: bool = False) -> PreTrainedModel:
    """The student as one plain model: its adapter (and trainable token rows) merged into the base."""
    model, _ = load_student(student_dir, bf16=bf16)
    return model.merge_and_unload()


def save_merged(student_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the merged student and its tokenizer (a plain HF model directory, e.g. for vLLM) atomically."""
    model = merged_student(student_dir)
    tokenizer = AutoTokenizer.from_pretrained(student_dir)

    def build(tmp: Path) -> dict[str, Any]:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        return {}

    return materialize(Path(out_dir), build, {"kind": "merged_student", "student": str(Path(student_dir).resolve())})


def save_student(model: Any, tokenizer: PreTrainedTokenizerBase, out: Path, meta: Mapping[str, Any]) -> Path:
    """Adapter + tokenizer + ``student.json`` into ``out``, atomically (manifest last)."""

    def build(tmp: Path) -> dict[str, Any]:
        model.save_pretrained(tmp, selected_adapters=["default"])
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / STUDENT_FILE, meta)
        return {}

    return materialize(out, build, {"kind": meta["kind"]})


# --- runs and resume -------------------------------------------------------------------------------------------

def content_hash(items: Iterable[Any]) -> str:
    """sha256 over the canonical JSON of each item, streamed (no one big string)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(canonical_json(item).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def prepare_run(output_dir: Path, fingerprint: Mapping[str, Any], resume: bool) -> str | None:
    """The checkpoint to resume from (None: start fresh). Refuses checkpoints of a different config or data."""
    output_dir.mkdir(parents=True, exist_ok=True)
    run_file = output_dir / RUN_FILE
    last = get_last_checkpoint(str(output_dir))
    if last and resume:
        previous = json.loads(run_file.read_text()) if run_file.exists() else None
        if previous != json.loads(canonical_json(fingerprint)):
            raise InputError(f"{output_dir} holds checkpoints of a different run (config or data changed); "
                             "use a new output_dir or resume=False")
        return last
    for old in output_dir.glob("checkpoint-*"):
        if re.fullmatch(r"checkpoint-\d+", old.name):
            shutil.rmtree(old)
    write_json_atomic(run_file, json.loads(canonical_json(fingerprint)))
    return None


@dataclass
class TrainResult:
    """What a training run did; ``tokens_per_s`` counts every (non-pad) token fed to the model in this process."""

    student_dir: Path
    steps: int
    train_loss: float
    train_tokens: int
    train_s: float
    resumed_from: str | None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_s if self.train_s > 0 else 0.0


def run_trainer(trainer: Any, checkpoint: str | None) -> tuple[float, float]:
    """Train (resuming from ``checkpoint``); (mean training loss, wall seconds).

    A checkpoint that already reached the run's last step only has its weights loaded (HF would take one step
    more): (nan, 0.0), nothing trained in this process.
    """
    trainer.remove_callback(PrinterCallback)
    if checkpoint:
        state = TrainerState.load_from_json(str(Path(checkpoint) / TRAINER_STATE_NAME))
        if state.global_step >= state.max_steps:
            set_peft_model_state_dict(trainer.model, load_file(Path(checkpoint) / SAFE_ADAPTER_NAME))
            trainer.state = state
            return math.nan, 0.0
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    return float(output.training_loss), time.perf_counter() - start


# --- SFT -------------------------------------------------------------------------------------------------------

def encode_example(tokenizer: PreTrainedTokenizerBase, example: SFTExample, max_length: int,
                   dir_ids: Sequence[int]) -> dict[str, Any]:
    """Token ids, labels (completion + eos only) and the position whose next token is the direction token."""
    completion = tokenizer(example.completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    hits = [i for i, t in enumerate(completion) if t in dir_ids]
    if len(hits) != 1:
        raise InputError(f"SFT example {example.pair_id} ({example.orientation}): completion has {len(hits)} "
                         "direction tokens, expected exactly 1")
    prompt = tokenizer(example.prompt)["input_ids"]
    if len(prompt) + len(completion) > max_length:
        raise InputError(f"SFT example {example.pair_id} ({example.orientation}): {len(prompt)} prompt + "
                         f"{len(completion)} completion tokens exceed max_length {max_length}; raise max_length")
    return {"input_ids": prompt + completion, "labels": [IGNORE_INDEX] * len(prompt) + completion,
            "dir_pos": len(prompt) + hits[0] - 1}


def encode_pairs(tokenizer: PreTrainedTokenizerBase, examples: Sequence[SFTExample], max_length: int,
                 dir_ids: Sequence[int]) -> list[dict[str, Any]]:
    """One dataset row per pair: the (A, B) and (B, A) encodings side by side."""
    rows = []
    for ab, ba in group_pairs(examples):
        enc = [encode_example(tokenizer, ex, max_length, dir_ids) for ex in (ab, ba)]
        rows.append({"pair_id": ab.pair_id, **{k: [e[k] for e in enc] for k in ("input_ids", "labels", "dir_pos")}})
    return rows


@dataclass
class PairCollator:
    """Right-padded batch of pair rows: all (A, B) sequences, then their (B, A) mirrors in the same order."""

    pad_token_id: int

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        seqs = [(r["input_ids"][side], r["labels"][side], r["dir_pos"][side]) for side in (0, 1) for r in rows]
        width = max(len(ids) for ids, _, _ in seqs)
        input_ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (ids, labs, _) in enumerate(seqs):
            input_ids[i, :len(ids)] = torch.tensor(ids)
            labels[i, :len(labs)] = torch.tensor(labs)
            mask[i, :len(ids)] = 1
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

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        dir_pos = inputs.pop("dir_pos")
        if self.model.training:
            self.train_tokens += int(inputs["attention_mask"].sum())
        if not self.mirror_lambda:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        causal_lm = self.accelerator.unwrap_model(model)
        if hasattr(causal_lm, "get_base_model"):
            causal_lm = causal_lm.get_base_model()
        captured: list[torch.Tensor] = []
        hook = causal_lm.base_model.register_forward_hook(
            lambda _module, _args, out: captured.append(out.last_hidden_state))
        try:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            hook.remove()
        hidden = captured[0]  # the training forward (a return_outputs re-forward comes later, without grad)
        rows = hidden[torch.arange(hidden.size(0), device=hidden.device), dir_pos.to(hidden.device)]
        logits = causal_lm.get_output_embeddings()(rows)
        kl = mirror_kl(*logits.chunk(2), self.dir_token_ids)
        value = self.accelerator.gather_for_metrics(kl.detach()).mean().item()
        self._metrics["train" if self.model.training else "eval"]["mirror_kl"].append(value)
        self.kl_values.append(value)
        if return_outputs:
            loss, outputs = result
            return loss + self.mirror_lambda * kl, outputs
        return result + self.mirror_lambda * kl


def sft_trainer(cfg: SFTConfig, examples: Sequence[SFTExample], callbacks: Sequence[TrainerCallback] = ()
                ) -> MirrorSFTTrainer:
    """A ready :class:`MirrorSFTTrainer` on ``examples`` (both orientations of every pair, see
    :func:`mard_core.training.data.build_sft_examples`), writing checkpoints to ``cfg.output_dir``."""
    tokenizer, dir_ids = load_tokenizer(cfg.base_model)
    rows = encode_pairs(tokenizer, examples, cfg.max_length, dir_ids)
    model = wrap_lora(load_base(cfg.base_model, len(tokenizer), cfg.bf16), dir_ids, cfg.lora_r, cfg.lora_alpha,
                      cfg.lora_dropout, cfg.target_modules, cfg.seed)
    args = TRLSFTConfig(
        **trainer_kwargs(cfg.output_dir, device=cfg.device, report_to=cfg.report_to, bf16=cfg.bf16,
                         gradient_checkpointing=cfg.gradient_checkpointing, seed=cfg.seed, save_steps=cfg.save_steps,
                         logging_steps=cfg.logging_steps, lr=cfg.lr, epochs=cfg.epochs, max_steps=cfg.max_steps,
                         batch_size=cfg.batch_pairs),
        dataset_kwargs={"skip_prepare_dataset": True}, max_length=None,
    )
    return MirrorSFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        data_collator=PairCollator(tokenizer.pad_token_id), callbacks=list(callbacks),
        dir_token_ids=dir_ids, mirror_lambda=cfg.mirror_lambda,
    )


def train_sft(cfg: SFTConfig, examples: Sequence[SFTExample], resume: bool = True,
              callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """LoRA SFT of ``cfg.base_model`` on ``examples``; returns the run summary and ``output_dir/final``.

    With ``resume`` a run finds the last checkpoint in ``output_dir`` and continues it (same seed, data order,
    optimizer and RNG state, so it ends where an uninterrupted run ends).
    """
    trainer = sft_trainer(cfg, examples, callbacks)
    out = Path(cfg.output_dir)
    checkpoint = prepare_run(out, {"config": asdict(cfg), "data": content_hash(examples)}, resume)
    loss, wall = run_trainer(trainer, checkpoint)
    meta = {"kind": "sft", "base_model": model_ref(cfg.base_model), "config": asdict(cfg),
            "direction_tokens": dict(zip(DIRECTION_TOKEN_LIST, trainer.dir_token_ids, strict=True))}
    student = save_student(trainer.model, trainer.processing_class, out / FINAL_DIR, meta)
    extra = {"mirror_kl": sum(trainer.kl_values) / len(trainer.kl_values)} if trainer.kl_values else {}
    return TrainResult(student, trainer.state.global_step, loss, trainer.train_tokens, wall, checkpoint, extra)


def student_identity(student_dir: str | Path) -> str:
    """A content hash of a finished student directory (from its manifest's file hashes)."""
    problems = verify_output(Path(student_dir))
    if problems:
        raise InputError(f"student at {student_dir} is incomplete or changed: {'; '.join(problems)}")
    manifest = read_manifest(Path(student_dir)) or {}
    return hashlib.sha256(canonical_json(manifest["files"]).encode()).hexdigest()
