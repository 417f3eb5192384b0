"""Validation of the Mechanism Fidelity Score (:mod:`mard_core.metrics.mfs`) on chains whose worth is known:
gold chains should score near 1, and adversarial chains, each built to look plausible while confirming nothing
about its answer, near 0.

Gold chains (:func:`gold_chain`): the knowledge teacher's chain for the gold label, keeping the steps that
cite evidence (an uncited step is unconfirmed by the rule, so it has no place in a gold chain); a pair whose
evidence supports nothing of its gold label has no gold chain.

Adversarial kinds (:data:`ADVERSARIES`); each writes a whole chain of its kind from a gold chain, or nothing
where it does not apply:

* ``copy_evidence``: up to 3 retrieved protein facts restated in the claim grammar, each citing its own
  record, with a fixed wrong answer (the first of :data:`WRONG_ANSWERS` that is not the gold label);
* ``generic_effect``: "A increases the risk or severity of adverse effects when combined with B", citing what
  the gold chain cites, with the gold answer (not for a gold label of that subtype, where it is the right
  claim);
* ``other_protein``: for each drug, a true fact about one of its proteins that the other drug has no record of
  (not the mechanism's), citing its record, with the gold answer;
* ``hallucinated_protein``: the perpetrator inhibiting a protein neither drug is linked to and the victim a
  substrate of it (both targeting it for a Bidirectional gold), with the gold answer;
* ``unrelated_citation``: the gold chain with every citation replaced by a category, ATC or free-text line;
* ``uncited``: the gold chain without its citations;
* ``wrong_direction``: the gold chain with the two drugs' names exchanged (directional gold labels only).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from sklearn.metrics import roc_auc_score

from mard_core.errors import InputError
from mard_core.metrics.mfs import ChainVerifier
from mard_core.prompts import PROTEIN_RELATIONS, DrugRef, parse_completion, render_completion
from mard_core.retrieval import Evidence
from mard_core.taxonomy import A_TO_B, BIDIRECTIONAL, Label, Taxonomy
from mard_core.teachers.knowledge import KnowledgeTeacher
from mard_core.verifier import Facts

COPY_EVIDENCE, GENERIC_EFFECT, OTHER_PROTEIN = "copy_evidence", "generic_effect", "other_protein"
HALLUCINATED_PROTEIN, UNRELATED_CITATION = "hallucinated_protein", "unrelated_citation"
UNCITED, WRONG_DIRECTION = "uncited", "wrong_direction"
WRONG_ANSWERS = (
    "PD Antagonistic/Therapeutic efficacy/A to B/Decrease",
    "PD Additive/Adverse effects/Bidirectional/Increase",
)
"""The fixed wrong answers of ``copy_evidence`` chains: the first that differs from the gold label."""
_GENERIC = ("PD Additive", "Adverse effects")
_CONFIDENCE = 0.9
_CITATION = re.compile(r"\s*\[E\d+\]")
_PROTEIN_REF = re.compile(r"[A-Za-z0-9][\w\-/ ]*")  # what the claim grammar reads as a protein
_UNRELATED_KINDS = ("category", "atc", "text")
_PHRASES = {
    "inhibitor": "is an inhibitor of",
    "inducer": "is an inducer of",
    "substrate": "is a substrate of",
    "target": "targets",
}

ChainStep = tuple[str, list[str]]


@dataclass(frozen=True)
class Chain:
    """A reasoning chain for the ordered query (A, B): its completion text, the gold label (query orientation)
    and the evidence its prompt listed."""

    a: DrugRef
    b: DrugRef
    gold: str
    text: str
    evidence: tuple[Evidence, ...]


Adversary = Callable[[Chain, Facts], Chain | None]
"""``adversary(gold_chain, facts)`` -> the adversarial chain of one kind, or None where the kind does not
apply."""


def gold_chain(
    a: DrugRef, b: DrugRef, gold: str, evidence: Sequence[Evidence], teacher: KnowledgeTeacher
) -> Chain | None:
    """The knowledge teacher's chain for ``gold`` with its uncited steps left out (None when none is left)."""
    confidence, steps = teacher.explain(gold, a, b, evidence)
    cited = [s for s in steps if s[1]]
    return Chain(a, b, gold, render_completion(cited, gold, confidence), tuple(evidence)) if cited else None


def _steps(chain: Chain) -> list[ChainStep]:
    """The chain's steps as (claim text without citations, citations)."""
    return [(_CITATION.sub("", s.text).rstrip(". "), s.citations) for s in parse_completion(chain.text).steps]


def _written(chain: Chain, steps: Sequence[ChainStep], label: str | None = None) -> Chain:
    return replace(chain, text=render_completion(steps, label or chain.gold, _CONFIDENCE))


def _protein_step(item: Evidence, name: str) -> ChainStep | None:
    """A protein record restated in the claim grammar, citing itself (None where the grammar cannot say
    it)."""
    ref = next(
        (r for r in (item.gene_name, item.uniprot_id, item.protein_name) if r and _PROTEIN_REF.fullmatch(r)),
        None,
    )
    actions = {a.lower() for a in item.actions}
    relation = next(
        (r for r in ("inhibitor", "inducer", "substrate") if actions & set(PROTEIN_RELATIONS[r])),
        "target" if item.protein_kind == "target" else None,
    )
    if ref is None or relation is None:
        return None
    return f"{name} {_PHRASES[relation]} {ref}", [item.id]


def _copy_evidence(chain: Chain, facts: Facts) -> Chain | None:
    names = {chain.a.drugbank_id: chain.a.name, chain.b.drugbank_id: chain.b.name}
    steps = [s for e in chain.evidence if e.kind == "protein" and (s := _protein_step(e, names[e.drug_id]))][
        :3
    ]
    wrong = next(w for w in WRONG_ANSWERS if w != chain.gold)
    return _written(chain, steps, wrong) if steps else None


def _generic_effect(chain: Chain, facts: Facts) -> Chain | None:
    gold = Label.parse(chain.gold)
    if (gold.family, gold.subtype) == _GENERIC:
        return None
    cites = list(dict.fromkeys(c for _, cs in _steps(chain) for c in cs))
    claim = (
        f"{chain.a.name} increases the risk or severity of adverse effects when combined with {chain.b.name}"
    )
    return _written(chain, [(claim, cites)])


def _other_protein(chain: Chain, facts: Facts) -> Chain | None:
    steps = []
    for drug, other in ((chain.a, chain.b), (chain.b, chain.a)):
        unshared = (
            e
            for e in chain.evidence
            if e.kind == "protein"
            and e.drug_id == drug.drugbank_id
            and not any(
                facts.relations(other.drugbank_id, r)
                for r in (e.gene_name, e.uniprot_id, e.protein_name)
                if r
            )
        )
        step = next((s for e in unshared if (s := _protein_step(e, drug.name))), None)
        steps += [step] if step else []
    return _written(chain, steps) if steps else None


def _hallucinated_protein(chain: Chain, facts: Facts) -> Chain | None:
    a, b = chain.a, chain.b
    protein = next(
        (
            p
            for p in sorted(
                {f.name for per_drug in facts.proteins.values() for rows in per_drug.values() for f in rows}
            )
            if _PROTEIN_REF.fullmatch(p)
            and not facts.relations(a.drugbank_id, p)
            and not facts.relations(b.drugbank_id, p)
        ),
        None,
    )
    if protein is None:
        return None
    first = {
        d.drugbank_id: next(
            (e.id for e in chain.evidence if e.drug_id == d.drugbank_id), chain.evidence[0].id
        )
        for d in (a, b)
    }
    gold = Label.parse(chain.gold)
    if gold.direction == BIDIRECTIONAL:
        claims = [(a, "target"), (b, "target")]
    else:
        perp, victim = (a, b) if gold.direction == A_TO_B else (b, a)
        claims = [(perp, "inhibitor"), (victim, "substrate")]
    return _written(chain, [(f"{d.name} {_PHRASES[r]} {protein}", [first[d.drugbank_id]]) for d, r in claims])


def _unrelated_citation(chain: Chain, facts: Facts) -> Chain | None:
    unrelated = [e.id for e in chain.evidence if e.kind in _UNRELATED_KINDS]
    if not unrelated:
        return None
    return _written(
        chain, [(text, [unrelated[i % len(unrelated)]]) for i, (text, _) in enumerate(_steps(chain))]
    )


def _uncited(chain: Chain, facts: Facts) -> Chain | None:
    return _written(chain, [(text, []) for text, _ in _steps(chain)])


def _swap_names(text: str, a: str, b: str) -> str:
    """``text`` with the names ``a`` and ``b`` exchanged (whole words, case-insensitive)."""
    names = sorted((a, b), key=len, reverse=True)  # the longer first, should one name contain the other
    pattern = re.compile(rf"(?<!\w)({'|'.join(map(re.escape, names))})(?!\w)", re.IGNORECASE)
    return pattern.sub(lambda m: b if m.group(1).casefold() == a.casefold() else a, text)


def _wrong_direction(chain: Chain, facts: Facts) -> Chain | None:
    if Label.parse(chain.gold).direction == BIDIRECTIONAL:
        return None
    return replace(chain, text=_swap_names(chain.text, chain.a.name, chain.b.name))


ADVERSARIES: dict[str, Adversary] = {
    COPY_EVIDENCE: _copy_evidence,
    GENERIC_EFFECT: _generic_effect,
    OTHER_PROTEIN: _other_protein,
    HALLUCINATED_PROTEIN: _hallucinated_protein,
    UNRELATED_CITATION: _unrelated_citation,
    UNCITED: _uncited,
    WRONG_DIRECTION: _wrong_direction,
}
"""Adversarial chain writers by kind (see the module doc)."""


def adversarial_chains(chain: Chain, facts: Facts) -> list[tuple[str, Chain]]:
    """(kind, adversarial chain) for every kind of :data:`ADVERSARIES` that applies to ``chain``."""
    return [(kind, bad) for kind, write in ADVERSARIES.items() if (bad := write(chain, facts)) is not None]


def validate_mfs(
    gold_chains: Sequence[Chain], facts: Facts, taxonomy: Taxonomy | None = None
) -> dict[str, int | float | dict[str, float] | dict[str, int] | None]:
    """MFS of gold chains and of their adversarial chains: ``n_gold``, ``gold_mean``,
    ``adversarial_mean_by_kind``, ``adversarial_n_by_kind`` and the AUROC of MFS separating gold from
    adversarial chains."""
    if not gold_chains:
        raise InputError("validate_mfs: no gold chains")
    verifier = ChainVerifier(facts, taxonomy)

    def mfs(chain: Chain) -> float:
        return verifier.score(chain.text, chain.a, chain.b, chain.evidence).mfs

    gold = [mfs(c) for c in gold_chains]
    by_kind: dict[str, list[float]] = {}
    for chain in gold_chains:
        for kind, bad in adversarial_chains(chain, facts):
            by_kind.setdefault(kind, []).append(mfs(bad))
    adversarial = [s for scores in by_kind.values() for s in scores]
    auroc = (
        float(roc_auc_score([1] * len(gold) + [0] * len(adversarial), gold + adversarial))
        if adversarial
        else None
    )
    return {
        "n_gold": len(gold),
        "gold_mean": float(np.mean(gold)),
        "adversarial_mean_by_kind": {k: float(np.mean(v)) for k, v in by_kind.items()},
        "adversarial_n_by_kind": {k: len(v) for k, v in by_kind.items()},
        "auroc": auroc,
    }
