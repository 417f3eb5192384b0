"""Process reward model: verifiable step labels (``labels``), the step scorer (``model``, imports torch),
trajectory screening (``screen``) and their settings (``config``, torch-free)."""
