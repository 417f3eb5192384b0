"""Settings of the register stage (``mard_core.registry``); torch-free, so loading a config stays fast."""

from __future__ import annotations

from typing import Literal

from pydantic.dataclasses import dataclass

from mard_core.validation import CONFIG, Fraction, NonEmptyStr, PositiveInt


@dataclass(frozen=True, config=CONFIG)
class RegisterConfig:
    """Which registered model and alias, which pairs the new model and the champion are compared on, and the
    promotion rule.

    Comparison pairs (``mard_core.registry.comparison_pairs``): test pairs of the new split with ``unseen``
    (``one``: at least one, ``both``: both) drug(s) the champion never trained on (absent from its train and
    valid parts); with fewer than ``min_new_pairs`` of them, the next rule in the documented order.

    Promotion rule: both models answer the same comparison pairs; the new model is promoted when the lower
    bound of the 95% paired bootstrap interval (``n_resamples`` resamples, seeded by ``evaluate.seed``) of its
    exact accuracy minus the champion's is above ``-margin``: with 95% confidence it is not worse by more than
    the margin. A tie (no pair that only one model answers right) promotes the new model: it answers the same
    and was trained on the newer release. McNemar's p-value on the discordant pairs (exact binomial below 25
    of them) is reported beside the decision (is either model better at all?); it does not decide.
    """

    model_name: NonEmptyStr = "mard-student"
    system: NonEmptyStr = "student:mard"
    alias: NonEmptyStr = "champion"
    margin: Fraction = 0.02
    unseen: Literal["one", "both"] = "one"
    min_new_pairs: PositiveInt = 20
    n_resamples: PositiveInt = 10_000
