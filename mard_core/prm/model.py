"""A process reward model: a causal LM backbone with a linear per-step score head, trained with the HF
Trainer.

Input: the prompt, then each step's text followed by one ``<step_end>`` special token. The head maps the
backbone's last hidden state to one logit per position; the loss is BCE at ``<step_end>`` positions only
(label 1 correct, 0 incorrect; unverifiable steps are masked). A step's score is the sigmoid of its logit; a
trajectory's scores are the minimum and the product over its steps.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn
from transformers import (
    AddedToken,
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainingArguments,
)

from mard_core.errors import InputError
from mard_core.prm.config import PRMConfig
from mard_core.prm.labels import TRAJECTORY_KEY, step_line
from mard_core.prompts import parse_completion
from mard_core.stage import materialize, verify_output
from mard_core.verifier import CORRECT, INCORRECT, UNVERIFIABLE

IGNORE = -100.0
CONFIG_FILE, HEAD_FILE, ADDED_EMBEDDINGS_FILE = (
    "prm_config.json",
    "head.safetensors",
    "added_embeddings.safetensors",
)
BACKBONE_DIR, ADAPTER_DIR, TOKENIZER_DIR = "backbone", "adapter", "tokenizer"
_LABEL_VALUES = {CORRECT: 1, INCORRECT: 0, UNVERIFIABLE: None}


def _torch_device(device: str) -> torch.device:
    """The torch device of ``PRMConfig.device``: auto is cuda when a GPU is visible, else cpu."""
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("prm.device is 'cuda' but no CUDA device is available")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


@dataclass
class PRMExample:
    """One trajectory: prompt, step lines ("Step i: ..."), step labels (1, 0, None = masked), final
    correctness."""

    prompt: str
    steps: list[str]
    labels: list[int | None]
    correct: bool = False


class StepScorer(nn.Module):
    """Backbone + linear head: one logit per position; BCE loss at ``step_token_id`` positions with a
    label."""

    def __init__(self, backbone: PreTrainedModel | PeftModel, step_token_id: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.step_token_id = step_token_id
        self.head = nn.Linear(backbone.config.hidden_size, 1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.head(hidden.to(self.head.weight.dtype)).squeeze(-1)
        out = {"logits": logits}
        if labels is not None:
            mask = (input_ids == self.step_token_id) & (labels != IGNORE)
            target = labels[mask].to(logits.dtype)
            out["loss"] = (
                nn.functional.binary_cross_entropy_with_logits(logits[mask], target)
                if target.numel()
                else logits.sum() * 0.0
            )
        return out


def _load_tokenizer(path: str | Path, step_token: str) -> tuple[PreTrainedTokenizerBase, int]:
    tokenizer = AutoTokenizer.from_pretrained(path)
    if step_token not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(step_token, special=True, normalized=False)], special_tokens=True)
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise InputError(f"tokenizer of {path}: no pad or eos token to pad batches with")
        tokenizer.pad_token = tokenizer.eos_token
    step_id = tokenizer.convert_tokens_to_ids(step_token)
    assert isinstance(step_id, int)  # one token converts to one id
    return tokenizer, step_id


def _embedding_weight(model: PreTrainedModel | PeftModel) -> torch.Tensor:
    """The input embedding matrix (torch types a module attribute as Tensor | Module)."""
    weight = model.get_input_embeddings().weight
    assert isinstance(weight, torch.Tensor)
    return weight


def _fit_embeddings(backbone: PreTrainedModel, n_tokens: int) -> int:
    """Grow the input embeddings to ``n_tokens`` rows (new rows = mean of the old); returns the old row
    count."""
    n_old = _embedding_weight(backbone).shape[0]
    if n_tokens > n_old:
        backbone.resize_token_embeddings(n_tokens, mean_resizing=False)
        with torch.no_grad():
            weight = _embedding_weight(backbone)
            weight[n_old:] = weight[:n_old].mean(dim=0)
    return n_old


def _wrap_lora(backbone: nn.Module, r: int) -> nn.Module:
    return get_peft_model(
        backbone, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules="all-linear")
    )


class PRM:
    """A trained or fresh step scorer with its tokenizer; build with :meth:`create` or :meth:`load`."""

    def __init__(
        self, cfg: PRMConfig, tokenizer: PreTrainedTokenizerBase, model: StepScorer, n_base_rows: int
    ) -> None:
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.model = model
        self.n_base_rows = n_base_rows  # embedding rows of the base model before <step_end> was added
        self.device = _torch_device(cfg.device)
        self.model.to(self.device)

    @classmethod
    def create(cls, cfg: PRMConfig) -> PRM:
        """A fresh PRM on ``cfg.base_model`` (a seeded random head; LoRA adapters when ``cfg.lora``)."""
        tokenizer, step_id = _load_tokenizer(cfg.base_model, cfg.step_token)
        backbone = AutoModel.from_pretrained(cfg.base_model)
        n_base_rows = _fit_embeddings(backbone, len(tokenizer))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            if cfg.lora:
                backbone = _wrap_lora(backbone, cfg.lora_r)
            model = StepScorer(backbone, step_id)
        return cls(cfg, tokenizer, model, n_base_rows)

    # --- encoding -----------------------------------------------------------------------------------------

    def encode(
        self, prompt: str, steps: Sequence[str], labels: Sequence[int | None] | None = None
    ) -> dict[str, list[int] | list[float]]:
        """Token ids (prompt, then each step + step token) and per-position labels (IGNORE off labelled
        steps).

        A prompt that does not fit ``max_length`` loses its oldest tokens (a leading BOS is kept).
        """
        tok = self.tokenizer
        body: list[int] = []
        marks: list[float] = []
        for i, step in enumerate(steps):
            piece = tok(("\n" if i else "") + step, add_special_tokens=False)["input_ids"]
            label = labels[i] if labels is not None else None
            body += [*piece, self.model.step_token_id]
            marks += [IGNORE] * len(piece) + [IGNORE if label is None else float(label)]
        prompt_ids = tok(prompt)["input_ids"]
        keep_bos = bool(prompt_ids) and prompt_ids[0] == tok.bos_token_id
        budget = self.cfg.max_length - len(body) - keep_bos
        if budget < 0:
            raise InputError(
                f"PRM: {len(steps)} steps take {len(body)} tokens, over max_length "
                f"{self.cfg.max_length}; raise PRMConfig.max_length"
            )
        rest = prompt_ids[keep_bos:]
        prompt_ids = prompt_ids[:keep_bos] + rest[max(0, len(rest) - budget) :]
        return {"input_ids": prompt_ids + body, "labels": [IGNORE] * len(prompt_ids) + marks}

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right-padded batch of :meth:`encode` outputs."""
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"])
            mask[row, :n] = 1
            labels[row, :n] = torch.tensor(f["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    # --- training -----------------------------------------------------------------------------------------

    def train(self, examples: Sequence[PRMExample]) -> dict[str, float]:
        """Fit on ``examples`` with the HF Trainer; returns the mean training loss, wall time and counts."""
        n_labelled = sum(label is not None for ex in examples for label in ex.labels)
        if not n_labelled:
            raise InputError(
                f"PRM.train: none of {len(examples)} examples has a correct/incorrect step label"
            )
        features = [self.encode(ex.prompt, ex.steps, ex.labels) for ex in examples]
        with tempfile.TemporaryDirectory(prefix="mard-prm-") as tmp:
            args = TrainingArguments(
                output_dir=tmp,
                per_device_train_batch_size=self.cfg.batch_size,
                num_train_epochs=self.cfg.epochs,
                learning_rate=self.cfg.lr,
                seed=self.cfg.seed,
                data_seed=self.cfg.seed,
                report_to="none",
                save_strategy="no",
                logging_strategy="no",
                disable_tqdm=True,
                remove_unused_columns=False,
                use_cpu=self.device.type == "cpu",
                dataloader_num_workers=0,
            )
            trainer = Trainer(model=self.model, args=args, train_dataset=features, data_collator=self.collate)
            trainer.remove_callback(PrinterCallback)
            start = time.perf_counter()
            result = trainer.train()
            wall = time.perf_counter() - start
        self.model.to(self.device)
        return {
            "train_loss": float(result.training_loss),
            "train_s": wall,
            "n_examples": len(examples),
            "n_labelled_steps": n_labelled,
        }

    # --- scoring ------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def score_steps(self, prompts: Sequence[str], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        """Probability that each step is correct, per trajectory."""
        if len(prompts) != len(steps):
            raise InputError(f"PRM.score_steps: {len(prompts)} prompts vs {len(steps)} step lists")
        self.model.eval()
        out: list[list[float]] = []
        for start in range(0, len(prompts), self.cfg.batch_size):
            chunk = [
                self.encode(p, s)
                for p, s in zip(
                    prompts[start : start + self.cfg.batch_size],
                    steps[start : start + self.cfg.batch_size],
                    strict=True,
                )
            ]
            batch = {k: v.to(self.device) for k, v in self.collate(chunk).items() if k != "labels"}
            probs = torch.sigmoid(self.model(**batch)["logits"].float())
            is_step = batch["input_ids"] == self.model.step_token_id
            out += [probs[row][is_step[row]].tolist() for row in range(len(chunk))]
        return out

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[list[float]]:
        """Step probabilities of raw completions (steps read with
        :func:`mard_core.prompts.parse_completion`)."""
        steps = [[f"Step {s.index}: {s.text}" for s in parse_completion(c).steps] for c in completions]
        return self.score_steps(prompts, steps)

    def score_trajectories(self, df: pl.DataFrame) -> pl.DataFrame:
        """``df`` (schemas.TRAJECTORIES) plus ``prm_steps``, ``prm_min`` and ``prm_prod``."""
        missing = [c for c in ("prompt", "steps") if c not in df.columns]
        if missing:
            raise InputError(f"PRM.score_trajectories: trajectories table lacks columns {missing}")
        steps = [[step_line(s) for s in row or []] for row in df["steps"].to_list()]
        scores = self.score_steps(df["prompt"].to_list(), steps)
        mins, prods = trajectory_scores(scores)
        return df.with_columns(
            pl.Series("prm_steps", scores, dtype=pl.List(pl.Float64)),
            pl.Series("prm_min", mins, dtype=pl.Float64),
            pl.Series("prm_prod", prods, dtype=pl.Float64),
        )

    # --- persistence --------------------------------------------------------------------------------------

    def save(self, out: str | Path) -> Path:
        """Write backbone (or LoRA adapter), head, tokenizer and config to ``out`` atomically."""

        def build(tmp: Path) -> dict[str, Any]:
            # the directory as str: peft types PeftModel.save_pretrained's directory so
            if self.cfg.lora:  # the adapter only; rows added to the embeddings are saved below
                self.model.backbone.save_pretrained(str(tmp / ADAPTER_DIR), save_embedding_layers=False)
            else:
                self.model.backbone.save_pretrained(str(tmp / BACKBONE_DIR))
            self.tokenizer.save_pretrained(tmp / TOKENIZER_DIR)
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in self.model.head.state_dict().items()},
                tmp / HEAD_FILE,
            )
            added = _embedding_weight(self.model.backbone)[self.n_base_rows :]
            if self.cfg.lora and added.shape[0]:
                save_file({"weight": added.detach().cpu().contiguous()}, tmp / ADDED_EMBEDDINGS_FILE)
            (tmp / CONFIG_FILE).write_text(
                json.dumps({**asdict(self.cfg), "n_base_rows": self.n_base_rows}, indent=2, sort_keys=True)
                + "\n"
            )
            return {}

        return materialize(Path(out), build, {"kind": "prm"})

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> PRM:
        """A PRM written by :meth:`save` (``device`` overrides the saved one). LoRA needs the base model
        path."""
        path = Path(path)
        problems = verify_output(path)
        if problems:
            raise InputError(f"PRM at {path} is incomplete or changed: {'; '.join(problems)}")
        saved = json.loads((path / CONFIG_FILE).read_text())
        n_base_rows = saved.pop("n_base_rows")
        names = {f.name for f in fields(PRMConfig)}
        cfg = PRMConfig(
            **{k: v for k, v in saved.items() if k in names} | ({"device": device} if device else {})
        )
        tokenizer, step_id = _load_tokenizer(path / TOKENIZER_DIR, cfg.step_token)
        if cfg.lora:
            if not Path(cfg.base_model).exists():
                raise InputError(f"PRM at {path}: LoRA base model {cfg.base_model} does not exist")
            backbone = AutoModel.from_pretrained(cfg.base_model)
            _fit_embeddings(backbone, len(tokenizer))
            if (path / ADDED_EMBEDDINGS_FILE).exists():
                with torch.no_grad():
                    backbone.get_input_embeddings().weight[n_base_rows:] = load_file(
                        path / ADDED_EMBEDDINGS_FILE
                    )["weight"]
            backbone = PeftModel.from_pretrained(backbone, path / ADAPTER_DIR)
        else:
            backbone = AutoModel.from_pretrained(path / BACKBONE_DIR)
        model = StepScorer(backbone, step_id)
        model.head.load_state_dict(load_file(path / HEAD_FILE))
        return cls(cfg, tokenizer, model, n_base_rows)


def trajectory_scores(step_scores: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """(min, product) over each trajectory's step scores; 0.0 for a trajectory without steps."""
    mins = [min(s) if s else 0.0 for s in step_scores]
    prods = [math.prod(s) if s else 0.0 for s in step_scores]
    return mins, prods


def examples_from_labels(trajectories: pl.DataFrame, step_labels: pl.DataFrame) -> list[PRMExample]:
    """Join trajectories (schemas.TRAJECTORIES) with their step labels (:func:`labels.label_trajectories`).

    Steps without a label row are masked; trajectories without steps are skipped.
    """
    for what, df, cols in (
        ("trajectories", trajectories, (*TRAJECTORY_KEY, "prompt", "steps", "correct")),
        ("step labels", step_labels, (*TRAJECTORY_KEY, "step", "label")),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise InputError(f"examples_from_labels: {what} table lacks columns {missing}")
    unknown = sorted(set(step_labels["label"].unique().to_list()) - set(_LABEL_VALUES))
    if unknown:
        raise InputError(f"examples_from_labels: unknown step labels {unknown}")
    by_step = {
        (*(r[c] for c in TRAJECTORY_KEY), r["step"]): _LABEL_VALUES[r["label"]]
        for r in step_labels.iter_rows(named=True)
    }
    out = []
    for row in trajectories.iter_rows(named=True):
        steps = row["steps"] or []
        if not steps:
            continue
        key = tuple(row[c] for c in TRAJECTORY_KEY)
        out.append(
            PRMExample(
                row["prompt"],
                [step_line(s) for s in steps],
                [by_step.get((*key, s["index"])) for s in steps],
                bool(row["correct"]),
            )
        )
    return out


def _roc(scores: Sequence[float], positive: Sequence[bool]) -> tuple[float | None, dict[str, list[float]]]:
    """AUROC and ROC points; (None, empty) when only one class is present."""
    y = np.asarray(positive, dtype=bool)
    if y.all() or not y.any():
        return None, {"fpr": [], "tpr": []}
    fpr, tpr, _ = roc_curve(y, np.asarray(scores, dtype=float))
    return float(roc_auc_score(y, scores)), {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


def evaluate(prm: PRM, trajectories: pl.DataFrame, step_labels: pl.DataFrame) -> dict[str, Any]:
    """Held-out PRM quality: step AUROC vs verifier labels, trajectory AUROC (min, product) vs final-answer
    correctness, and the verifier-alone baseline (share of a trajectory's steps labelled correct).

    AUROCs are None when a side has one class only; ``roc`` holds (fpr, tpr) points per curve.
    """
    examples = examples_from_labels(trajectories, step_labels)
    if not examples:
        raise InputError("PRM evaluate: no held-out trajectory has steps")
    scores = prm.score_steps([ex.prompt for ex in examples], [ex.steps for ex in examples])
    step_pairs = [
        (s, lab == 1)
        for ex, sc in zip(examples, scores, strict=True)
        for s, lab in zip(sc, ex.labels, strict=True)
        if lab is not None
    ]
    mins, prods = trajectory_scores(scores)
    correct = [ex.correct for ex in examples]
    verifier = [sum(lab == 1 for lab in ex.labels) / len(ex.labels) for ex in examples]
    curves = {
        "step": _roc([s for s, _ in step_pairs], [y for _, y in step_pairs]),
        "trajectory_min": _roc(mins, correct),
        "trajectory_prod": _roc(prods, correct),
        "verifier_trajectory": _roc(verifier, correct),
    }
    return {
        **{f"{name}_auroc": auc for name, (auc, _) in curves.items()},
        "n_trajectories": len(examples),
        "n_labelled_steps": len(step_pairs),
        "roc": {name: points for name, (_, points) in curves.items()},
    }
