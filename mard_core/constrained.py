"""Answers that cannot be malformed: greedy decoding whose ``ANSWER:`` line is constrained to valid labels.

The chain is generated freely (but may not end before an answer); once the model writes the answer marker,
each next token must continue one of the taxonomy's labels (a token trie), and the completion ends when a
label is complete. When the token budget runs short without a marker, a new line and the marker are forced.
The confidence is the probability of the chosen label under the constrained distribution: the product over
the label's tokens of the token's probability renormalised over the tokens the trie allows at that point.

This is the transformers path (a ``LogitsProcessor``); a vLLM server does the same with structured outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from mard_core.errors import InputError

MARKER = "ANSWER:"


@dataclass
class _Node:
    children: dict[int, _Node]
    terminal: bool = False


class LabelTrie:
    """Token sequences of ``ANSWER: <label>`` lines after the marker's tokens."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, answer_lines: Sequence[str]) -> None:
        if not answer_lines:
            raise InputError("constrained decoding: no labels to choose from")
        self.marker: list[int] = tokenizer(MARKER, add_special_tokens=False)["input_ids"]
        forced = tokenizer("\n" + MARKER, add_special_tokens=False)["input_ids"]
        self.forced: list[int] = forced if forced[-len(self.marker) :] == self.marker else self.marker
        self.root = _Node({})
        self.depth = 0
        for line in answer_lines:
            ids = tokenizer(line, add_special_tokens=False)["input_ids"]
            if not line.startswith(MARKER) or ids[: len(self.marker)] != self.marker:
                raise InputError(f"constrained decoding: {line!r} does not tokenize as {MARKER!r} + label")
            node = self.root
            for token in ids[len(self.marker) :]:
                node = node.children.setdefault(token, _Node({}))
            node.terminal = True
            self.depth = max(self.depth, len(ids) - len(self.marker))

    def walk(self, tokens: Sequence[int]) -> _Node | None:
        node: _Node | None = self.root
        for token in tokens:
            node = node.children.get(token) if node else None
        return node


def answer_tokens(trie: LabelTrie) -> int:
    """Tokens the longest answer line takes when forced: new line, marker, label, EOS."""
    return len(trie.forced) + trie.depth + 1


def _find(seq: list[int], sub: list[int]) -> int:
    """Index just after the first occurrence of ``sub`` in ``seq``; -1 when absent."""
    for i in range(len(seq) - len(sub) + 1):
        if seq[i : i + len(sub)] == sub:
            return i + len(sub)
    return -1


class AnswerConstraint(LogitsProcessor):
    """Masks the logits so that every completion ends with exactly one valid ``ANSWER:`` line; records each
    row's label log-probability (renormalised over the allowed tokens)."""

    def __init__(self, trie: LabelTrie, prompt_width: int, chain_tokens: int, eos_id: int) -> None:
        self.trie, self.width, self.eos = trie, prompt_width, eos_id
        self.reserve = answer_tokens(trie)
        self.max_new = chain_tokens + self.reserve
        self.logprob: list[float] = []
        self._last: list[dict[int, float]] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.logprob:
            self.logprob = [0.0] * input_ids.shape[0]
            self._last = [{} for _ in range(input_ids.shape[0])]
        out = torch.full_like(scores, -math.inf)
        for row, ids in enumerate(input_ids[:, self.width :].tolist()):
            if ids and self._last[row]:
                self.logprob[row] += self._last[row].get(ids[-1], 0.0)
                self._last[row] = {}
            allowed = self._allowed(ids)
            if allowed is None:  # free text, but no end before the answer
                out[row] = scores[row]
                out[row, self.eos] = -math.inf
                continue
            index = torch.as_tensor(allowed, device=scores.device)
            out[row, index] = scores[row, index]
            if allowed != [self.eos]:
                logp = torch.log_softmax(scores[row, index].float(), dim=-1).tolist()
                self._last[row] = dict(zip(allowed, logp, strict=True))
        return out  # type: ignore[return-value]  # a FloatTensor like ``scores``

    def _allowed(self, ids: list[int]) -> list[int] | None:
        """Tokens allowed next for a row that has generated ``ids``; None: anything but EOS."""
        if ids and ids[-1] == self.eos:
            return [self.eos]  # finished rows are padded with EOS by generate
        start = _find(ids, self.trie.marker)
        if start < 0:
            left = self.max_new - len(ids)
            if left > self.reserve:
                return None
            forced = self.trie.forced  # a new line, then the marker
            written = max(k for k in range(len(forced)) if k == 0 or ids[-k:] == forced[:k])
            return [forced[written]]
        node = self.trie.walk(ids[start:])
        if node is None or node.terminal and not node.children:
            return [self.eos]
        children = sorted(node.children)
        return [*children, self.eos] if node.terminal else children


@dataclass(frozen=True)
class Generated:
    text: str
    confidence: float
    prompt_tokens: int
    completion_tokens: int


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    trie: LabelTrie,
    chain_tokens: int,
    batch_size: int,
) -> list[Generated]:
    """Greedy constrained completions of ``prompts`` in left-padded batches: up to ``chain_tokens`` of chain,
    then always room for the answer line."""
    eos = tokenizer.eos_token_id
    assert isinstance(eos, int)
    keep = {tokenizer.pad_token_id, tokenizer.bos_token_id, eos}
    device = next(model.parameters()).device
    out: list[Generated] = []
    tokenizer.padding_side = "left"
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True)
        batch = batch.to(device)
        width = batch["input_ids"].shape[1]
        constraint = AnswerConstraint(trie, width, chain_tokens, eos)
        with torch.inference_mode():
            sequences = model.generate(  # type: ignore[operator]  # an AutoModelForCausalLM
                **batch,
                do_sample=False,
                max_new_tokens=constraint.max_new,
                logits_processor=LogitsProcessorList([constraint]),
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id,
            )
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        for row, ids in enumerate(sequences[:, width:].tolist()):
            end = ids.index(eos) + 1 if eos in ids else len(ids)
            text = tokenizer.decode([t for t in ids[:end] if t not in keep])
            assert isinstance(text, str)  # one sequence of ids decodes to one string
            out.append(Generated(text, math.exp(constraint.logprob[row]), lengths[row], end))
    return out
