"""Random valid SMILES chains with their molecular formula, masses and an InChIKey-shaped hash. The building
blocks and atom masses are in ``data/molecules.yaml``."""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass

from mard_core.synth.world import load_data


def _formula(text: str) -> dict[str, int]:
    return {el: int(n or 1) for el, n in re.findall(r"([A-Z][a-z]?)(\d*)", text)}


_MOLECULE_DATA = load_data("molecules")
ATOM_MASS: dict[str, tuple[float, float]] = {el: tuple(m) for el, m in _MOLECULE_DATA["atom_mass"].items()}
"""Element: (average, monoisotopic) mass."""
# SMILES building blocks with their atoms when bonded on both sides (chain links) or one side (ends).
# A molecule is start + links + end; each ring closes inside its block, so any chain is valid SMILES.
# The first element tells whether the block starts/ends with a heteroatom (two never meet).
SMILES_LINKS: tuple[tuple[str, dict[str, int], bool, bool], ...] = tuple(
    (s, _formula(f), a == "h", b == "h") for s, f, a, b in _MOLECULE_DATA["smiles_links"]
)
SMILES_ENDS: tuple[tuple[str, dict[str, int], bool], ...] = tuple(
    (s, _formula(f), a == "h") for s, f, a in _MOLECULE_DATA["smiles_ends"]
)
SMILES_STARTS = tuple(link for link in SMILES_LINKS if link[0] in _MOLECULE_DATA["smiles_starts"])


@dataclass(frozen=True)
class Molecule:
    smiles: str
    formula: str
    average_mass: float
    monoisotopic_mass: float
    inchikey: str


def random_molecule(rng: random.Random) -> Molecule:
    """A random valid SMILES chain with its molecular formula, masses and an InChIKey-shaped hash."""
    start = rng.choice(SMILES_STARTS)
    parts, atoms, hetero_end = [start[0]], Counter(start[1]), start[3]
    atoms["H"] += 1  # the start block's first atom has no bond to a predecessor
    for _ in range(rng.randint(3, 9)):
        link = rng.choice(SMILES_LINKS)
        if hetero_end and link[2]:
            parts.append("C")
            atoms.update({"C": 1, "H": 2})
        parts.append(link[0])
        atoms.update(link[1])
        hetero_end = link[3]
    end = rng.choice(SMILES_ENDS)
    if hetero_end and end[2]:
        parts.append("C")
        atoms.update({"C": 1, "H": 2})
    parts.append(end[0])
    atoms.update(end[1])
    smiles = "".join(parts)
    order = ["C", "H"] + sorted(el for el in atoms if el not in ("C", "H"))
    formula = "".join(f"{el}{atoms[el] if atoms[el] > 1 else ''}" for el in order if atoms[el])
    average = sum(ATOM_MASS[el][0] * n for el, n in atoms.items())
    mono = sum(ATOM_MASS[el][1] * n for el, n in atoms.items())
    return Molecule(smiles, formula, round(average, 4), round(mono, 6), inchikey_shape(smiles))


def _letters(data: bytes, n: int) -> str:
    return "".join(chr(65 + b % 26) for b in data[:n])


def inchikey_shape(smiles: str) -> str:
    digest = hashlib.sha256(smiles.encode()).digest()
    return f"{_letters(digest, 14)}-{_letters(digest[14:], 8)}SA-N"
