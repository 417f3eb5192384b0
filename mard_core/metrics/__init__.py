"""Evaluation metrics: label accuracy, calibration, serving cost and figures (pure functions)."""
from mard_core.metrics.calibration import brier, calibrate, ece, reliability_table
from mard_core.metrics.cost import PriceTable, cost_per_1k
from mard_core.metrics.labels import (
    DIRECTIONS,
    NO_ANSWER,
    LabelFormatError,
    LabelParts,
    bootstrap_accuracy_ci,
    confusion,
    label_metrics,
    mirror_consistency,
    mirror_label,
    present_in_random_order,
    rare_drug_bins,
    split_label,
)

__all__ = [
    "DIRECTIONS",
    "NO_ANSWER",
    "LabelFormatError",
    "LabelParts",
    "PriceTable",
    "bootstrap_accuracy_ci",
    "brier",
    "calibrate",
    "confusion",
    "cost_per_1k",
    "ece",
    "label_metrics",
    "mirror_consistency",
    "mirror_label",
    "present_in_random_order",
    "rare_drug_bins",
    "reliability_table",
    "split_label",
]
