"""MARD's mechanism taxonomy: families, subtypes with their sentence patterns, labels and the mirror rule.

A label is ``Family/Subtype/Direction/Modality``; direction is relative to the ordered query (A, B). The data
lives in ``schemas/taxonomy.yaml``; this module loads and validates it and matches phrases to subtypes. Rare
phrases fold into each family's fallback ("Other") subtype; ``Taxonomy.other_min_share`` (the yaml's
``other_threshold.min_share``) is the share of interaction elements at which a phrase deserves its own
subtype.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from mard_core.errors import MardError
from schemas import SCHEMA_DIR

DEFAULT_TAXONOMY_PATH = SCHEMA_DIR / "taxonomy.yaml"

FAMILIES = (
    "PK Absorption",
    "PK Distribution",
    "PK Metabolism",
    "PK Excretion",
    "PK Exposure",
    "PD Additive",
    "PD Antagonistic",
)
A_TO_B, B_TO_A, BIDIRECTIONAL = "A to B", "B to A", "Bidirectional"
DIRECTIONS = (A_TO_B, B_TO_A, BIDIRECTIONAL)
INCREASE, DECREASE, INHIBITION, INDUCTION = "Increase", "Decrease", "Inhibition", "Induction"
MODALITIES = (INCREASE, DECREASE, INHIBITION, INDUCTION)
FAMILY_MODALITIES: dict[str, tuple[str, ...]] = {
    family: (INHIBITION, INDUCTION) if family == "PK Metabolism" else (INCREASE, DECREASE)
    for family in FAMILIES
}
"""Modalities each family may carry: Inhibition/Induction for PK Metabolism, Increase/Decrease otherwise."""
POLARITIES = ("increase", "decrease")
DIRECTIONAL, SYMMETRIC = "directional", "symmetric"
SUBTYPE_KINDS = (DIRECTIONAL, SYMMETRIC)
FAMILY_KINDS = ("pk", "pd")


class TaxonomyError(MardError):
    """The taxonomy yaml is malformed; the message names the file and the entry."""


class LabelError(MardError):
    """A label string or value is not a valid ``Family/Subtype/Direction/Modality`` label."""


def mirror_direction(direction: str) -> str:
    """The direction seen from the swapped query (B, A): A to B <-> B to A; Bidirectional stays."""
    if direction == A_TO_B:
        return B_TO_A
    if direction == B_TO_A:
        return A_TO_B
    if direction == BIDIRECTIONAL:
        return BIDIRECTIONAL
    raise LabelError(f"unknown direction {direction!r}; expected one of {', '.join(DIRECTIONS)}")


@dataclass(frozen=True)
class Label:
    """One mechanism label; ``str(label)`` gives the slash form."""

    family: str
    subtype: str
    direction: str
    modality: str

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise LabelError(f"label {self.slash()!r}: unknown direction {self.direction!r}")
        if self.modality not in MODALITIES:
            raise LabelError(f"label {self.slash()!r}: unknown modality {self.modality!r}")

    def slash(self) -> str:
        """``Family/Subtype/Direction/Modality``."""
        return f"{self.family}/{self.subtype}/{self.direction}/{self.modality}"

    def __str__(self) -> str:
        return self.slash()

    @classmethod
    def parse(cls, text: str) -> Label:
        """Parse the slash form; raises LabelError on anything else."""
        parts = text.split("/")
        if len(parts) != 4 or not all(p.strip() for p in parts):
            raise LabelError(f"label {text!r}: expected Family/Subtype/Direction/Modality")
        return cls(*(p.strip() for p in parts))

    def mirrored(self) -> Label:
        """The same interaction seen from the swapped query (B, A)."""
        return Label(self.family, self.subtype, mirror_direction(self.direction), self.modality)


def mirror(label: Label) -> Label:
    """label(B, A) from label(A, B): A to B and B to A swapped."""
    return label.mirrored()


@dataclass(frozen=True)
class Subtype:
    """A subtype of a family, with the regexes that map sentence phrases to it."""

    family: str
    name: str
    definition: str
    kind: str
    fallback: bool
    patterns: tuple[re.Pattern[str], ...]

    @property
    def symmetric(self) -> bool:
        """True when its sentences name both drugs alike (labels are always Bidirectional)."""
        return self.kind == SYMMETRIC

    def match(self, phrase: str) -> tuple[int, int] | None:
        """(start, -length) of the earliest, then longest, pattern match in ``phrase``; None if none."""
        best: tuple[int, int] | None = None
        for pattern in self.patterns:
            m = pattern.search(phrase)
            if m and (best is None or (m.start(), m.start() - m.end()) < best):
                best = (m.start(), m.start() - m.end())
        return best


@dataclass(frozen=True)
class Family:
    """A mechanism family and its subtypes, in file order."""

    name: str
    definition: str
    kind: str
    modalities: dict[str, str]  # polarity (increase | decrease) -> modality
    subtypes: tuple[Subtype, ...]

    def fallback(self, kind: str) -> Subtype | None:
        """The family's fallback ("Other") subtype for sentences of ``kind``."""
        return next((s for s in self.subtypes if s.fallback and s.kind == kind), None)


@dataclass(frozen=True)
class Taxonomy:
    """The validated taxonomy; build it with :func:`load_taxonomy`."""

    path: Path
    families: tuple[Family, ...]
    other_min_share: float

    def family(self, name: str) -> Family:
        """The family called ``name``."""
        for fam in self.families:
            if fam.name == name:
                return fam
        raise LabelError(f"unknown family {name!r} (taxonomy {self.path})")

    def subtype(self, family: str, name: str) -> Subtype:
        """The subtype ``name`` of ``family``."""
        for sub in self.family(family).subtypes:
            if sub.name == name:
                return sub
        raise LabelError(f"family {family!r} has no subtype {name!r} (taxonomy {self.path})")

    @property
    def subtypes(self) -> tuple[Subtype, ...]:
        """Every subtype of every family, in file order."""
        return tuple(s for fam in self.families for s in fam.subtypes)

    def is_symmetric(self, family: str, subtype: str) -> bool:
        """True when labels of this subtype are always Bidirectional."""
        return self.subtype(family, subtype).symmetric

    def validate_label(self, label: Label) -> Label:
        """Check that ``label`` names a known family/subtype with a consistent direction and modality."""
        fam = self.family(label.family)
        sub = self.subtype(label.family, label.subtype)
        if label.modality not in fam.modalities.values():
            raise LabelError(f"label {label}: modality must be one of {sorted(fam.modalities.values())}")
        if sub.symmetric != (label.direction == BIDIRECTIONAL):
            want = "Bidirectional" if sub.symmetric else "'A to B' or 'B to A'"
            raise LabelError(f"label {label}: a {sub.kind} subtype needs direction {want}")
        return label

    def labels(self) -> list[Label]:
        """Every valid label, in file order (directions of directional subtypes: A to B, then B to A)."""
        out = []
        for fam in self.families:
            for sub in fam.subtypes:
                directions = (BIDIRECTIONAL,) if sub.symmetric else (A_TO_B, B_TO_A)
                out += [Label(fam.name, sub.name, d, m) for m in fam.modalities.values() for d in directions]
        return out

    def match_subtype(self, phrase: str, polarity: str, kind: str, *, pd_only: bool) -> Subtype | None:
        """The subtype a sentence phrase maps to, or None.

        Candidates are the ``kind`` subtypes of families that carry ``polarity`` (PD families only when
        ``pd_only``: effect phrases). The earliest, then longest, pattern match wins, then file order;
        fallback subtypes count only when no specific one matches. With ``pd_only`` and still no match,
        the phrase folds into the fallback subtype of the PD family for that polarity (a rare effect).
        """
        phrase = phrase.casefold()
        families = [f for f in self.families if polarity in f.modalities and (f.kind == "pd" or not pd_only)]
        candidates = [s for f in families for s in f.subtypes if s.kind == kind]
        for fallback in (False, True):
            scored = [
                (hit, i)
                for i, s in enumerate(candidates)
                if s.fallback == fallback
                if (hit := s.match(phrase)) is not None
            ]
            if scored:
                return candidates[min(scored)[1]]
        if pd_only:
            return next((sub for f in families if (sub := f.fallback(kind)) is not None), None)
        return None


def _require(entry: dict[str, Any], key: str, where: str, path: Path) -> Any:
    if key not in entry or entry[key] in (None, "", []):
        raise TaxonomyError(f"{path}: {where} is missing {key!r}")
    return entry[key]


def _build_subtype(entry: Any, family: str, path: Path) -> Subtype:
    where = f"family {family!r} subtype {entry.get('name') if isinstance(entry, dict) else entry!r}"
    if not isinstance(entry, dict):
        raise TaxonomyError(f"{path}: {where} must be a mapping")
    name = _require(entry, "name", where, path)
    if not isinstance(name, str) or "/" in name or name != name.strip():
        raise TaxonomyError(f"{path}: {where}: name must be a trimmed string without '/'")
    definition = _require(entry, "definition", where, path)
    patterns = _require(entry, "patterns", where, path)
    kind = entry.get("kind", DIRECTIONAL)
    if kind not in SUBTYPE_KINDS:
        raise TaxonomyError(f"{path}: {where}: kind {kind!r} is not one of {SUBTYPE_KINDS}")
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise TaxonomyError(f"{path}: {where}: patterns must be a list of non-empty regex strings")
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise TaxonomyError(f"{path}: {where}: bad regex {pattern!r}: {exc}") from exc
    return Subtype(
        family, name, str(definition).strip(), kind, bool(entry.get("fallback", False)), tuple(compiled)
    )


def _build_family(entry: Any, path: Path) -> Family:
    if not isinstance(entry, dict):
        raise TaxonomyError(f"{path}: every entry of 'families' must be a mapping, got {entry!r}")
    name = _require(entry, "name", "a family", path)
    if name not in FAMILIES:
        raise TaxonomyError(f"{path}: unknown family {name!r}; expected one of {', '.join(FAMILIES)}")
    where = f"family {name!r}"
    definition = _require(entry, "definition", where, path)
    kind = _require(entry, "kind", where, path)
    if kind not in FAMILY_KINDS:
        raise TaxonomyError(f"{path}: {where}: kind {kind!r} is not one of {FAMILY_KINDS}")
    modalities = _require(entry, "modalities", where, path)
    if (
        not isinstance(modalities, dict)
        or not set(modalities) <= set(POLARITIES)
        or not set(modalities.values()) <= set(FAMILY_MODALITIES[name])
    ):
        raise TaxonomyError(
            f"{path}: {where}: modalities must map increase/decrease to "
            f"{' or '.join(FAMILY_MODALITIES[name])}, got {modalities!r}"
        )
    subtypes = tuple(_build_subtype(s, name, path) for s in _require(entry, "subtypes", where, path))
    seen: set[str] = set()
    for sub in subtypes:
        if sub.name in seen:
            raise TaxonomyError(f"{path}: {where}: duplicate subtype {sub.name!r}")
        seen.add(sub.name)
    for sub_kind in {s.kind for s in subtypes}:
        n_fallback = sum(s.fallback for s in subtypes if s.kind == sub_kind)
        if n_fallback != 1:
            raise TaxonomyError(
                f"{path}: {where}: needs exactly one fallback ('Other') subtype of kind "
                f"{sub_kind!r}, found {n_fallback}"
            )
    return Family(name, str(definition).strip(), kind, dict(modalities), subtypes)


def parse_taxonomy(data: Any, path: Path) -> Taxonomy:
    """Validate the yaml document ``data`` (read from ``path``) and build the taxonomy."""
    if not isinstance(data, dict) or not isinstance(data.get("families"), list):
        raise TaxonomyError(f"{path}: expected a mapping with a 'families' list")
    families = tuple(_build_family(f, path) for f in data["families"])
    names = [f.name for f in families]
    if sorted(names) != sorted(FAMILIES):
        dupes = sorted({n for n in names if names.count(n) > 1})
        missing = sorted(set(FAMILIES) - set(names))
        raise TaxonomyError(
            f"{path}: families must be the seven of MARD once each "
            f"(duplicated: {dupes or 'none'}, missing: {missing or 'none'})"
        )
    threshold = data.get("other_threshold")
    share = threshold.get("min_share") if isinstance(threshold, dict) else None
    if not isinstance(share, float) or not 0.0 < share < 1.0:
        raise TaxonomyError(f"{path}: other_threshold.min_share must be a fraction in (0, 1), got {share!r}")
    return Taxonomy(path, families, share)


@lru_cache(maxsize=8)
def _load(path: Path) -> Taxonomy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"{path}: cannot read taxonomy: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: not valid yaml: {exc}") from exc
    return parse_taxonomy(data, path)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate the taxonomy (default ``schemas/taxonomy.yaml``); cached per path."""
    return _load(Path(path or DEFAULT_TAXONOMY_PATH).resolve())
