"""The student model: the base's tokenizer with the direction tokens, the base with its embeddings grown, the
LoRA wrapping, and the student directory (adapter, tokenizer, ``student.json``) written, loaded and merged.

The three direction tokens are added as special tokens when the base tokenizer lacks them (new embedding rows:
the mean of the old rows). Their input and output embedding rows are trainable through peft's
``trainable_token_indices`` (whether newly added or already in the base vocabulary): they are the student's
answer, and LoRA on attention alone cannot move them. A tied LM head follows the input embedding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import (
    AddedToken,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    set_seed,
)

from mard_core.errors import InputError
from mard_core.stage import canonical_json, materialize, read_manifest, verify_output, write_json_atomic
from mard_core.training.data import DIRECTION_TOKEN_LIST

FINAL_DIR, STUDENT_FILE = "final", "student.json"


def load_tokenizer(path: str | Path) -> tuple[PreTrainedTokenizerBase, list[int]]:
    """The tokenizer at ``path`` with the direction tokens (added when missing) and a pad token; their ids."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise InputError(f"tokenizer of {path}: cannot load ({exc})") from exc
    missing = [t for t in DIRECTION_TOKEN_LIST if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(
            [AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True
        )
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise InputError(f"tokenizer of {path}: no pad or eos token to pad batches with")
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise InputError(f"tokenizer of {path}: no eos token to end completions with")
    ids = tokenizer.convert_tokens_to_ids(list(DIRECTION_TOKEN_LIST))
    assert isinstance(ids, list)  # a list of tokens converts to a list of ids
    return tokenizer, ids


def _embedding_weight(layer: nn.Module) -> torch.Tensor:
    """The weight of an embedding (or LM head) layer; torch types module attributes as Tensor | Module."""
    weight = layer.weight
    assert isinstance(weight, torch.Tensor)
    return weight


def fit_embeddings(model: PreTrainedModel, n_tokens: int) -> None:
    """Grow input (and untied output) embeddings to ``n_tokens`` rows; new rows are the mean of the old
    rows."""
    n_old = _embedding_weight(model.get_input_embeddings()).shape[0]
    if n_tokens <= n_old:
        return
    model.resize_token_embeddings(n_tokens, mean_resizing=False)
    layers = {
        id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None
    }
    with torch.no_grad():
        for layer in layers.values():
            weight = _embedding_weight(layer)
            weight[n_old:] = weight[:n_old].mean(dim=0)


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


def wrap_lora(
    model: PreTrainedModel,
    dir_ids: Sequence[int],
    r: int,
    alpha: int,
    dropout: float,
    target_modules: Sequence[str] | str,
    seed: int,
) -> Any:
    """A seeded PeftModel: LoRA on ``target_modules`` plus trainable direction-token rows of the input and
    (untied) output embeddings."""
    tokens = {_module_name(model, model.get_input_embeddings()): list(dir_ids)}
    output = model.get_output_embeddings()
    if output is not None and output.weight is not model.get_input_embeddings().weight:
        if output.bias is not None:
            raise InputError("trainable direction-token rows need an LM head without bias")
        tokens[_module_name(model, output)] = list(dir_ids)
    targets = target_modules if isinstance(target_modules, str) else list(target_modules)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        trainable_token_indices=tokens,
    )
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

    return materialize(
        Path(out_dir), build, {"kind": "merged_student", "student": str(Path(student_dir).resolve())}
    )


def save_student(model: Any, tokenizer: PreTrainedTokenizerBase, out: Path, meta: Mapping[str, Any]) -> Path:
    """Adapter + tokenizer + ``student.json`` into ``out``, atomically (manifest last)."""

    def build(tmp: Path) -> dict[str, Any]:
        model.save_pretrained(tmp, selected_adapters=["default"])
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / STUDENT_FILE, meta)
        return {}

    return materialize(out, build, {"kind": meta["kind"]})


def student_identity(student_dir: str | Path) -> str:
    """A content hash of a finished student directory (from its manifest's file hashes)."""
    problems = verify_output(Path(student_dir))
    if problems:
        raise InputError(f"student at {student_dir} is incomplete or changed: {'; '.join(problems)}")
    manifest = read_manifest(Path(student_dir)) or {}
    return hashlib.sha256(canonical_json(manifest["files"]).encode()).hexdigest()
