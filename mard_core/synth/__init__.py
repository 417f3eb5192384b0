"""Synthetic DrugBank 5.1 full-database releases for demos, tests and benchmarks.

Real DrugBank data cannot be bundled, so MARD writes its own release in DrugBank's exact XML format
(it validates against drugbank.xsd). The model behind it is data in ``synth/data/``, loaded once by
:mod:`.world`:

- PROTEINS (proteins.yaml): the targets, enzymes, carriers and transporters drugs link to (DrugBank BE ids,
  UniProt ids).
- ARCHETYPES (archetypes.yaml): drug classes. Each synthetic drug draws one and gets its protein links (with
  actions such as substrate / inhibitor / inducer / agonist), categories and ATC code from it.
- ROLES (mechanisms.yaml): what a record must show (a protein action or a category) for a drug to play a
  mechanistic role; "inhibitor:CYP3A4" style roles need no entry (an interactant CYP3A4 whose actions include
  inhibitor).
- TEMPLATES (mechanisms.yaml): DrugBank's own interaction sentences (DeepDDI's 86 types, DeepDDI2's 113, and
  real variants beyond both lists), each tagged with its mechanism family; #Drug1 is the perpetrator of a
  directional one.
- RULES (mechanisms.yaml): which pair of roles produces which template. A pair of drugs gets an interaction
  only when a rule says so for the drugs' world roles (plus a small share of generic "adverse effects"
  noise). Template frequency is Zipf-like by table order.
- vocabularies.yaml (ATC level names, MeSH ids, PK category names, drug groups), names.yaml (name parts) and
  molecules.yaml (SMILES building blocks, atom masses).

The written release departs from its world as real DrugBank does (:class:`~.config.WorldConfig`): records
leave out a share of their mechanism-bearing protein rows (the world still uses them); where several
mechanisms are plausible for a pair, the curators write the one a seeded per-class-pair preference ranks
first (mostly: :mod:`.interactions`), so it is learnable from other pairs of the same classes; a few labels
are wrong, and a few pairs are listed differently under their two drugs. :func:`.history.oracle` measures
the result (the ceiling: labels equal to the world's intended ones) into the sidecar
``<release>.world.json``, which also holds the world's parameters: :func:`evolve_release` rebuilds the world
from it and writes the next release (renamed, merged and new drugs, new and corrected interactions).

The real-drug fixture (mard_core/data/real_drugs.xml) is merged in verbatim, with its own real interactions;
synthetic drugs interact with fixture drugs wherever the rules say so, and those interactions are appended
to the fixture records. Interactions are listed under both drugs; a few descriptions carry a line break and
indentation, as in real exports.

``write_release(out, n_drugs, seed)`` writes ``n_drugs`` synthetic drugs plus the fixture's drugs (its
SynthTruth.n_drugs counts both). Output is byte-identical for the same (n_drugs, seed, fixture,
interactions_per_drug, exported_on, world) and streamed: each record is rendered as text and written on its
own, so memory stays bounded (pair arrays aside, labels are chosen in blocks of pairs).
Synthetic records say in their description that they are synthetic; BE ids, MeSH ids and UniProt ids of the
tables are real or plausible, the drugs, names and structures are not.

Modules: :mod:`.world` (the tables, roles and rules), :mod:`.names` and :mod:`.molecules` (generated names,
ids and structures), :mod:`.drugs` (fixture and synthetic records, pathways), :mod:`.interactions` (which
pairs interact, and by which sentence), :mod:`.history` (the world, its evolution and its oracle),
:mod:`.render` (the streamed XML) and :mod:`.release` (:func:`write_release`, :func:`evolve_release`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mard_core.synth.config import WorldConfig
    from mard_core.synth.release import (
        DEFAULT_EXPORTED_ON,
        DEFAULT_FIXTURE,
        SYNTH_VERSION,
        SynthTruth,
        evolve_release,
        read_params,
        sidecar_path,
        world_figures,
        write_release,
    )

__all__ = [
    "DEFAULT_EXPORTED_ON",
    "DEFAULT_FIXTURE",
    "SYNTH_VERSION",
    "SynthTruth",
    "WorldConfig",
    "evolve_release",
    "read_params",
    "sidecar_path",
    "world_figures",
    "write_release",
]


def __getattr__(name: str) -> Any:
    """The public names, imported on first use: loading a config (``synth.config``) stays light."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = "mard_core.synth.config" if name == "WorldConfig" else "mard_core.synth.release"
    return getattr(importlib.import_module(module), name)
