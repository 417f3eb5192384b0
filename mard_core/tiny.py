"""Tiny random-init causal LMs with a locally trained tokenizer.

No weights can be downloaded, so tests, benchmarks and demos build a small model on the spot and load it
back through the same ``from_pretrained`` path a real checkpoint uses.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from tqdm.auto import tqdm
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from mard_core.errors import InputError
from mard_core.generate import corpus_texts
from mard_core.prompts import DIRECTION_TOKENS
from mard_core.retrieval import RetrievalIndex
from mard_core.stage import replace_dir
from mard_core.teachers.hf import resolve_device
from mard_core.tiny_config import ModelsConfig, TinyModelConfig, WarmupConfig
from mard_core.training.data import student_corpus

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
CORE_SPECIAL_TOKENS: tuple[str, ...] = (UNK, BOS, EOS, PAD)
_BYTE_ALPHABET_SIZE = len(pre_tokenizers.ByteLevel.alphabet())
_CONFIG_CLASSES: dict[str, type[PretrainedConfig]] = {
    "llama": LlamaConfig,
    "qwen2": Qwen2Config,
    "mistral": MistralConfig,
}


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, special_tokens: Sequence[str] = ()
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts``.

    The tokenizer has bos/eos/pad/unk (``<s> </s> <pad> <unk>``), prepends ``<s>`` to every encoded text
    (plain format, no chat template) and keeps each of ``special_tokens`` (e.g. ``<dir_ab>``) as one special
    token. Ids: unk, bos, eos, pad, then ``special_tokens`` in order, then the byte alphabet and merges.
    ``vocab_size`` is an upper bound: a small corpus may yield fewer merges.
    """
    extra = list(dict.fromkeys(special_tokens))
    clash = sorted(set(extra) & set(CORE_SPECIAL_TOKENS))
    if clash:
        raise InputError(
            f"extra special tokens {clash} clash with the core tokens {list(CORE_SPECIAL_TOKENS)}"
        )
    if any(not token for token in extra):
        raise InputError("extra special tokens must be non-empty strings")
    specials = [*CORE_SPECIAL_TOKENS, *extra]
    minimum = len(specials) + _BYTE_ALPHABET_SIZE
    if vocab_size < minimum:
        raise InputError(
            f"tokenizer vocab_size {vocab_size} is below {minimum} "
            f"({_BYTE_ALPHABET_SIZE} byte symbols + {len(specials)} special tokens)"
        )
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=extra,
    )


def _model_config(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_heads,
        "max_position_embeddings": cfg.max_position_embeddings,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
        "dtype": "float32",
    }
    return _CONFIG_CLASSES[cfg.arch](**common)


def warm_up(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerFast,
    docs: Sequence[tuple[str, str]],
    cfg: WarmupConfig,
    seed: int,
    max_length: int,
    log: Callable[[str], None] | None = None,
) -> None:
    """Train ``model`` in place on seeded random batches of (prompt, completion) ``docs``, the loss on the
    completion (and its EOS) only, on a GPU when visible; ``log`` gets the mean loss every tenth of the
    steps."""
    if not docs:
        raise InputError("warm-up: no documents to train on")
    device = resolve_device("auto")
    encoded = []
    for prompt, completion in docs:
        head = tokenizer(prompt)["input_ids"]
        tail = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        encoded.append(((head + tail)[:max_length], len(head)))
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 20) * max(0.05, 1 - step / max(1, cfg.steps))
    )
    rng = random.Random(seed)
    order: list[int] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        running = 0.0
        for step in tqdm(range(1, cfg.steps + 1), desc="warm-up", unit="step", leave=False):
            if len(order) < cfg.batch_size:
                order += rng.sample(range(len(encoded)), len(encoded))
            batch, order = [encoded[i] for i in order[: cfg.batch_size]], order[cfg.batch_size :]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (seq, start) in enumerate(batch):
                ids[row, : len(seq)] = torch.tensor(seq)
                labels[row, start : len(seq)] = torch.tensor(seq[start:])
                mask[row, : len(seq)] = 1
            loss = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
            ).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            running += loss.item()
            if log is not None and (step % max(1, cfg.steps // 10) == 0 or step == cfg.steps):
                log(f"warm-up: step {step}/{cfg.steps}, loss {running / max(1, cfg.steps // 10):.3f}")
                running = 0.0
    model.to("cpu").eval()


def build_tiny_model(
    out_dir: str | os.PathLike[str],
    texts: Iterable[str],
    cfg: TinyModelConfig = TinyModelConfig(),
    extra_special_tokens: Sequence[str] = (),
    warmup_docs: Sequence[tuple[str, str]] = (),
    warmup: WarmupConfig = WarmupConfig(steps=0),
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train a tokenizer on ``texts``, create a seeded random-init model (warmed up on ``warmup_docs`` when
    ``warmup.steps`` > 0) and save both to ``out_dir``.

    The directory is written under a temporary name and renamed into place (replacing an older build), so
    ``AutoModelForCausalLM.from_pretrained(out_dir)`` and ``AutoTokenizer.from_pretrained(out_dir)`` never
    see a half-written model. The same inputs and seed give byte-identical files.
    """
    out = Path(out_dir).resolve()
    tokenizer = train_tokenizer(texts, cfg.vocab_size, extra_special_tokens)
    tokenizer.model_max_length = cfg.max_position_embeddings
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = AutoModelForCausalLM.from_config(_model_config(cfg, tokenizer), dtype=torch.float32)
    if warmup.steps:
        warm_up(model, tokenizer, warmup_docs, warmup, cfg.seed, cfg.max_position_embeddings, log)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _portable_tokenizer_class(tmp / "tokenizer_config.json")
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _portable_tokenizer_class(path: Path) -> None:
    """Name the generic fast-tokenizer class, which every transformers release (4.x and 5.x) can load."""
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def build_demo_models(
    out_dir: Path,
    texts: Sequence[str],
    student_docs: Sequence[tuple[str, str]],
    cfg: ModelsConfig,
    student_tokens: Sequence[str],
    log: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """``tiny-<arch>`` teachers and ``prm-base`` (random init, tokenizer learnt on ``texts``), and
    ``student-base``: a ``cfg.student`` llama with ``student_tokens``, its tokenizer learnt on and its warm-up
    run on ``student_docs`` ((prompt, completion) pairs in the student's view)."""
    built = {
        name: build_tiny_model(out_dir / name, texts, shape).name
        for name, shape in (
            *((f"tiny-{arch}", cfg.shape(arch)) for arch in cfg.teacher_archs),
            ("prm-base", cfg.shape("llama")),
        )
    }
    student_texts = [text for doc in student_docs for text in doc]
    built["student-base"] = build_tiny_model(
        out_dir / "student-base",
        student_texts,
        cfg.student,
        tuple(student_tokens),
        student_docs,
        cfg.warmup,
        log,
    ).name
    return built


def write_demo_models(
    ingest_dir: Path,
    splits_dir: Path,
    index_dir: Path,
    cfg: ModelsConfig,
    split: str,
    work: Path,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The models stage's output in ``work``: the demo models, their tokenizers trained on (and the student's
    warm-up run on) ``split``'s training part only: the teachers' on prompts and gold chains of a sample of
    it, the student's on every training pair in both orders, in the student's view, with the
    knowledge-grounded teacher's chain for its gold label."""
    train = pl.read_parquet(splits_dir / split / "train.parquet")
    index = RetrievalIndex.load(index_dir / split)
    drugs = pl.read_parquet(ingest_dir / "drugs.parquet")
    texts = corpus_texts(train, index, drugs, cfg.corpus_pairs, cfg.size.seed)
    docs = student_corpus(train, index, drugs, cfg.size.seed)
    models = build_demo_models(work, texts, docs, cfg, tuple(DIRECTION_TOKENS.values()), log)
    return {"models": models, "corpus_texts": len(texts), "student_docs": len(docs)}
