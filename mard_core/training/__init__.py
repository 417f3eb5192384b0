"""Student training: SFT examples with mirror augmentation (:mod:`.data`), LoRA SFT with the mirror-symmetric
direction KL (:mod:`.sft`) and PRM-weighted DPO on programmatic hard negatives (:mod:`mard_core.negatives`,
:mod:`.dpo`).

Submodules are imported on demand: :mod:`.data` is light; :mod:`.sft` and :mod:`.dpo` pull in torch,
transformers, peft and TRL.
"""

from pathlib import Path

RUN_DIR = "run"  # trainer output: checkpoint-N while training, final/ at the end
MERGED_DIR = "merged"  # the final student merged into its base (transformers backend, vLLM)


def student_dir(stage_dir: str | Path) -> Path:
    """Where a finished sft/dpo stage keeps its student (adapter, tokenizer, student.json)."""
    return Path(stage_dir) / RUN_DIR / "final"


def merged_dir(stage_dir: str | Path) -> Path:
    """The student merged into its base: a plain model directory for the transformers backend and vLLM."""
    return Path(stage_dir) / MERGED_DIR
