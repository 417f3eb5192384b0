"""The world model's tables (see :mod:`mard_core.synth`), loaded once from ``data/*.yaml``: proteins,
mechanistic roles, interaction templates, the rules that tie them together, drug classes and the vocabularies
records use; and which roles a record supports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where PyYAML has it: 8x faster here


def load_data(name: str) -> dict[str, Any]:
    """The tables of ``data/<name>.yaml``."""
    return yaml.load((DATA_DIR / f"{name}.yaml").read_text(encoding="utf-8"), Loader=_LOADER)


@dataclass(frozen=True)
class Protein:
    """A DrugBank bio-entity (BE id); ``polypeptides`` are (UniProt id, gene name, name), possibly none."""

    key: str
    kind: str  # target | enzyme | carrier | transporter
    be_id: str
    name: str
    organism: str
    polypeptides: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class Template:
    """A DrugBank interaction sentence; #Drug1 is the perpetrator unless ``symmetric``."""

    id: str
    family: str
    symmetric: bool
    source: str  # "DeepDDI type N" (ddi_types_86.csv), "DeepDDI2 Type_N" (ddi_types_113.txt) or "variant"
    text: str


@dataclass(frozen=True)
class Rule:
    """A drug with all ``perpetrator`` roles meeting one with all ``victim`` roles gets ``template``."""

    template: str
    perpetrator: tuple[str, ...]
    victim: tuple[str, ...]


@dataclass(frozen=True)
class Link:
    """A protein link an archetype gives with probability ``p``; ``strength`` alternatives are
    "|"-separated."""

    protein: str
    action: str
    p: float = 1.0
    strength: str = ""


@dataclass(frozen=True)
class Archetype:
    """A drug class: name patterns ({x} = generated syllables), ATC level-5 groups, categories, protein
    links."""

    key: str
    label: str
    weight: float
    stems: tuple[str, ...]
    atc: tuple[str, ...]
    categories: tuple[tuple[str, float], ...]
    links: tuple[Link, ...]
    one_of: tuple[Link, ...] = ()  # exactly one of these is added
    biotech: bool = False
    promiscuity: float = 1.0  # relative chance of being drawn into an interaction


def _protein(
    key: str,
    kind: str,
    be_id: str,
    name: str,
    polypeptides: str | Sequence[Sequence[str]],
    organism: str = "Humans",
) -> Protein:
    """A row of proteins.yaml: ``polypeptides`` is a UniProt id (one polypeptide, the key as its gene
    name), "" (none) or the list of (UniProt id, gene name, name)."""
    if isinstance(polypeptides, str):
        polypeptides = [[polypeptides, key, name]] if polypeptides else []
    polys = tuple((uid, gene, pname) for uid, gene, pname in polypeptides)
    return Protein(key, kind, be_id, name, organism, polys)


def _archetype(
    key: str,
    label: str,
    weight: float,
    stems: Sequence[str],
    atc: Sequence[str],
    categories: Mapping[str, float],
    links: Sequence[Sequence[Any]],
    one_of: Sequence[Sequence[Any]] = (),
    biotech: bool = False,
    promiscuity: float = 1.0,
) -> Archetype:
    """An entry of archetypes.yaml: ``categories`` maps a name to its probability, a link is [protein, action,
    p, strength]."""
    return Archetype(
        key,
        label,
        weight,
        tuple(stems),
        tuple(atc),
        tuple(categories.items()),
        tuple(Link(*lk) for lk in links),
        tuple(Link(*lk) for lk in one_of),
        biotech,
        promiscuity,
    )


_PROTEIN_DATA, _MECHANISM_DATA = load_data("proteins"), load_data("mechanisms")
_VOCABULARY_DATA = load_data("vocabularies")
ORGANISM_TAXONOMY: dict[str, str] = _PROTEIN_DATA["organisms"]
CELLULAR_LOCATION: dict[str, str] = _PROTEIN_DATA["cellular_locations"]
PROTEINS: dict[str, Protein] = {p.key: p for p in (_protein(*row) for row in _PROTEIN_DATA["proteins"])}
FAMILIES: tuple[str, ...] = tuple(_MECHANISM_DATA["families"])
ROLES: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    role: (tuple(tuple(link) for link in shows["links"]), tuple(shows["categories"]))
    for role, shows in _MECHANISM_DATA["roles"].items()
}
"""A drug has a named role when its record shows ANY of the (gene, action) protein links or categories."""
TEMPLATES: tuple[Template, ...] = tuple(Template(*row) for row in _MECHANISM_DATA["templates"])
"""Ordered by how common each sentence is in DrugBank: template weight is Zipf-like in this order."""
TEMPLATE_BY_ID = {t.id: t for t in TEMPLATES}
NOISE_TEMPLATE = "adverse_effects_risk"
RULES: tuple[Rule, ...] = tuple(
    Rule(t, tuple(p.split()), tuple(v.split())) for t, p, v in _MECHANISM_DATA["rules"]
)
ARCHETYPES: tuple[Archetype, ...] = tuple(_archetype(**a) for a in load_data("archetypes")["archetypes"])
ATC_NAMES: dict[str, str] = _VOCABULARY_DATA["atc_names"]
"""ATC level names for every code prefix the archetypes and the fixture use."""
CATEGORY_MESH: dict[str, str] = _VOCABULARY_DATA["category_mesh"]
"""MeSH descriptor ids of MeSH-derived categories; DrugBank's own categories have an empty mesh-id."""
PK_CATEGORY_NAMES: dict[str, str] = _VOCABULARY_DATA["pk_category_names"]
"""Transporter gene: DrugBank's category prefix."""
GROUP_SETS: tuple[tuple[tuple[str, ...], float], ...] = tuple(
    (tuple(groups), weight) for groups, weight in _VOCABULARY_DATA["group_sets"]
)


def drug_roles(protein_actions: Iterable[tuple[str, str]], categories: Iterable[str]) -> frozenset[str]:
    """Roles a record supports, from its (gene name, action) protein links and its category names."""
    links, cats = set(protein_actions), set(categories)
    named = {
        role
        for role, (prots, role_cats) in ROLES.items()
        if any(p in links for p in prots) or any(c in cats for c in role_cats)
    }
    return frozenset(named | {f"{action}:{gene}" for gene, action in links})


def rules_for(template_id: str) -> tuple[Rule, ...]:
    """The rules that produce ``template_id``."""
    return tuple(r for r in RULES if r.template == template_id)


def explains(rule: Rule, perpetrator_roles: frozenset[str], victim_roles: frozenset[str]) -> bool:
    """Whether ``rule`` produces an interaction from a drug with these roles towards one with those."""
    return set(rule.perpetrator) <= perpetrator_roles and set(rule.victim) <= victim_roles


MECHANISM_LINKS: frozenset[tuple[str, str]] = frozenset(
    {(gene, action) for links, _ in ROLES.values() for gene, action in links}
    | {
        (role.split(":", 1)[1], role.split(":", 1)[0])
        for rule in RULES
        for role in rule.perpetrator + rule.victim
        if ":" in role
    }
)
"""(gene name, action) protein links some rule reads: the mechanism-bearing rows of a record."""
