"""transformers backend: batched ``AutoModelForCausalLM.generate`` with left padding and seeded sampling."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    GenerationMixin,
    PreTrainedModel,
)

from mard_core.teachers.base import (
    FINISH_LENGTH,
    FINISH_STOP,
    Backend,
    Completion,
    GenerationParams,
    TeacherError,
)
from mard_core.teachers.config import HFConfig

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    """Map "auto" to cuda when a GPU is visible, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class HFBackend(Backend):
    """Generate with transformers. Sampling follows ``GenerationParams`` only (no top-k, no repetition
    penalty from the checkpoint's generation_config), matching the vLLM backend. Token counts are exact:
    a completion counts its tokens up to and including the EOS or the token that completed a stop string."""

    config_cls: ClassVar[type[HFConfig]] = HFConfig

    def __init__(self, config: HFConfig) -> None:
        self.config = config
        self.name = f"hf:{config.model}"
        self.device = resolve_device(config.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(config.model, padding_side="left")
            model = AutoModelForCausalLM.from_pretrained(
                config.model, dtype=_DTYPES.get(config.dtype, "auto")
            )
        except OSError as exc:
            raise TeacherError(f"HF backend: cannot load model {config.model!r}: {exc}") from exc
        # transformers decorates PreTrainedModel.to with functools.wraps, which mypy reads as unbound
        self._model: PreTrainedModel | None = model.to(self.device).eval()  # type: ignore[arg-type]
        eos = model.generation_config.eos_token_id
        eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        if not eos_ids:
            raise TeacherError(f"HF backend: model {config.model!r} defines no eos token")
        self._eos_ids = frozenset(eos_ids)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.convert_ids_to_tokens(min(self._eos_ids))
        self._pad_id: int = self.tokenizer.pad_token_id

    def __repr__(self) -> str:
        return f"HFBackend(model={self.config.model!r}, device={str(self.device)!r})"

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Completion]]:
        """Sample in batches of ``batch_size`` prompts; the torch RNG is seeded per call and restored
        after."""
        rng_devices = [self.device.index or 0] if self.device.type == "cuda" else []
        results: list[list[Completion]] = []
        with torch.random.fork_rng(devices=rng_devices), torch.inference_mode():
            torch.manual_seed(params.seed)
            for start in range(0, len(prompts), self.config.batch_size):
                results.extend(self._generate_batch(prompts[start : start + self.config.batch_size], params))
        return results

    def _generation_config(self, params: GenerationParams) -> GenerationConfig:
        """Greedy decoding (temperature 0) yields one sequence per prompt, repeated n times by the caller."""
        sampling = (
            {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": 0}
            if params.temperature > 0
            else {"do_sample": False}
        )
        return GenerationConfig(
            max_new_tokens=params.max_tokens,
            num_return_sequences=params.n if params.temperature > 0 else 1,
            eos_token_id=sorted(self._eos_ids),
            pad_token_id=self._pad_id,
            stop_strings=list(params.stop) if params.stop else None,
            **sampling,
        )

    def _generate_batch(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Completion]]:
        if self._model is None:
            raise TeacherError(f"{self.name}: generate() called after close()")
        assert isinstance(self._model, GenerationMixin)  # an AutoModelForCausalLM model
        encoded = self.tokenizer(list(prompts), return_tensors="pt", padding=True).to(self.device)
        start = time.perf_counter()
        config = self._generation_config(params)
        sequences = self._model.generate(**encoded, generation_config=config, tokenizer=self.tokenizer)
        generated = sequences[:, encoded["input_ids"].shape[1] :].tolist()
        latency = time.perf_counter() - start
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        per_prompt = config.num_return_sequences
        return [
            [
                self._completion(
                    generated[i * per_prompt + j % per_prompt], params.stop, prompt_lengths[i], latency
                )
                for j in range(params.n)
            ]
            for i in range(len(prompts))
        ]

    def _completion(
        self, tokens: list[int], stop: tuple[str, ...] | None, prompt_tokens: int, latency: float
    ) -> Completion:
        end = next((i for i, token in enumerate(tokens) if token in self._eos_ids), None)
        count, reason = (len(tokens), FINISH_LENGTH) if end is None else (end + 1, FINISH_STOP)
        body = tokens if end is None else tokens[:end]
        text = self._decode(body)
        hits = [text.find(s) for s in stop or () if s in text]
        if hits:
            text, count, reason = text[: min(hits)], self._stop_token_count(body, stop or ()), FINISH_STOP
        return Completion(text, prompt_tokens, count, latency, reason)

    def _stop_token_count(self, tokens: list[int], stop: tuple[str, ...]) -> int:
        """Smallest prefix length whose text contains a stop string (binary search: containment grows)."""
        low, high = 1, len(tokens)
        while low < high:
            mid = (low + high) // 2
            text = self._decode(tokens[:mid])
            if any(s in text for s in stop):
                high = mid
            else:
                low = mid + 1
        return low

    def _decode(self, tokens: list[int]) -> str:
        """Text of generated tokens without padding/BOS/EOS; added special tokens (the student's direction
        tokens) are kept, since they carry the answer."""
        control = {self.tokenizer.pad_token_id, self.tokenizer.bos_token_id, self.tokenizer.eos_token_id}
        text = self.tokenizer.decode([t for t in tokens if t not in control])
        assert isinstance(text, str)  # one sequence of ids decodes to one string
        return text

    def close(self) -> None:
        """Drop the model; GPU memory returns to the caching allocator."""
        self._model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
