"""Drug names unique case-insensitively, with hard cases (esters, salts, unicode, punctuation), and the ids
and registry numbers of a record. Name parts are in ``data/names.yaml``."""

from __future__ import annotations

import random
from typing import ClassVar

from mard_core.errors import InputError
from mard_core.synth.world import load_data

_NAME_DATA = load_data("names")
SYLLABLES: tuple[str, ...] = tuple(_NAME_DATA["syllables"])
ESTERS: tuple[str, ...] = tuple(_NAME_DATA["esters"])
SALTS: dict[str, tuple[float, float]] = {salt: tuple(mass) for salt, mass in _NAME_DATA["salts"].items()}
"""Salt suffix: (average, monoisotopic) mass added to the base."""
NAME_MODIFIERS: tuple[str, ...] = tuple(_NAME_DATA["name_modifiers"])
NAME_SPECIES: tuple[str, ...] = tuple(_NAME_DATA["name_species"])
GREEK: tuple[str, ...] = tuple(_NAME_DATA["greek"])
ACCENTED: dict[str, str] = _NAME_DATA["accented"]


def random_cas(rng: random.Random) -> str:
    """A CAS registry number shape with a valid check digit."""
    body = str(rng.randint(10000, 9999999))
    check = sum(i * int(d) for i, d in enumerate(reversed(body), 1)) % 10
    return f"{body[:-2]}-{body[-2:]}-{check}"


def random_unii(rng: random.Random) -> str:
    """A UNII shape: ten digits or capital letters."""
    return "".join(rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(10))


class Names:
    """Generates drug names unique case-insensitively (also against the fixture's names)."""

    def __init__(self, rng: random.Random, taken: set[str]):
        self.rng, self.taken = rng, taken

    def claim(self, name: str) -> bool:
        if name.casefold() in self.taken:
            return False
        self.taken.add(name.casefold())
        return True

    def core(self, stem: str) -> str:
        for attempt in range(1000):
            n_syllables = 1 + (attempt > 20) + (attempt > 200) + (self.rng.random() < 0.5)
            x = "".join(self.rng.choice(SYLLABLES) for _ in range(n_syllables))
            name = stem.replace("_", " ").format(x=x)
            name = name[0].upper() + name[1:]
            if name.casefold() not in self.taken:
                return name
        raise InputError(f"cannot find a free drug name for stem {stem!r}: the name space is exhausted")

    def make(self, stem: str, case: str, base: str | None) -> str:
        """A new name of hard ``case``: plain | ester (of ``base``) | salt | unicode | punctuation."""
        rng = self.rng
        for _ in range(100):
            if case == "ester" and base is not None:
                name = f"{base} {rng.choice(ESTERS)}"
            elif case == "salt":
                name = f"{self.core(stem)} {rng.choice(sorted(SALTS))}"
            elif case == "unicode":
                core = self.core(stem)
                vowels = [i for i, ch in enumerate(core) if ch in ACCENTED and i > 0]
                if vowels and rng.random() < 0.5:
                    i = rng.choice(vowels)
                    name = core[:i] + ACCENTED[core[i]] + core[i + 1 :]
                else:
                    name = rng.choice(GREEK) + core
            elif case == "punctuation":
                name = f"{self.core(stem)}, {rng.choice(NAME_MODIFIERS)} ({rng.choice(NAME_SPECIES)})"
            else:
                name = self.core(stem)
            if self.claim(name):
                return name
        raise InputError(f"cannot find a free drug name for stem {stem!r} ({case})")


class IdPool:
    """Hands out DrugBank-shaped ids (APRD00001, DBSALT000001, ...) not used by the fixture or earlier
    drugs."""

    WIDTH: ClassVar[dict[str, int]] = {"DB": 5, "APRD": 5, "BTD": 5, "BIOD": 5, "EXPT": 5, "DBSALT": 6}

    def __init__(self, used: set[str]):
        self.used = set(used)
        self.next = dict.fromkeys(self.WIDTH, 1)

    def take(self, prefix: str) -> str:
        while True:
            n = self.next[prefix]
            self.next[prefix] = n + 1
            candidate = f"{prefix}{n:0{self.WIDTH[prefix]}d}"
            if n >= 10 ** self.WIDTH[prefix]:
                raise InputError(f"too many drugs: the {prefix} id space is exhausted")
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate
