"""A knowledge-grounded teacher: verified reasoning chains written from retrieved DrugBank fields, no LLM.

Given the ordered query (A, B) and its evidence (:class:`mard_core.retrieval.Evidence`), the teacher writes
steps in the claim grammar of :mod:`mard_core.prompts`, so the PRM verifier can check every one:

* mechanism steps from protein evidence, e.g. "Voriconazole is an inhibitor of CYP3A4 [E2]" and
  "Axitinib is a substrate of CYP3A4 [E5]" for a perpetrator and a victim that share an enzyme or
  transporter (:data:`MECHANISMS` says which protein relation explains which label), or
  "A targets X [Ei]" / "B targets X [Ej]" for a shared pharmacodynamic target;
* one conclusion claim naming the label's process or effect ("Voriconazole decreases the metabolism of
  Axitinib", "A increases the risk or severity of bleeding when combined with B"), citing the training
  interactions of similar drugs (``similar_interaction`` evidence) whose label, seen in the query
  orientation, is the same.

With a gold label (training data) the chain explains the gold label from whatever evidence supports it (only
the conclusion when none does). Without one, :func:`infer_label` picks the label by rules: a shared enzyme or
transporter with an inhibitor/inducer and a substrate gives a pharmacokinetic label (analogue votes choose
among the labels such a mechanism explains), else the most common analogue label, else the configured
majority label. The confidence comes from the evidence: the perpetrator's recorded strength and how many
analogues agree.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from mard_core.errors import InputError
from mard_core.prompts import PROTEIN_RELATIONS, DrugRef, render_completion
from mard_core.retrieval import Evidence
from mard_core.taxonomy import (
    A_TO_B,
    B_TO_A,
    BIDIRECTIONAL,
    SYMMETRIC,
    Label,
    Subtype,
    Taxonomy,
    load_taxonomy,
)
from mard_core.teachers.config import MAX_CONFIDENCE, KnowledgeConfig

KNOWLEDGE_VERSION = "1"
"""Bump when the chains this module writes change, so stored knowledge shards are regenerated."""

ChainStep = tuple[str, list[str]]
"""One step: claim text and the evidence ids it cites (the input of ``render_completion``)."""


@dataclass(frozen=True)
class Mechanism:
    """A label that a perpetrator ``relation`` (inhibitor | inducer) of a protein of ``protein_kinds``
    explains when the victim is a substrate of the same protein."""

    family: str
    subtype: str
    modality: str
    relation: str
    protein_kinds: tuple[str, ...]


MECHANISMS: tuple[Mechanism, ...] = (
    Mechanism("PK Metabolism", "Metabolism", "Inhibition", "inhibitor", ("enzyme",)),
    Mechanism("PK Metabolism", "Metabolism", "Induction", "inducer", ("enzyme",)),
    Mechanism("PK Exposure", "Serum concentration", "Increase", "inhibitor", ("transporter", "enzyme")),
    Mechanism("PK Exposure", "Serum concentration", "Decrease", "inducer", ("transporter", "enzyme")),
    Mechanism("PK Exposure", "Active metabolite concentration", "Decrease", "inhibitor", ("enzyme",)),
    Mechanism("PK Exposure", "Active metabolite concentration", "Increase", "inducer", ("enzyme",)),
    Mechanism("PK Excretion", "Excretion", "Decrease", "inhibitor", ("transporter",)),
    Mechanism("PK Excretion", "Excretion", "Increase", "inducer", ("transporter",)),
    Mechanism("PK Absorption", "Bioavailability", "Increase", "inhibitor", ("transporter",)),
    Mechanism("PK Absorption", "Bioavailability", "Decrease", "inducer", ("transporter",)),
)
"""In priority order: for one protein relation the first matching entry is the rule's default label."""

# Perpetrator strength recorded in DrugBank (shown in the protein sentence) -> support of the mechanism.
_STRENGTH_SUPPORT = {"strong": 0.75, "moderate": 0.6, "weak": 0.45}
_MECHANISM_SUPPORT = 0.6  # enzyme/transporter mechanism of unknown strength
_TARGET_SUPPORT = 0.35  # a shared target: plausible for a pharmacodynamic label, not specific
_ANALOGUE_WEIGHT = 0.8
_MAX_ANALOGUE_CITATIONS = 2
_PROTEIN_REF = re.compile(r"[A-Za-z0-9][\w\-/ ]*")  # what the claim grammar reads as a protein
_STRENGTH = re.compile(r"\b(strong|moderate|weak) (?:inhibitor|inducer)\b", re.IGNORECASE)
_DEFINITION_PHRASE = re.compile(
    r"\b(?:increases|decreases|raises|lowers) the ([a-z][a-z \-]*?) (?:of|to) the victim\b", re.IGNORECASE
)
_PARENTHESES = re.compile(r" ?\([^()]*\)")
_LITERAL = re.compile(r"[a-z0-9][a-z0-9 \-]*")


@dataclass(frozen=True)
class _Link:
    """Protein evidence of one drug: the protein key and its text reference, the item and its actions."""

    key: str
    ref: str
    item: Evidence
    actions: frozenset[str]


def _links(evidence: Sequence[Evidence], drug_id: str) -> list[_Link]:
    out = []
    for e in evidence:
        if e.kind != "protein" or e.drug_id != drug_id:
            continue
        ref = next(
            (r for r in (e.gene_name, e.uniprot_id, e.protein_name) if r and _PROTEIN_REF.fullmatch(r)), None
        )
        key = e.uniprot_id or e.gene_name or e.protein_name
        if ref and key:
            out.append(_Link(key.casefold(), ref, e, frozenset(a.lower() for a in e.actions)))
    return out


def _has_relation(link: _Link, relation: str) -> bool:
    return bool(link.actions & set(PROTEIN_RELATIONS[relation]))


def _strength_support(item: Evidence) -> float:
    m = _STRENGTH.search(item.sentence)
    return _STRENGTH_SUPPORT[m.group(1).lower()] if m else _MECHANISM_SUPPORT


@dataclass(frozen=True)
class _Support:
    """What backs one label: mechanism steps and their support in [0, 1]."""

    steps: tuple[ChainStep, ...] = ()
    mechanism: float = 0.0


def _pk_support(
    mechanisms: Sequence[Mechanism], perpetrator: DrugRef, victim: DrugRef, links: dict[str, list[_Link]]
) -> _Support:
    """The first perpetrator-relation / victim-substrate pair on one protein that ``mechanisms`` allow."""
    victim_substrates = {
        link.key: link for link in links[victim.drugbank_id] if _has_relation(link, "substrate")
    }
    for link in links[perpetrator.drugbank_id]:
        for mech in mechanisms:
            if link.item.protein_kind not in mech.protein_kinds or not _has_relation(link, mech.relation):
                continue
            sub = victim_substrates.get(link.key)
            if sub is not None:
                article = "an" if mech.relation[0] in "aeiou" else "a"
                steps = (
                    (f"{perpetrator.name} is {article} {mech.relation} of {link.ref}", [link.item.id]),
                    (f"{victim.name} is a substrate of {sub.ref}", [sub.item.id]),
                )
                return _Support(steps, _strength_support(link.item))
    return _Support()


def _target_support(a: DrugRef, b: DrugRef, links: dict[str, list[_Link]]) -> _Support:
    """A target both drugs act on (a shared pharmacodynamic site)."""
    b_targets = {link.key: link for link in links[b.drugbank_id] if link.item.protein_kind == "target"}
    for link in links[a.drugbank_id]:
        other = b_targets.get(link.key) if link.item.protein_kind == "target" else None
        if other is not None:
            steps = (
                (f"{a.name} targets {link.ref}", [link.item.id]),
                (f"{b.name} targets {other.ref}", [other.item.id]),
            )
            return _Support(steps, _TARGET_SUPPORT)
    return _Support()


def query_label(item: Evidence, a: DrugRef, b: DrugRef) -> str | None:
    """The label of a ``similar_interaction`` item seen in the query orientation: its similar drug stands for
    the query drug it resembles and its partner for the other one. None for other items."""
    if item.kind != "similar_interaction" or item.value is None:
        return None
    if item.similar_to == a.drugbank_id:
        return item.value
    if item.similar_to == b.drugbank_id:
        return Label.parse(item.value).mirrored().slash()
    return None


def _literal(pattern: str) -> str | None:
    """A plain whole-word phrase a simple pattern matches (first alternatives, optional characters
    dropped)."""
    if not pattern.endswith(("\\b", "$")):
        return None
    text = re.sub(r"\\b|\^|\$", "", pattern)
    text = re.sub(r"\(\?:([^()|]*)(?:\|[^()]*)?\)\??", r"\1", text)
    text = re.sub(r".\?", "", text)
    return text if _LITERAL.fullmatch(text) else None


class KnowledgeTeacher:
    """Writes completions in the prompts format from evidence fields alone (deterministic, no model)."""

    name = "knowledge"

    def __init__(self, config: KnowledgeConfig | None = None, taxonomy: Taxonomy | None = None) -> None:
        self.config = config or KnowledgeConfig()
        self.taxonomy = taxonomy or load_taxonomy()
        self.taxonomy.validate_label(Label.parse(self.config.majority_label))
        self._phrases: dict[tuple[str, str, str], str] = {}

    # -- labels and phrases ----------------------------------------------------------------------------------

    def _polarity(self, label: Label) -> str:
        for polarity, modality in self.taxonomy.family(label.family).modalities.items():
            if modality == label.modality:
                return polarity
        raise InputError(f"label {label}: modality {label.modality!r} does not fit family {label.family!r}")

    def _phrase(self, sub: Subtype, polarity: str) -> str:
        """A phrase the taxonomy maps back to ``sub`` (the verifier reads the conclusion through it)."""
        key = (sub.family, sub.name, polarity)
        if key not in self._phrases:
            found = _DEFINITION_PHRASE.search(_PARENTHESES.sub("", sub.definition))
            candidates = [found.group(1).lower()] if found else []
            candidates += [] if sub.fallback else [sub.name.lower()]  # "Other" names no phrase
            candidates += filter(None, map(_literal, (p.pattern for p in sub.patterns)))
            pd_only = self.taxonomy.family(sub.family).kind == "pd" and sub.symmetric
            self._phrases[key] = next(
                (
                    c
                    for c in candidates
                    if self.taxonomy.match_subtype(c, polarity, sub.kind, pd_only=pd_only) == sub
                ),
                sub.name.lower(),
            )
        return self._phrases[key]

    def _conclusion(self, label: Label, a: DrugRef, b: DrugRef) -> str:
        """The process or effect claim that states ``label`` for the query (A, B)."""
        sub = self.taxonomy.subtype(label.family, label.subtype)
        polarity = self._polarity(label)
        verb = "increases" if polarity == "increase" else "decreases"
        phrase = self._phrase(sub, polarity)
        if sub.kind == SYMMETRIC:
            return f"{a.name} {verb} the risk or severity of {phrase} when combined with {b.name}"
        perpetrator, victim = (a, b) if label.direction == A_TO_B else (b, a)
        return f"{perpetrator.name} {verb} the {phrase} of {victim.name}"

    def _validated(self, text: str) -> Label:
        label = Label.parse(text)
        self.taxonomy.validate_label(label)
        return label

    # -- chains ----------------------------------------------------------------------------------------------

    def _support(self, label: Label, a: DrugRef, b: DrugRef, links: dict[str, list[_Link]]) -> _Support:
        if label.direction == BIDIRECTIONAL or self.taxonomy.family(label.family).kind == "pd":
            return _target_support(a, b, links)
        mechanisms = [m for m in MECHANISMS if (m.family, m.modality) == (label.family, label.modality)]
        perpetrator, victim = (a, b) if label.direction == A_TO_B else (b, a)
        return _pk_support(mechanisms, perpetrator, victim, links)

    def explain(
        self, label_text: str, a: DrugRef, b: DrugRef, evidence: Sequence[Evidence]
    ) -> tuple[float, list[ChainStep]]:
        """The confidence and steps of a chain explaining ``label_text`` (query orientation) from
        ``evidence``."""
        label = self._validated(label_text)
        links = {d.drugbank_id: _links(evidence, d.drugbank_id) for d in (a, b)}
        support = self._support(label, a, b, links)
        analogues = [(e, query_label(e, a, b)) for e in evidence if e.kind == "similar_interaction"]
        agreeing = [e.id for e, lab in analogues if lab == label.slash()]
        steps = [*support.steps, (self._conclusion(label, a, b), agreeing[:_MAX_ANALOGUE_CITATIONS])]
        analogue = _ANALOGUE_WEIGHT * len(agreeing) / (len(analogues) + 1)
        confidence = 1.0 - (1.0 - support.mechanism) * (1.0 - analogue)
        return round(min(MAX_CONFIDENCE, max(self.config.min_confidence, confidence)), 2), steps

    def infer_label(
        self, a: DrugRef, b: DrugRef, evidence: Sequence[Evidence]
    ) -> tuple[str, float, list[ChainStep]]:
        """The rule-based label for the query (A, B), its confidence and its chain (see the module doc)."""
        links = {d.drugbank_id: _links(evidence, d.drugbank_id) for d in (a, b)}
        votes: Counter[str] = Counter()
        for item in evidence:
            label = query_label(item, a, b)
            if label is not None:
                votes[label] += 1
        candidates: list[str] = []
        for perpetrator, victim, direction in ((a, b, A_TO_B), (b, a, B_TO_A)):
            for mech in MECHANISMS:
                if _pk_support([mech], perpetrator, victim, links).steps:
                    candidates.append(f"{mech.family}/{mech.subtype}/{direction}/{mech.modality}")
        if candidates:  # max() keeps the first of equals: rule priority, then A as perpetrator
            label = max(candidates, key=lambda c: votes[c])
        elif votes:  # Counter order is first appearance, i.e. the retrieval's similarity rank
            label = votes.most_common(1)[0][0]
        else:
            label = self.config.majority_label
        confidence, steps = self.explain(label, a, b, evidence)
        return label, confidence, steps

    def write(
        self, a: DrugRef, b: DrugRef, evidence: Sequence[Evidence], gold_label: str | None = None
    ) -> str:
        """A completion in the prompts format: the gold chain when ``gold_label`` is given, else the inferred
        one."""
        if gold_label is None:
            label, confidence, steps = self.infer_label(a, b, evidence)
        else:
            label = gold_label
            confidence, steps = self.explain(gold_label, a, b, evidence)
        return render_completion(steps, label, confidence)


def infer_label(
    a: DrugRef,
    b: DrugRef,
    evidence: Sequence[Evidence],
    config: KnowledgeConfig | None = None,
    taxonomy: Taxonomy | None = None,
) -> tuple[str, float, list[ChainStep]]:
    """Rule-based (label, confidence, steps) for the query (A, B): see
    :meth:`KnowledgeTeacher.infer_label`."""
    return KnowledgeTeacher(config, taxonomy).infer_label(a, b, evidence)
