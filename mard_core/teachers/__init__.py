"""Teacher generation backends: transformers (``hf``), OpenAI-compatible HTTP (``openai``) and vLLM.

Backend modules import torch/httpx lazily through ``make_backend``; import them directly for their
config classes.
"""

from mard_core.teachers.base import (
    Backend,
    Completion,
    GenerationParams,
    TeacherError,
    config_from_mapping,
    make_backend,
)

__all__ = ["Backend", "Completion", "GenerationParams", "TeacherError", "config_from_mapping", "make_backend"]
