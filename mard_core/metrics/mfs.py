"""Mechanism Fidelity Score (MFS): how much of a reasoning chain DrugBank confirms.

Each step of a chain (a completion in the :mod:`mard_core.prompts` format) is one claim unit. The step
verifier :func:`mard_core.verifier.verify_step` labels it correct, incorrect or unverifiable (protein
claims against the ``drug_proteins`` fields, process/effect claims against the gold label, citations against
the prompt's evidence ids). When the evidence items themselves are known, MFS also checks what each citation
says (citation fidelity): a protein claim may only cite protein records of the claiming drug naming the same
protein, a process or effect claim only training interactions of similar drugs (``similar_interaction``) whose
label, seen in the query orientation, has the gold family and direction. A verified step with any other
citation counts as incorrect.

Per chain: MFS = confirmed / checkable steps (None without checkable steps); unverifiable steps are counted
separately. Aggregate: mean MFS over chains with a checkable step, the share of chains with one, and the mean
unverifiable share.

:func:`validate_mfs` checks the score itself: gold chains (from the knowledge teacher) should score near 1 and
programmatically corrupted chains (:func:`chain_corruptor`: wrong protein, wrong direction, swapped
citation) clearly lower; it reports both means, the means per corruption and the gold-vs-corrupted AUROC.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from sklearn.metrics import roc_auc_score

from mard_core.chains import Completion
from mard_core.errors import InputError
from mard_core.negatives import CITATION_SWAPPED, WRONG_PROTEIN, hard_negatives
from mard_core.prompts import (
    PROTEIN_RELATIONS,
    Claim,
    DrugRef,
    extract_claims,
    parse_completion,
    render_prompt,
)
from mard_core.retrieval import Evidence
from mard_core.taxonomy import Label, Taxonomy, load_taxonomy
from mard_core.teachers.knowledge import query_label
from mard_core.verifier import CORRECT, INCORRECT, UNVERIFIABLE, Facts, verify_step

WRONG_DIRECTION = "wrong_direction"
CORRUPTIONS = (WRONG_PROTEIN, WRONG_DIRECTION, CITATION_SWAPPED)


@dataclass(frozen=True)
class ChainScore:
    """Step verdict counts of one chain."""

    n_steps: int
    n_confirmed: int
    n_incorrect: int
    n_unverifiable: int

    @property
    def n_checkable(self) -> int:
        return self.n_confirmed + self.n_incorrect

    @property
    def mfs(self) -> float | None:
        """Confirmed share of the checkable steps; None when no step is checkable."""
        return self.n_confirmed / self.n_checkable if self.n_checkable else None

    @property
    def unverifiable_share(self) -> float | None:
        return self.n_unverifiable / self.n_steps if self.n_steps else None


@dataclass(frozen=True)
class Chain:
    """A reasoning chain for the ordered query (A, B): its completion text, gold label (query orientation) and
    the evidence its prompt listed."""

    a: DrugRef
    b: DrugRef
    gold: str
    text: str
    evidence: tuple[Evidence, ...]


Corruptor = Callable[[Chain], list[tuple[str, Chain]]]
"""``corruptor(chain)`` -> (corruption kind, corrupted chain) for each corruption that applies."""


def _same_protein(claim: Claim, drug_id: str, item: Evidence, facts: Facts) -> bool:
    """Whether a protein evidence item of ``drug_id`` names the protein of ``claim`` (same DrugBank rows)."""
    if item.kind != "protein" or item.drug_id != drug_id:
        return False
    claimed = set(facts.relations(drug_id, claim.obj))
    return any(claimed & set(facts.relations(drug_id, ref))
               for ref in (item.gene_name, item.uniprot_id, item.protein_name) if ref)


def _supports(claim: Claim, ids: Mapping[str, str], item: Evidence, a: DrugRef, b: DrugRef, gold: Label,
              facts: Facts) -> bool:
    if claim.relation in PROTEIN_RELATIONS:
        return _same_protein(claim, ids[claim.drug], item, facts)
    oriented = query_label(item, a, b)
    if oriented is None:
        return False
    label = Label.parse(oriented)
    return (label.family, label.direction) == (gold.family, gold.direction)


def score_chain(text: str, a: DrugRef, b: DrugRef, gold_label: str, facts: Facts,
                evidence: Sequence[Evidence] | None, taxonomy: Taxonomy | None = None) -> ChainScore:
    """Verdict counts of the steps of ``text`` for the query (A, B) (see the module doc).

    ``evidence``: the prompt's evidence items (None: unknown, so neither citation ids nor what they say
    are checked).
    """
    tax = taxonomy or load_taxonomy()
    gold = Label.parse(gold_label)
    ids = {"A": a.drugbank_id, "B": b.drugbank_id}
    by_id = {e.id: e for e in evidence} if evidence is not None else None
    parsed = parse_completion(text, facts.drug_names(a.drugbank_id), facts.drug_names(b.drugbank_id))
    counts = {CORRECT: 0, INCORRECT: 0, UNVERIFIABLE: 0}
    for step in parsed.steps:
        verdict = verify_step(step, a.drugbank_id, b.drugbank_id, gold_label, facts,
                              list(by_id) if by_id is not None else None, tax).label
        if verdict == CORRECT and by_id is not None and not all(
                _supports(claim, ids, by_id[c], a, b, gold, facts) for claim in step.claims for c in step.citations):
            verdict = INCORRECT
        counts[verdict] += 1
    return ChainScore(len(parsed.steps), counts[CORRECT], counts[INCORRECT], counts[UNVERIFIABLE])


def aggregate_mfs(scores: Sequence[ChainScore]) -> dict[str, float | int | None]:
    """``mfs_mean`` over chains with a checkable step, ``mfs_checkable_share`` (share of chains with one),
    ``mfs_unverifiable_mean`` (mean unverifiable share over chains with steps) and ``mfs_n_chains``."""
    values = [s.mfs for s in scores if s.mfs is not None]
    unverifiable = [s.unverifiable_share for s in scores if s.unverifiable_share is not None]
    return {
        "mfs_mean": float(np.mean(values)) if values else None,
        "mfs_checkable_share": len(values) / len(scores) if scores else None,
        "mfs_unverifiable_mean": float(np.mean(unverifiable)) if unverifiable else None,
        "mfs_n_chains": len(scores),
    }


# --- corruptions and validation -------------------------------------------------------------------------------


def _swap_names(text: str, a: str, b: str) -> str:
    """``text`` with the names ``a`` and ``b`` exchanged (whole words, case-insensitive)."""
    names = sorted((a, b), key=len, reverse=True)  # the longer first, should one name contain the other
    pattern = re.compile(rf"\b({'|'.join(map(re.escape, names))})\b", re.IGNORECASE)
    return pattern.sub(lambda m: b if m.group(1).casefold() == a.casefold() else a, text)


def _as_completion(chain: Chain, facts: Facts) -> Completion:
    parsed = parse_completion(chain.text, facts.drug_names(chain.a.drugbank_id), facts.drug_names(chain.b.drugbank_id))
    if parsed.answer is None:
        raise InputError(f"chain ({chain.a.drugbank_id}, {chain.b.drugbank_id}): no answer line to corrupt")
    return Completion(tuple(s.text for s in parsed.steps), parsed.answer.label, parsed.answer.confidence)


def _wrong_direction(chain: Chain, source: Completion, facts: Facts) -> Chain | None:
    """The chain with perpetrator and victim exchanged in its process/effect steps (directional golds only)."""
    if Label.parse(chain.gold).direction == "Bidirectional":
        return None
    a_names, b_names = facts.drug_names(chain.a.drugbank_id), facts.drug_names(chain.b.drugbank_id)
    steps = [_swap_names(text, chain.a.name, chain.b.name)
             if any(c.relation not in PROTEIN_RELATIONS for c in extract_claims(text, a_names, b_names)) else text
             for text in source.steps]
    if steps == list(source.steps):
        return None
    return replace(chain, text=replace(source, steps=tuple(steps)).render())


def chain_corruptor(facts: Facts, taxonomy: Taxonomy | None = None) -> Corruptor:
    """Corruptions of a chain: ``wrong_protein`` (a protein claim names a protein neither drug is linked to),
    ``wrong_direction`` (perpetrator and victim exchanged in the conclusion) and ``citation_swapped`` (one
    citation replaced by another evidence id of the prompt). The first and last reuse
    :func:`mard_core.negatives.hard_negatives`."""
    tax = taxonomy or load_taxonomy()
    proteins = sorted({fact.name for per_drug in facts.proteins.values()
                       for rows in per_drug.values() for fact in rows})
    siblings = {fam.name: [s.name for s in fam.subtypes] for fam in tax.families}

    def corrupt(chain: Chain) -> list[tuple[str, Chain]]:
        source = _as_completion(chain, facts)
        unlinked = [p for p in proteins if not facts.relations(chain.a.drugbank_id, p)
                    and not facts.relations(chain.b.drugbank_id, p)]
        prompt = render_prompt(chain.a, chain.b, chain.evidence)
        out = [(n.kind, replace(chain, text=n.completion.render()))
               for n in hard_negatives(prompt, source, siblings, unlinked, kinds=(WRONG_PROTEIN, CITATION_SWAPPED))]
        flipped = _wrong_direction(chain, source, facts)
        if flipped is not None:
            out.append((WRONG_DIRECTION, flipped))
        return out

    return corrupt


def validate_mfs(facts: Facts, gold_chains: Sequence[Chain], corruptor: Corruptor,
                 taxonomy: Taxonomy | None = None) -> dict[str, float | int | dict[str, float] | None]:
    """Score gold chains and their corruptions; report means, means per corruption kind and the AUROC of MFS
    separating gold from corrupted chains (chains without a checkable step are left out)."""
    if not gold_chains:
        raise InputError("validate_mfs: no gold chains")
    tax = taxonomy or load_taxonomy()

    def mfs(chain: Chain) -> float | None:
        return score_chain(chain.text, chain.a, chain.b, chain.gold, facts, chain.evidence, tax).mfs

    gold = [s for s in map(mfs, gold_chains) if s is not None]
    by_kind: dict[str, list[float]] = {}
    for chain in gold_chains:
        for kind, bad in corruptor(chain):
            score = mfs(bad)
            if score is not None:
                by_kind.setdefault(kind, []).append(score)
    corrupted = [s for scores in by_kind.values() for s in scores]
    auroc = (float(roc_auc_score([1] * len(gold) + [0] * len(corrupted), gold + corrupted))
             if gold and corrupted else None)
    return {
        "n_gold": len(gold),
        "n_corrupted": len(corrupted),
        "gold_mean": float(np.mean(gold)) if gold else None,
        "corrupted_mean": float(np.mean(corrupted)) if corrupted else None,
        "corrupted_mean_by_kind": {k: float(np.mean(v)) for k, v in sorted(by_kind.items())},
        "auroc": auroc,
    }
