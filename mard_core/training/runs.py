"""Trainer runs shared by SFT and DPO: their TrainingArguments, checkpoints resumed only by a run of the same
config and data (the fingerprint in ``run.json``), and the run summary."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import set_peft_model_state_dict
from peft.utils import SAFETENSORS_WEIGHTS_NAME as SAFE_ADAPTER_NAME
from safetensors.torch import load_file
from transformers import PrinterCallback, TrainerState
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import get_last_checkpoint

from mard_core.errors import InputError
from mard_core.stage import canonical_json, write_json_atomic
from mard_core.training.config import TrainerSettings

RUN_FILE = "run.json"


def trainer_kwargs(output_dir: str, cfg: TrainerSettings, batch_size: int) -> dict[str, Any]:
    """TrainingArguments shared by the SFT and DPO trainers, from their shared settings."""
    use_mlflow = cfg.report_to == "mlflow" or (
        cfg.report_to == "auto" and bool(os.environ.get("MLFLOW_TRACKING_URI"))
    )
    return {
        "output_dir": output_dir,
        "per_device_train_batch_size": batch_size,
        "learning_rate": cfg.lr,
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "logging_steps": cfg.logging_steps,
        "report_to": ["mlflow"] if use_mlflow else "none",
        "bf16": cfg.bf16,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "use_cpu": cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()),
        "disable_tqdm": True,
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
    }


def content_hash(items: Iterable[Any]) -> str:
    """sha256 over the canonical JSON of each item, streamed (no one big string)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(canonical_json(item).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def prepare_run(output_dir: Path, fingerprint: Mapping[str, Any], resume: bool) -> str | None:
    """The checkpoint to resume from (None: start fresh). Refuses checkpoints of a different config or
    data."""
    output_dir.mkdir(parents=True, exist_ok=True)
    run_file = output_dir / RUN_FILE
    last = get_last_checkpoint(str(output_dir))
    if last and resume:
        previous = json.loads(run_file.read_text()) if run_file.exists() else None
        if previous != json.loads(canonical_json(fingerprint)):
            raise InputError(
                f"{output_dir} holds checkpoints of a different run (config or data changed); "
                "use a new output_dir or resume=False"
            )
        return last
    for old in output_dir.glob("checkpoint-*"):
        if re.fullmatch(r"checkpoint-\d+", old.name):
            shutil.rmtree(old)
    write_json_atomic(run_file, json.loads(canonical_json(fingerprint)))
    return None


@dataclass
class TrainResult:
    """What a training run did; ``tokens_per_s`` counts every (non-pad) token fed to the model in this
    process."""

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
