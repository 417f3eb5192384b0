"""Mechanism Fidelity Score (MFS): the share of a reasoning chain's steps that DrugBank confirms as reasons
for the chain's own answer.

Each step of a chain (a completion in the :mod:`mard_core.prompts` format) is one claim unit, judged against
the chain's ANSWER line (not the gold label: whether the answer is right is reported separately, see
:func:`aggregate_mfs`), DrugBank's ``drug_proteins`` rows and the evidence its prompt listed. A step is
**confirmed** only when all of these hold:

* a claim is read from it by the claim grammar, and it names drugs of the query only;
* it is true: a protein claim is recorded in the claiming drug's DrugBank rows;
* it bears on the answer's mechanism:

  - PK answer (directional): the perpetrator's relation that explains the answer's family and modality
    (:data:`~mard_core.teachers.knowledge.MECHANISMS`, protein kind included) to a protein the victim is a
    substrate of, or the victim's substrate relation to a protein the perpetrator so acts on;
  - PD answer: a target both drugs act on, in opposite ways (one activates it, the other blocks it) for PD
    Antagonistic, alike for PD Additive;
  - any answer: a process or effect claim naming the answer's subtype with its modality (and, for a
    directional subtype, the perpetrator as its subject);

* it cites evidence, and every item it cites states it: a protein claim only protein records of the claiming
  drug naming the same protein with the claimed relation; a process or effect claim only training interactions
  of similar drugs (``similar_interaction``) whose label, in the query orientation, is the answer.

Every other step counts against the chain (it stays in the denominator), with a verdict that says why:
``incorrect`` when DrugBank, the evidence ids or the answer contradict it (a relation DrugBank does not
record, a citation of an id the prompt did not list, the opposite change or the opposite direction of the
answer's mechanism); ``unconfirmed`` when it may be true but bears on nothing in the answer, cites nothing,
cites a line that does not state it, states no increase or decrease, or names a drug outside the query;
``unverifiable`` when no claim is read from it.

Per chain: MFS = confirmed steps / steps. A chain without steps, or whose answer is missing or not a label of
the taxonomy (nothing to bear on), scores 0. :mod:`mard_core.metrics.mfs_validation` checks the score on gold
and adversarial chains.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mard_core.errors import InputError, MardError
from mard_core.metrics.stats import N_RESAMPLES, bootstrap_ci, ratio_ci
from mard_core.prompts import PROTEIN_RELATIONS, Claim, DrugRef, Parsed, Step, parse_answer, parse_completion
from mard_core.retrieval import Evidence, NameMatcher
from mard_core.taxonomy import (
    A_TO_B,
    DIRECTIONAL,
    SYMMETRIC,
    Label,
    Subtype,
    Taxonomy,
    load_taxonomy,
)
from mard_core.teachers.knowledge import MECHANISMS, Mechanism, query_label
from mard_core.verifier import Facts

CONFIRMED, INCORRECT, UNCONFIRMED, UNVERIFIABLE = "confirmed", "incorrect", "unconfirmed", "unverifiable"

# "A increases the risk or severity of bleeding when combined with B" -> "bleeding"
_EFFECT_PHRASE = re.compile(
    r"(?:the )?(?:risk or severity of |risk of )?(.+?)(?: when (?:combined|used) with .+)?"
)
_PD_ANTAGONISTIC = "PD Antagonistic"
# Actions on a target that activate it and that block it: PD Antagonistic answers need a shared target the two
# drugs act on in opposite ways, PD Additive answers one they act on alike.
_ACTIVATING = frozenset(
    {
        "agonist",
        "partial agonist",
        "positive allosteric modulator",
        "positive modulator",
        "potentiator",
        "activator",
        "stimulator",
        "inducer",
    }
)
_BLOCKING = frozenset(
    {
        "antagonist",
        "inverse agonist",
        "inhibitor",
        "blocker",
        "negative allosteric modulator",
        "negative modulator",
        "suppressor",
    }
)
_CHANGE = {"increase": "an increase", "decrease": "a decrease"}
Verdict = tuple[str, str]
"""(verdict, reason)."""


@dataclass(frozen=True)
class ClaimVerdict:
    """The verdict on one step (one claim unit) and why."""

    step: int
    text: str
    verdict: str  # confirmed | incorrect | unconfirmed | unverifiable
    reason: str

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


@dataclass(frozen=True)
class ChainScore:
    """The verdicts on a chain's steps against its answer (``answer``: None when missing or invalid, and
    ``answer_error`` says why)."""

    answer: str | None
    claims: tuple[ClaimVerdict, ...]
    answer_error: str | None = None

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.claims)

    @property
    def n_steps(self) -> int:
        return len(self.claims)

    @property
    def n_confirmed(self) -> int:
        return self.count(CONFIRMED)

    @property
    def n_unverifiable(self) -> int:
        return self.count(UNVERIFIABLE)

    @property
    def n_checkable(self) -> int:
        """Steps with a claim read from them."""
        return self.n_steps - self.n_unverifiable

    @property
    def mfs(self) -> float:
        """Confirmed share of all steps; 0 without steps (and without a valid answer no step is confirmed)."""
        return self.n_confirmed / self.n_steps if self.n_steps else 0.0

    @property
    def unverifiable_share(self) -> float | None:
        return self.n_unverifiable / self.n_steps if self.n_steps else None


@dataclass(frozen=True)
class _Query:
    """What one chain is judged against: the drugs ("A"/"B" -> id, primary name), its answer and the
    evidence."""

    ids: Mapping[str, str]
    names: Mapping[str, str]
    refs: tuple[DrugRef, DrugRef]
    label: Label
    evidence: Mapping[str, Evidence]
    own: frozenset[int]  # name-matcher indices of the query drugs

    def perpetrator(self) -> str:
        """ "A" or "B": who acts in the (directional) answer."""
        return "A" if self.label.direction == A_TO_B else "B"


def _opposed(x: frozenset[str], y: frozenset[str]) -> bool:
    """Whether two drugs' actions on one target oppose each other (one activates, the other blocks)."""
    return bool((x & _ACTIVATING and y & _BLOCKING) or (x & _BLOCKING and y & _ACTIVATING))


def _other(who: str) -> str:
    return "B" if who == "A" else "A"


def _mechanisms(label: Label) -> list[Mechanism]:
    """The perpetrator relations that explain a (PK) label."""
    return [m for m in MECHANISMS if (m.family, m.modality) == (label.family, label.modality)]


def _states_protein(claim: Claim, drug_id: str, item: Evidence, facts: Facts) -> bool:
    """Whether a protein record of ``drug_id`` names the protein of ``claim`` (same DrugBank rows) with the
    claimed relation."""
    if item.kind != "protein" or item.drug_id != drug_id:
        return False
    if claim.relation == "target":
        stated = item.protein_kind == "target"
    else:
        stated = bool({a.lower() for a in item.actions} & set(PROTEIN_RELATIONS[claim.relation]))
    claimed = set(facts.relations(drug_id, claim.obj))
    return stated and any(
        claimed & set(facts.relations(drug_id, ref))
        for ref in (item.gene_name, item.uniprot_id, item.protein_name)
        if ref
    )


class ChainVerifier:
    """Scores chains against DrugBank ``facts``; build one per evaluation (it indexes every drug name
    once)."""

    def __init__(self, facts: Facts, taxonomy: Taxonomy | None = None) -> None:
        self.facts = facts
        self.taxonomy = taxonomy or load_taxonomy()
        self._drug_ids = list(facts.names)
        self._position = {d: i for i, d in enumerate(self._drug_ids)}
        self._matcher = NameMatcher(list(facts.names.values()))

    def score(self, text: str, a: DrugRef, b: DrugRef, evidence: Sequence[Evidence]) -> ChainScore:
        """The verdicts on every step of ``text`` for the ordered query (A, B) whose prompt listed
        ``evidence``."""
        names = {"A": self.facts.drug_names(a.drugbank_id), "B": self.facts.drug_names(b.drugbank_id)}
        parsed = parse_completion(text, names["A"], names["B"])
        label, error = self._answer(text, parsed)
        if label is None:
            nothing = "the chain has no valid answer to bear on"
            return ChainScore(
                None, tuple(ClaimVerdict(s.index, s.text, UNCONFIRMED, nothing) for s in parsed.steps), error
            )
        own = {self._position[a.drugbank_id], self._position[b.drugbank_id]}.union(
            *(self._matcher.find(n) for n in (*names["A"], *names["B"]))
        )
        query = _Query(
            {"A": a.drugbank_id, "B": b.drugbank_id},
            {k: v[0] for k, v in names.items()},
            (a, b),
            label,
            {e.id: e for e in evidence},
            frozenset(own),
        )
        claims = tuple(ClaimVerdict(s.index, s.text, *self._step(s, query)) for s in parsed.steps)
        return ChainScore(label.slash(), claims)

    def _answer(self, text: str, parsed: Parsed) -> tuple[Label | None, str | None]:
        """The chain's answer as a taxonomy label, or None and what is wrong with it."""
        if parsed.answer is None:
            line = next(
                (x.strip() for x in text.splitlines() if x.strip().upper().startswith("ANSWER")), None
            )
            return None, parse_answer(line)[1] if line is not None else "no ANSWER line"
        try:
            return self.taxonomy.validate_label(Label.parse(parsed.answer.label)), None
        except MardError as exc:
            return None, f"answer is not a label of the taxonomy: {exc}"

    def _outsiders(self, text: str, query: _Query) -> str | None:
        """The drugs outside the query that ``text`` names, for a reason; None when it names none."""
        found = sorted(self._matcher.find(text) - query.own)
        if not found:
            return None
        return ", ".join(
            f"{self.facts.drug_names(self._drug_ids[i])[0]} ({self._drug_ids[i]})" for i in found
        )

    def _step(self, step: Step, query: _Query) -> Verdict:
        missing = [c for c in step.citations if c not in query.evidence]
        if missing:
            return INCORRECT, f"cites {', '.join(missing)}, not among the evidence"
        if not step.claims:
            outsiders = self._outsiders(step.text, query)
            if outsiders:
                return UNCONFIRMED, f"names {outsiders}, not a drug of the query"
            return UNVERIFIABLE, "no claim of the claim grammar"
        claim = step.claims[0]  # the grammar reads one claim per step
        protein = claim.relation in PROTEIN_RELATIONS
        failure = self._protein_failure(claim, query) if protein else self._process_failure(claim, query)
        if failure is not None:
            return failure
        if not step.citations:
            return UNCONFIRMED, "bears on the answer but cites no evidence"
        label = query.label.slash()
        wrong = [
            c
            for c in step.citations
            if not (
                _states_protein(claim, query.ids[claim.drug], query.evidence[c], self.facts)
                if protein
                else query_label(query.evidence[c], *query.refs) == label
            )
        ]
        if wrong:
            return UNCONFIRMED, f"bears on the answer but {', '.join(wrong)} does not state it"
        return CONFIRMED, f"true, bears on the answer's mechanism, stated by {', '.join(step.citations)}"

    # -- protein claims --------------------------------------------------------------------------------------

    def _protein_failure(self, claim: Claim, query: _Query) -> Verdict | None:
        name = query.names[claim.drug]
        if not self.facts.records(query.ids[claim.drug], claim.relation, claim.obj):
            return INCORRECT, f"DrugBank does not record {name} as {claim.relation} of {claim.obj}"
        if not self._protein_bears(claim, query):
            return UNCONFIRMED, (
                f"{name} as {claim.relation} of {claim.obj} bears on nothing in the answer "
                f"{query.label} ({self._mechanism(query)})"
            )
        return None

    def _pd(self, label: Label) -> bool:
        return self.taxonomy.family(label.family).kind == "pd"

    def _protein_bears(self, claim: Claim, query: _Query) -> bool:
        label, facts, obj = query.label, self.facts, claim.obj
        if self._pd(label):
            targets = [
                [r.actions for r in facts.relations(query.ids[who], obj) if r.kind == "target"]
                for who in ("A", "B")
            ]
            opposed = any(_opposed(x, y) for x in targets[0] for y in targets[1])
            return all(targets) and opposed == (label.family == _PD_ANTAGONISTIC)
        perp = query.perpetrator()
        p, v = query.ids[perp], query.ids[_other(perp)]
        return any(
            facts.records(p, m.relation, obj, m.protein_kinds)
            and facts.records(v, "substrate", obj, m.protein_kinds)
            and (claim.drug, claim.relation) in ((perp, m.relation), (_other(perp), "substrate"))
            for m in _mechanisms(label)
        )

    def _mechanism(self, query: _Query) -> str:
        """What a protein claim must state to bear on the answer, for a reason."""
        label = query.label
        if self._pd(label):
            fit = "opposite" if label.family == _PD_ANTAGONISTIC else "alike"
            return f"it needs a target both drugs act on, {fit}"
        relations = sorted({m.relation for m in _mechanisms(label)})
        if not relations:
            return "no protein relation explains it"
        perp = query.perpetrator()
        return (
            f"it needs {query.names[perp]} as {' or '.join(relations)} of a protein "
            f"{query.names[_other(perp)]} is a substrate of"
        )

    # -- process and effect claims ---------------------------------------------------------------------------

    def _claimed(self, claim: Claim, polarity: str) -> Subtype | None:
        """The subtype a process/effect claim names under ``polarity``."""
        effect = _EFFECT_PHRASE.fullmatch(claim.obj) if claim.relation == "effect" else None
        phrase = effect.group(1) if effect else claim.obj
        kinds = (DIRECTIONAL, SYMMETRIC) if claim.relation == "process" else (SYMMETRIC, DIRECTIONAL)
        for kind in kinds:
            sub = self.taxonomy.match_subtype(phrase, polarity, kind, pd_only=False)
            if sub is not None:
                return sub
        return None

    def _process_failure(self, claim: Claim, query: _Query) -> Verdict | None:
        label = query.label
        if claim.polarity is None:
            return UNCONFIRMED, f"{claim.relation} {claim.obj!r} states no increase or decrease"
        outsiders = self._outsiders(claim.obj, query)
        if outsiders:
            return UNCONFIRMED, f"names {outsiders}, not a drug of the query"
        answer = self.taxonomy.subtype(label.family, label.subtype)
        polarity = {m: p for p, m in self.taxonomy.family(label.family).modalities.items()}[label.modality]
        claimed = self._claimed(claim, claim.polarity)
        if claimed != answer or claim.polarity != polarity:
            if claim.polarity != polarity and self._claimed(claim, polarity) == answer:
                return INCORRECT, (
                    f"states {_CHANGE[claim.polarity]} of {claim.obj!r}, the answer {label} "
                    f"{_CHANGE[polarity]}"
                )
            named = f"{claimed.family}/{claimed.name}" if claimed else "no mechanism of the taxonomy"
            return UNCONFIRMED, f"{claim.obj!r} names {named}: bears on nothing in the answer {label}"
        if answer.kind == DIRECTIONAL and claim.drug != query.perpetrator():
            perp = query.perpetrator()
            return INCORRECT, (
                f"wrong direction: in the answer {query.names[perp]} acts on {query.names[_other(perp)]}"
            )
        return None


def aggregate_mfs(
    scores: Sequence[ChainScore | None], correct: Sequence[bool]
) -> dict[str, float | int | None]:
    """MFS metrics of one system over its predictions (``None``: a prediction without a chain, which scores 0)
    and whether each answer is right: ``mfs_mean``; ``mfs_on_correct`` (mean over right answers, None without
    one); ``correct_and_verified`` (share of predictions both right and fully verified, MFS == 1);
    ``mfs_checkable_share`` (share of chains with a claim read), ``mfs_unverifiable_mean`` (mean share of
    steps outside the claim grammar, over chains with steps) and ``mfs_n_chains``."""
    if len(scores) != len(correct):
        raise InputError(f"aggregate_mfs: {len(scores)} chains for {len(correct)} correctness flags")
    values = [s.mfs if s is not None else 0.0 for s in scores]
    on_correct = [v for v, ok in zip(values, correct, strict=True) if ok]
    chains = [s for s in scores if s is not None]
    unverifiable = [s.unverifiable_share for s in chains if s.unverifiable_share is not None]
    return {
        "mfs_mean": float(np.mean(values)) if values else None,
        "mfs_on_correct": float(np.mean(on_correct)) if on_correct else None,
        "correct_and_verified": (
            sum(ok and v == 1.0 for v, ok in zip(values, correct, strict=True)) / len(values)
            if values
            else None
        ),
        "mfs_checkable_share": sum(s.n_checkable > 0 for s in chains) / len(chains) if chains else None,
        "mfs_unverifiable_mean": float(np.mean(unverifiable)) if unverifiable else None,
        "mfs_n_chains": len(chains),
    }


def mfs_intervals(
    scores: Sequence[ChainScore | None],
    correct: Sequence[bool],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> dict[str, tuple[float | None, float | None]]:
    """95% percentile bootstrap intervals over the predictions of :func:`aggregate_mfs`'s ``mfs_mean``,
    ``mfs_on_correct`` and ``correct_and_verified``."""
    if len(scores) != len(correct):
        raise InputError(f"mfs_intervals: {len(scores)} chains for {len(correct)} correctness flags")
    values = np.array([s.mfs if s is not None else 0.0 for s in scores])
    ok = np.asarray(correct, dtype=float)
    return {
        "mfs_mean": bootstrap_ci(values, n_resamples, seed),
        "mfs_on_correct": ratio_ci(values * ok, ok, n_resamples, seed),
        "correct_and_verified": bootstrap_ci(ok * (values == 1.0), n_resamples, seed),
    }
