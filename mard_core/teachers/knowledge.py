"""A knowledge-grounded teacher: verified reasoning chains written from retrieved DrugBank fields, no LLM.

Given the ordered query (A, B) and its evidence (:class:`mard_core.retrieval.Evidence`), the teacher writes
steps in the claim grammar of :mod:`mard_core.prompts`, so the PRM verifier and the MFS can check every one:

* mechanism steps from protein records, e.g. "Voriconazole is an inhibitor of CYP3A4 [E2]" and
  "Axitinib is a substrate of CYP3A4 [E5]" for a perpetrator and a victim of one enzyme or transporter, or
  "A targets X [Ei]" / "B targets X [Ej]" for a target both act on (alike for an additive effect, in opposite
  ways for an antagonistic one);
* one conclusion claim naming the label's process or effect ("Voriconazole decreases the metabolism of
  Axitinib", "A increases the risk or severity of bleeding when combined with B"), citing the training
  interactions of similar drugs (``similar_interaction`` evidence) whose label, seen in the query
  orientation, is the same.

Which evidence explains which label is pharmacology (:mod:`mard_core.teachers.pharmacology` and its
``pharmacology.yaml``). With a gold label (training data, ``KnowledgeConfig.use_gold``) the chain explains the
gold label from the best-supported rule that allows it (only the conclusion when none does). Without one,
:meth:`KnowledgeTeacher.infer_label` takes the rules' candidates, lets the analogues' votes choose among them
(ties: the clinically stronger mechanism), else the most common analogue label, else the configured majority
label. The confidence combines the mechanism's support (its clinical priority and the perpetrator's recorded
strength) with the share of analogues that agree.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from mard_core.errors import InputError
from mard_core.prompts import DrugRef, render_completion
from mard_core.retrieval import Evidence
from mard_core.taxonomy import A_TO_B, SYMMETRIC, Label, Subtype, Taxonomy, load_taxonomy
from mard_core.teachers.config import MAX_CONFIDENCE, KnowledgeConfig
from mard_core.teachers.pharmacology import Candidate, Mechanism, Pharmacology, Proof, load_pharmacology

KNOWLEDGE_VERSION = "2"
"""Bump when the chains this module writes change, so stored knowledge shards are regenerated."""

ChainStep = tuple[str, list[str]]
"""One step: claim text and the evidence ids it cites (the input of ``render_completion``)."""

MECHANISMS: tuple[Mechanism, ...] = load_pharmacology().mechanisms()
"""The PK labels a perpetrator relation to a protein kind explains (what the MFS checks PK claims against)."""

_MAX_ANALOGUE_CITATIONS = 2
_ANALOGUE_WEIGHT = 0.8
_CLAIMS = {
    "inhibitor": "is an inhibitor of",
    "inducer": "is an inducer of",
    "substrate": "is a substrate of",
    "target": "targets",
}
_DEFINITION_PHRASE = re.compile(
    r"\b(?:increases|decreases|raises|lowers) the ([a-z][a-z \-]*?) (?:of|to) the victim\b", re.IGNORECASE
)
_PARENTHESES = re.compile(r" ?\([^()]*\)")
_LITERAL = re.compile(r"[a-z0-9][a-z0-9 \-]*")


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
        self.pharmacology: Pharmacology = load_pharmacology(taxonomy=self.taxonomy)
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

    def _steps(self, proof: Proof, a: DrugRef, b: DrugRef) -> list[ChainStep]:
        names = {a.drugbank_id: a.name, b.drugbank_id: b.name}
        return [
            (f"{names[link.item.drug_id]} {_CLAIMS[relation]} {link.ref}", [link.item.id])
            for relation, link in proof
        ]

    def _explain(
        self,
        label: Label,
        a: DrugRef,
        b: DrugRef,
        evidence: Sequence[Evidence],
        candidates: Sequence[Candidate],
    ) -> tuple[float, list[ChainStep]]:
        slash = label.slash()
        allowed = [c for c in candidates if c.label == slash]
        if allowed:  # the best-supported rule for the label, one with protein records first
            best = max(allowed, key=lambda c: (bool(c.proof), c.support))
            support, proof = best.support, best.proof
        elif self.taxonomy.family(label.family).kind == "pd":
            proof = self.pharmacology.target_proof(a.drugbank_id, b.drugbank_id, evidence, label.family)
            support = self.pharmacology.spec.shared_target_support if proof else 0.0
        else:
            support, proof = 0.0, ()
        analogues = [(e, query_label(e, a, b)) for e in evidence if e.kind == "similar_interaction"]
        agreeing = [e.id for e, lab in analogues if lab == slash]
        steps = [
            *self._steps(proof, a, b),
            (self._conclusion(label, a, b), agreeing[:_MAX_ANALOGUE_CITATIONS]),
        ]
        analogue = _ANALOGUE_WEIGHT * len(agreeing) / (len(analogues) + 1)
        confidence = 1.0 - (1.0 - support) * (1.0 - analogue)
        return round(min(MAX_CONFIDENCE, max(self.config.min_confidence, confidence)), 2), steps

    def _candidates(self, a: DrugRef, b: DrugRef, evidence: Sequence[Evidence]) -> list[Candidate]:
        return self.pharmacology.candidates(a.drugbank_id, b.drugbank_id, evidence)

    def explain(
        self, label_text: str, a: DrugRef, b: DrugRef, evidence: Sequence[Evidence]
    ) -> tuple[float, list[ChainStep]]:
        """The confidence and steps of a chain explaining ``label_text`` (query orientation) from
        ``evidence``."""
        label = self._validated(label_text)
        return self._explain(label, a, b, evidence, self._candidates(a, b, evidence))

    def infer_label(
        self, a: DrugRef, b: DrugRef, evidence: Sequence[Evidence]
    ) -> tuple[str, float, list[ChainStep]]:
        """The rule-based label for the query (A, B), its confidence and its chain (see the module doc)."""
        votes: Counter[str] = Counter()
        for item in evidence:
            voted = query_label(item, a, b)
            if voted is not None:
                votes[voted] += 1
        candidates = self._candidates(a, b, evidence)
        if candidates:  # max() keeps the first of equals: the rules' order (support, protein, perpetrator)
            label = max(candidates, key=lambda c: votes[c.label]).label
        elif votes:  # Counter order is first appearance, i.e. the retrieval's similarity rank
            label = votes.most_common(1)[0][0]
        else:
            label = self.config.majority_label
        confidence, steps = self._explain(self._validated(label), a, b, evidence, candidates)
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
