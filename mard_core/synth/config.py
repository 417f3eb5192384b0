"""Settings of the synthetic world (``mard_core.synth``): how incomplete, curated and noisy its release is."""

from __future__ import annotations

from pydantic.dataclasses import dataclass

from mard_core.validation import CONFIG, Fraction


@dataclass(frozen=True, config=CONFIG)
class WorldConfig:
    """How the written release departs from the world behind it (every share is of the kind named).

    - missing_share: mechanism-bearing protein rows (a target/enzyme/carrier/transporter whose action a rule
      reads) left out of a synthetic drug's record; the world still uses them to generate interactions.
    - curator_follow: pairs with several plausible mechanisms whose sentence is the one the curators prefer
      for the two drugs' classes (the world's intended label); the others get another plausible one.
    - label_noise: mechanism pairs written with a wrong sentence (any other template, either direction).
    - disagree_share: mechanism pairs whose two listings differ (one states another plausible mechanism, or
      the generic "adverse effects" sentence when there is none).
    """

    missing_share: Fraction = 0.3
    curator_follow: Fraction = 0.88
    label_noise: Fraction = 0.03
    disagree_share: Fraction = 0.02
