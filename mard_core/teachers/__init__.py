"""Teacher generation backends: transformers (``hf``), OpenAI-compatible HTTP (``openai``) and vLLM.

Backend modules import torch/httpx lazily through ``make_backend``; their config classes live in the
torch-free ``mard_core.teachers.config``.
"""

from mard_core.teachers.base import (
    Backend,
    Completion,
    GenerationParams,
    TeacherError,
    make_backend,
)

__all__ = ["Backend", "Completion", "GenerationParams", "TeacherError", "make_backend"]
