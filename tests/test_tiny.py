"""Tiny local models: build, load back through from_pretrained, determinism, atomic replace, bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mard_core.errors import InputError
from mard_core.tiny import TinyModelConfig, build_tiny_model, train_tokenizer

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
    ("kwargs", "message"),
    [
        ({"arch": "gpt2"}, "arch 'gpt2'"),
        ({"hidden_size": 100, "num_heads": 3}, "not divisible by num_heads 3"),
        ({"num_layers": 0}, "num_layers must be >= 1"),
    ],
)
def test_bad_config_is_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        TinyModelConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_tokenizer_input_is_rejected() -> None:
    with pytest.raises(InputError, match="vocab_size 200 is below 263"):
        train_tokenizer(CORPUS, vocab_size=200, special_tokens=DIRECTION_TOKENS)
    with pytest.raises(InputError, match=r"clash with the core tokens"):
        train_tokenizer(CORPUS, vocab_size=400, special_tokens=["</s>"])
