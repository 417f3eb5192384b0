"""Tiny local models: build, load back through from_pretrained, determinism, atomic replace, bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mard_core.errors import InputError
from mard_core.tiny import build_demo_models, build_tiny_model, train_tokenizer
from mard_core.tiny_config import ModelsConfig, StudentShape, TinyModelConfig, WarmupConfig
from mard_core.validation import parse_config

DIRECTION_TOKENS = ("<dir_ab>", "<dir_ba>", "<dir_bi>")
CORPUS = [
    f"Drug{i} may increase the serum concentration of Drug{i + 3} when combined." for i in range(60)
] + [f"The absorption of Drug{i} can be decreased when combined with Drug{i + 1}." for i in range(60)]
EXPECTED_CLASS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("arch", sorted(EXPECTED_CLASS))
def test_build_and_load_round_trip(tmp_path: Path, arch: str) -> None:
    cfg = TinyModelConfig(arch=arch, max_position_embeddings=256)
    out = build_tiny_model(tmp_path / arch, CORPUS, cfg, extra_special_tokens=DIRECTION_TOKENS)

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == EXPECTED_CLASS[arch]
    assert model.config.hidden_size == 128 and model.config.num_hidden_layers == 2
    assert model.config.hidden_size // model.config.num_attention_heads == cfg.head_dim == 64
    assert model.config.vocab_size == len(tokenizer) <= cfg.vocab_size
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == (
        "<s>", "</s>", "<pad>", "<unk>",
    )  # fmt: skip
    text = "<dir_ba> Drug7 may increase the serum concentration of Drug10."
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id
    direction_ids = tokenizer.convert_tokens_to_ids(list(DIRECTION_TOKENS))
    assert ids[1] == direction_ids[1] and len(set(direction_ids)) == 3
    assert (
        tokenizer.decode(ids, skip_special_tokens=True)
        == " Drug7 may increase the serum concentration of Drug10."
    )
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), model.config.vocab_size)


def test_build_is_deterministic_and_seeded(tmp_path: Path) -> None:
    first = build_tiny_model(tmp_path / "a", CORPUS, TinyModelConfig(seed=3))
    second = build_tiny_model(tmp_path / "b", CORPUS, TinyModelConfig(seed=3))
    other = build_tiny_model(tmp_path / "c", CORPUS, TinyModelConfig(seed=4))
    assert _digests(first) == _digests(second)
    assert _digests(first)["tokenizer.json"] == _digests(other)["tokenizer.json"]
    assert _digests(first)["model.safetensors"] != _digests(other)["model.safetensors"]


def test_rebuild_replaces_directory_without_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "model"
    build_tiny_model(out, CORPUS, TinyModelConfig(seed=0))
    (out / "stale.txt").write_text("from an older build")
    build_tiny_model(out, CORPUS, TinyModelConfig(seed=1))
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert AutoModelForCausalLM.from_pretrained(out).config.vocab_size > 256


def test_train_tokenizer_respects_vocab_bound_and_special_order() -> None:
    tokenizer = train_tokenizer(CORPUS * 3, vocab_size=300, special_tokens=DIRECTION_TOKENS)
    assert len(tokenizer) == 300
    assert tokenizer.convert_tokens_to_ids(["<unk>", "<s>", "</s>", "<pad>", *DIRECTION_TOKENS]) == list(
        range(7)
    )
    assert tokenizer.decode(tokenizer("combined with Drug9").input_ids, skip_special_tokens=True) == (
        "combined with Drug9"
    )


@pytest.mark.parametrize(
    ("cls", "options", "message"),
    [
        (TinyModelConfig, {"arch": "gpt2"}, "size: arch: must be 'llama', 'qwen2' or 'mistral', got 'gpt2'"),
        (
            TinyModelConfig,
            {"hidden_size": 100, "num_heads": 3},
            "size: hidden_size 100 is not divisible by num_heads 3",
        ),
        (TinyModelConfig, {"num_layers": 0}, "size: num_layers: must be > 0, got 0"),
        (WarmupConfig, {"steps": -1}, "size: steps: must be >= 0, got -1"),
        (
            ModelsConfig,
            {"warmup": {"models": ["gpt"]}},
            "size: warmup.models: unknown key; allowed: batch_size, lr, steps",
        ),
    ],
)
def test_bad_config_is_rejected(cls: type, options: dict[str, object], message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_config(cls, options, "size")
    assert str(info.value).startswith(message)


def test_bad_tokenizer_input_is_rejected() -> None:
    with pytest.raises(InputError, match="vocab_size 200 is below 263"):
        train_tokenizer(CORPUS, vocab_size=200, special_tokens=DIRECTION_TOKENS)
    with pytest.raises(InputError, match=r"clash with the core tokens"):
        train_tokenizer(CORPUS, vocab_size=400, special_tokens=["</s>"])


DOCS = [(f"Query: Drug{i} with Drug{i + 3}\nReasoning:\n", f"ANSWER: label {i % 4}\n") for i in range(60)]


def _completion_loss(model_dir: Path, docs: list[tuple[str, str]]) -> float:
    model, tokenizer = (
        AutoModelForCausalLM.from_pretrained(model_dir),
        AutoTokenizer.from_pretrained(model_dir),
    )
    total = 0.0
    with torch.no_grad():
        for prompt, completion in docs:
            head = tokenizer(prompt)["input_ids"]
            ids = (
                head + tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            )
            labels = [-100] * len(head) + ids[len(head) :]
            total += model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()
    return total / len(docs)


def test_warm_up_teaches_the_completions_and_is_deterministic(tmp_path: Path) -> None:
    warm = WarmupConfig(steps=40, lr=3e-3, batch_size=8)
    cfg = TinyModelConfig(max_position_embeddings=128)
    texts = [t for doc in DOCS for t in doc]
    cold = build_tiny_model(tmp_path / "cold", texts, cfg)
    first = build_tiny_model(tmp_path / "warm", texts, cfg, warmup_docs=DOCS, warmup=warm)
    again = build_tiny_model(tmp_path / "again", texts, cfg, warmup_docs=DOCS, warmup=warm)
    assert _digests(first) == _digests(again)
    assert _completion_loss(first, DOCS[:16]) < 0.5 * _completion_loss(cold, DOCS[:16])
    with pytest.raises(InputError, match="no documents"):
        build_tiny_model(tmp_path / "none", texts, cfg, warmup=warm)


def test_demo_models_warm_only_the_student(tmp_path: Path) -> None:
    small = StudentShape(
        hidden_size=128, num_heads=2, num_layers=2, intermediate_size=256, max_position_embeddings=128
    )
    cfg = ModelsConfig(teacher_archs=("llama",), size=small, student=small, warmup=WarmupConfig(steps=5))
    built = build_demo_models(tmp_path / "all", CORPUS, DOCS, cfg, DIRECTION_TOKENS)
    assert sorted(built) == ["prm-base", "student-base", "tiny-llama"]
    plain = build_tiny_model(tmp_path / "cold", CORPUS, small)
    digests = {name: _digests(tmp_path / "all" / name)["model.safetensors"] for name in built}
    assert digests["prm-base"] == digests["tiny-llama"] == _digests(plain)["model.safetensors"]
    student = AutoTokenizer.from_pretrained(tmp_path / "all" / "student-base")
    assert all(t in student.get_vocab() for t in DIRECTION_TOKENS)
    assert student.tokenize("ANSWER: label") != AutoTokenizer.from_pretrained(plain).tokenize("ANSWER: label")
