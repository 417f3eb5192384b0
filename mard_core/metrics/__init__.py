"""Evaluation metrics: label accuracy (``labels``), calibration, serving cost, MFS and figures (pure
functions); import them from their modules (the package imports nothing, so light modules can use one of
them)."""
