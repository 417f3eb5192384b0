"""The knowledge teacher's pharmacology rules: which recorded properties of two drugs explain which label.

The table (``pharmacology.yaml`` next to this module) is written from clinical pharmacology for real DrugBank
records. From a pair's retrieved evidence (:class:`mard_core.retrieval.Evidence`),
:meth:`Pharmacology.candidates` lists every label the rules allow, each with its support (clinical priority,
scaled by the perpetrator's recorded strength) and the protein records that prove it:

* pharmacokinetic: the perpetrator inhibits or induces an enzyme or transporter (protein record, or a category
  such as "Cytochrome P-450 CYP3A4 Inhibitors (strong)") of which the victim is a substrate: the protein's
  process (metabolism, efflux, hepatic uptake, renal secretion) and the relation give the labels, direction
  perpetrator -> victim;
* class rules: the two drugs' pharmacological classes (recognised from targets and their actions, categories
  and ATC codes), e.g. two QT-prolonging drugs -> QTc prolongation, Bidirectional;
* opposed actions on one target (one blocks what the other activates): the blocker decreases the other's
  efficacy.

Only protein records become proof (the claim grammar checks protein claims against DrugBank's rows), and only
pairs of records on the same protein: a perpetrator and a victim record for PK, a shared target acted on alike
(additive) or in opposite ways (antagonistic) for PD.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from mard_core.errors import InputError, MardError, read_yaml
from mard_core.prompts import PROTEIN_RELATIONS
from mard_core.retrieval import Evidence
from mard_core.taxonomy import A_TO_B, B_TO_A, BIDIRECTIONAL, Label, Taxonomy, load_taxonomy
from mard_core.validation import CONFIG, Fraction, NonEmptyStr, parse_config

PHARMACOLOGY_PATH = Path(__file__).with_name("pharmacology.yaml")
ANY_CLASS = "any"
PK_RELATIONS = ("inhibitor", "inducer")
_PROTEIN_REF = re.compile(r"[A-Za-z0-9][\w\-/ ]*")  # what the claim grammar reads as a protein
_STRENGTH_WORD = re.compile(r"\b(strong|moderate|weak) (?:inhibitor|inducer)\b", re.IGNORECASE)
_CATEGORY_RELATION = re.compile(r"\b(substrate|inhibitor|inducer)s?\b", re.IGNORECASE)
_CATEGORY_STRENGTH = re.compile(r"\((strong|moderate|weak)\)", re.IGNORECASE)
_PRODRUG = re.compile(r"^prodrugs?$", re.IGNORECASE)
_ANTAGONISTIC = "PD Antagonistic"

ActionGroup = Literal["block", "activate", "any"]


# -- the file ------------------------------------------------------------------------------------------------


@pydantic_dataclass(frozen=True, config=CONFIG)
class ProteinSpec:
    kind: Literal["enzyme", "transporter", "carrier", "target"]
    process: NonEmptyStr
    aliases: tuple[NonEmptyStr, ...] = ()


@pydantic_dataclass(frozen=True, config=CONFIG)
class StrengthSpec:
    """Support of a PK mechanism per perpetrator strength."""

    strong: Fraction
    moderate: Fraction
    unspecified: Fraction
    weak: Fraction

    def of(self, strength: str) -> float:
        return float(getattr(self, strength))


@pydantic_dataclass(frozen=True, config=CONFIG)
class PKSpec:
    labels: Annotated[tuple[NonEmptyStr, ...], Field(min_length=1)]
    prodrug: tuple[NonEmptyStr, ...] = ()


@pydantic_dataclass(frozen=True, config=CONFIG)
class ClassSpec:
    proteins: tuple[tuple[NonEmptyStr, ActionGroup], ...] = ()
    categories: tuple[NonEmptyStr, ...] = ()
    atc: tuple[NonEmptyStr, ...] = ()


@pydantic_dataclass(frozen=True, config=CONFIG)
class ClassRule:
    classes: tuple[NonEmptyStr, NonEmptyStr]
    labels: Annotated[tuple[NonEmptyStr, ...], Field(min_length=1)]
    support: Fraction


@pydantic_dataclass(frozen=True, config=CONFIG)
class OpposedSpec:
    label: NonEmptyStr
    support: Fraction


@pydantic_dataclass(frozen=True, config=CONFIG)
class PharmacologyFile:
    """The yaml's layout (see the comments in ``pharmacology.yaml``)."""

    actions: dict[Literal["block", "activate"], tuple[NonEmptyStr, ...]]
    strength: StrengthSpec
    alternative_factor: Fraction
    shared_target_support: Fraction
    proteins: dict[NonEmptyStr, ProteinSpec]
    pk: dict[NonEmptyStr, dict[NonEmptyStr, PKSpec]]
    classes: dict[NonEmptyStr, ClassSpec]
    class_rules: tuple[ClassRule, ...]
    opposed_target: OpposedSpec


# -- what the rules return -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mechanism:
    """A label that a perpetrator ``relation`` (inhibitor | inducer) of a protein of ``protein_kinds``
    explains when the victim is a substrate of the same protein (what the MFS checks a PK claim against)."""

    family: str
    subtype: str
    modality: str
    relation: str
    protein_kinds: tuple[str, ...]


@dataclass(frozen=True)
class Link:
    """One protein record of a drug: the protein's key and its text reference, the item and its actions."""

    key: str
    ref: str
    item: Evidence
    actions: frozenset[str]


Proof = tuple[tuple[str, Link], ...]
"""(relation as the claim grammar says it: inhibitor | inducer | substrate | target, the record) per step."""


@dataclass(frozen=True)
class Candidate:
    """A label the rules allow for the query (A, B), in the query orientation."""

    label: str
    support: float
    perpetrator: str  # drug id of the acting drug; "" for a Bidirectional label
    proof: Proof = ()


@dataclass
class Profile:
    """What one drug's evidence records: PK relations (gene, relation) -> (strength, record; None when only
    a category says it), pharmacological classes, whether it is a prodrug, and its protein records."""

    links: list[Link] = field(default_factory=list)
    pk: dict[tuple[str, str], tuple[str, Link | None]] = field(default_factory=dict)
    classes: set[str] = field(default_factory=set)
    prodrug: bool = False


def link_of(item: Evidence) -> Link | None:
    """The protein record ``item`` as a link (None when the claim grammar cannot name its protein)."""
    ref = next(
        (r for r in (item.gene_name, item.uniprot_id, item.protein_name) if r and _PROTEIN_REF.fullmatch(r)),
        None,
    )
    key = item.uniprot_id or item.gene_name or item.protein_name
    if ref is None or key is None:
        return None
    return Link(key.casefold(), ref, item, frozenset(a.lower() for a in item.actions))


def _pk_relations(actions: frozenset[str]) -> list[str]:
    return [r for r in ("substrate", *PK_RELATIONS) if actions & set(PROTEIN_RELATIONS[r])]


def _record_strength(item: Evidence) -> str:
    m = _STRENGTH_WORD.search(item.sentence)
    return m.group(1).lower() if m else "unspecified"


class Pharmacology:
    """The validated rule table; build it with :func:`load_pharmacology`."""

    def __init__(self, spec: PharmacologyFile, taxonomy: Taxonomy, path: Path) -> None:
        self.spec = spec
        self.block = frozenset(spec.actions.get("block", ()))
        self.activate = frozenset(spec.actions.get("activate", ()))
        self._rank = {gene.upper(): i for i, gene in enumerate(spec.proteins)}
        self._proteins = {gene.upper(): p for gene, p in spec.proteins.items()}
        self._aliases = {
            a.casefold(): gene.upper() for gene, p in spec.proteins.items() for a in (gene, *p.aliases)
        }
        alternation = "|".join(re.escape(a) for a in sorted(self._aliases, key=len, reverse=True))
        self._alias_rx = re.compile(rf"(?<![\w-])({alternation})(?![\w-])", re.IGNORECASE)
        self._class_proteins: dict[str, list[tuple[str, str]]] = {}
        for name, cls in spec.classes.items():
            for gene, group in cls.proteins:
                self._class_proteins.setdefault(gene.upper(), []).append((name, group))
        self._class_categories = [
            (name, re.compile(rx, re.IGNORECASE))
            for name, cls in spec.classes.items()
            for rx in cls.categories
        ]
        self._class_atc = [(name, code.upper()) for name, cls in spec.classes.items() for code in cls.atc]
        self._check(taxonomy, path)

    def _check(self, taxonomy: Taxonomy, path: Path) -> None:
        """Every label is the taxonomy's, every process and class named is defined."""

        def label(text: str, where: str, directional: bool) -> None:
            parts = text.split("/")
            full = "/".join([*parts[:2], A_TO_B, parts[2]]) if directional and len(parts) == 3 else text
            try:
                taxonomy.validate_label(Label.parse(full))
            except MardError as exc:
                raise InputError(f"{path}: {where}: {exc}") from None

        for process, relations in self.spec.pk.items():
            for relation, pk in relations.items():
                if relation not in PK_RELATIONS:
                    raise InputError(f"{path}: pk.{process}.{relation}: not one of {', '.join(PK_RELATIONS)}")
                for text in (*pk.labels, *pk.prodrug):
                    label(text, f"pk.{process}.{relation}", directional=True)
        for gene, protein in self.spec.proteins.items():
            if protein.process not in self.spec.pk:
                raise InputError(f"{path}: proteins.{gene}: process {protein.process!r} has no pk entry")
        known = set(self.spec.classes) | {ANY_CLASS}
        for i, rule in enumerate(self.spec.class_rules):
            unknown = [c for c in rule.classes if c not in known]
            if unknown:
                raise InputError(f"{path}: class_rules[{i}]: unknown class {unknown[0]!r}")
            for text in rule.labels:
                label(text, f"class_rules[{i}]", directional=False)
        label(self.spec.opposed_target.label, "opposed_target", directional=False)

    # -- the mechanisms the MFS checks -----------------------------------------------------------------------

    def mechanisms(self) -> tuple[Mechanism, ...]:
        """Per PK label and perpetrator relation, the protein kinds whose processes explain it (file
        order)."""
        kinds: dict[tuple[str, str, str, str], list[str]] = {}
        for process, relations in self.spec.pk.items():
            process_kinds = [p.kind for p in self.spec.proteins.values() if p.process == process]
            for relation, pk in relations.items():
                for text in (*pk.labels, *pk.prodrug):
                    family, subtype, modality = text.split("/")
                    found = kinds.setdefault((family, subtype, modality, relation), [])
                    found[:] = dict.fromkeys([*found, *process_kinds])
        return tuple(Mechanism(f, s, m, r, tuple(k)) for (f, s, m, r), k in kinds.items())

    # -- one drug's evidence ---------------------------------------------------------------------------------

    def _acts(self, actions: frozenset[str], group: str) -> bool:
        return group == "any" or bool(actions & (self.block if group == "block" else self.activate))

    def profile(self, evidence: Sequence[Evidence], drug_id: str) -> Profile:
        """What ``drug_id``'s items among ``evidence`` record."""
        out = Profile()
        for item in evidence:
            if item.drug_id != drug_id:
                continue
            if item.kind == "protein":
                self._protein(item, out)
            elif item.kind == "category" and item.value:
                self._category(item.value, out)
            elif item.kind == "atc" and item.value:
                code = item.value.upper()
                out.classes.update(name for name, prefix in self._class_atc if code.startswith(prefix))
        return out

    def _protein(self, item: Evidence, out: Profile) -> None:
        link = link_of(item)
        if link is not None:
            out.links.append(link)
        gene = (item.gene_name or "").upper()
        actions = frozenset(a.lower() for a in item.actions)
        out.classes.update(
            name for name, group in self._class_proteins.get(gene, ()) if self._acts(actions, group)
        )
        if gene in self._proteins and link is not None:
            for relation in _pk_relations(actions):
                strength = _record_strength(item) if relation != "substrate" else "unspecified"
                known = out.pk.get((gene, relation))
                if known is None or known[1] is None:  # a record beats a category
                    out.pk[(gene, relation)] = (strength, link)

    def _category(self, category: str, out: Profile) -> None:
        if _PRODRUG.match(category):
            out.prodrug = True
        out.classes.update(name for name, rx in self._class_categories if rx.search(category))
        alias, relation = self._alias_rx.search(category), _CATEGORY_RELATION.search(category)
        if alias and relation:
            m = _CATEGORY_STRENGTH.search(category)
            key = (self._aliases[alias.group(1).casefold()], relation.group(1).lower())
            out.pk.setdefault(key, (m.group(1).lower() if m else "unspecified", None))

    # -- candidates ------------------------------------------------------------------------------------------

    def candidates(self, a: str, b: str, evidence: Sequence[Evidence]) -> list[Candidate]:
        """Every label the rules allow for the query (A = ``a``, B = ``b``), the best-supported first (ties:
        the clinically more important protein, then the perpetrator's id); one candidate per label."""
        profiles = {a: self.profile(evidence, a), b: self.profile(evidence, b)}
        found: list[tuple[Candidate, int]] = []
        for perp, victim in ((a, b), (b, a)):
            found += self._pk(a, perp, victim, profiles)
            found += [(c, len(self._rank)) for c in self._classes(a, perp, victim, profiles)]
        found += [(c, len(self._rank)) for c in self._opposed(a, b, profiles)]
        found.sort(key=lambda x: (-x[0].support, x[1], x[0].perpetrator, not x[0].proof))
        best: dict[str, Candidate] = {}
        for cand, _ in found:
            best.setdefault(cand.label, cand)
        return list(best.values())

    def _pk(
        self, a: str, perp: str, victim: str, profiles: Mapping[str, Profile]
    ) -> list[tuple[Candidate, int]]:
        direction = A_TO_B if perp == a else B_TO_A
        out = []
        for (gene, relation), (strength, link) in profiles[perp].pk.items():
            spec = self.spec.pk[self._proteins[gene].process].get(relation)
            substrate = profiles[victim].pk.get((gene, "substrate"))
            if spec is None or substrate is None:
                continue
            proof: Proof = ((relation, link), ("substrate", substrate[1])) if link and substrate[1] else ()
            labels = (*spec.labels, *(spec.prodrug if profiles[victim].prodrug else ()))
            support = self.spec.strength.of(strength)
            for i, text in enumerate(labels):
                family, subtype, modality = text.split("/")
                weight = 1.0 if i == 0 else self.spec.alternative_factor
                label = f"{family}/{subtype}/{direction}/{modality}"
                out.append((Candidate(label, support * weight, perp, proof), self._rank[gene]))
        return out

    def _classes(self, a: str, perp: str, victim: str, profiles: Mapping[str, Profile]) -> list[Candidate]:
        out = []
        for rule in self.spec.class_rules:
            first, second = rule.classes
            if first not in profiles[perp].classes:
                continue
            if second != ANY_CLASS and second not in profiles[victim].classes:
                continue
            for i, text in enumerate(rule.labels):
                label = Label.parse(text)
                if label.direction == BIDIRECTIONAL:
                    oriented, acting = label, ""
                else:
                    oriented, acting = (label if perp == a else label.mirrored()), perp
                proof = self.shared_target(a, perp, victim, profiles, label.family == _ANTAGONISTIC)
                support = rule.support * (1.0 if i == 0 else self.spec.alternative_factor)
                out.append(Candidate(oriented.slash(), support, acting, proof))
        return out

    def _opposed(self, a: str, b: str, profiles: Mapping[str, Profile]) -> list[Candidate]:
        label = Label.parse(self.spec.opposed_target.label)
        out = []
        for perp, victim in ((a, b), (b, a)):
            proof = self.shared_target(a, perp, victim, profiles, opposed=True, blocker_first=True)
            if proof:
                oriented = label if perp == a else label.mirrored()
                out.append(Candidate(oriented.slash(), self.spec.opposed_target.support, perp, proof))
        return out

    def opposed(self, x: frozenset[str], y: frozenset[str]) -> bool:
        """Whether two drugs' actions on one target oppose each other (one activates, the other blocks)."""
        return bool((x & self.activate and y & self.block) or (x & self.block and y & self.activate))

    def shared_target(
        self,
        a: str,
        first: str,
        second: str,
        profiles: Mapping[str, Profile],
        opposed: bool,
        blocker_first: bool = False,
    ) -> Proof:
        """Target records of both drugs on one protein, A's first: acted on in opposite ways (``opposed``;
        with ``blocker_first``, ``first`` is the one that blocks) or alike."""
        targets = {x.key: x for x in profiles[second].links if x.item.protein_kind == "target"}
        for link in profiles[first].links:
            other = targets.get(link.key) if link.item.protein_kind == "target" else None
            if other is None or self.opposed(link.actions, other.actions) != opposed:
                continue
            if blocker_first and not link.actions & self.block:
                continue
            pair = (("target", link), ("target", other))
            return pair if first == a else pair[::-1]
        return ()

    def target_proof(self, a: str, b: str, evidence: Sequence[Evidence], family: str) -> Proof:
        """A shared target as a PD family needs it (opposite actions for PD Antagonistic, alike otherwise)."""
        profiles = {a: self.profile(evidence, a), b: self.profile(evidence, b)}
        return self.shared_target(a, a, b, profiles, family == _ANTAGONISTIC)


@cache
def _load(path: Path, taxonomy_path: Path) -> Pharmacology:
    data = read_yaml(path, "the pharmacology table")
    return Pharmacology(parse_config(PharmacologyFile, data, str(path)), load_taxonomy(taxonomy_path), path)


def load_pharmacology(path: str | Path | None = None, taxonomy: Taxonomy | None = None) -> Pharmacology:
    """The rule table (default ``pharmacology.yaml`` next to this module), checked against the taxonomy;
    cached."""
    return _load(Path(path or PHARMACOLOGY_PATH).resolve(), (taxonomy or load_taxonomy()).path)
