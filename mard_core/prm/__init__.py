"""Process reward model: verifiable step labels (``labels``), the step scorer (``model``, imports torch) and
trajectory screening (``screen``)."""
