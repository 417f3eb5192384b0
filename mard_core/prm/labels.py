"""Step labels without humans: a rule verifier against DrugBank and the gold label, and Monte-Carlo rollouts.

Two independent sources label each reasoning step:

* :func:`verify_step` checks the step's claim (read by the grammar of :mod:`mard_core.prompts`): protein
  claims against the ``drug_proteins`` table, process/effect claims against the gold label (perpetrator,
  modality, mechanism family), citations against the prompt's evidence ids.
* :func:`rollout_labels` (Math-Shepherd style) samples ``k`` continuations from each step prefix and scores
  the step by the share that reach the gold answer.

:func:`agreement` reports how the two sources agree.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from mard_core.errors import InputError
from mard_core.prompts import PROTEIN_RELATIONS, Claim, Step, extract_claims, parse_completion
from mard_core.taxonomy import (
    A_TO_B,
    BIDIRECTIONAL,
    DIRECTIONAL,
    SYMMETRIC,
    Label,
    Taxonomy,
    load_taxonomy,
)
from mard_core.teachers.base import Backend, GenerationParams

CORRECT, INCORRECT, UNVERIFIABLE = "correct", "incorrect", "unverifiable"
VERDICTS = (CORRECT, INCORRECT, UNVERIFIABLE)
TRAJECTORY_KEY = ("split", "part", "drug_a", "drug_b", "teacher", "sample")
"""Columns that identify one trajectory in the step-label table."""

_RELATION_PHRASES = {
    "substrate": "a substrate of",
    "inhibitor": "an inhibitor of",
    "inducer": "an inducer of",
    "target": "acting on the target",
}
_GENERIC_WORDS = re.compile(r"^the\s+|\s+(?:enzyme|transporter|carrier|protein|gene)s?$", re.IGNORECASE)
_KEY_JUNK = re.compile(r"[\s\-_]+")
_EVIDENCE_LINE = re.compile(r"^\[(E\d+)\]", re.MULTILINE)

CompleteFn = Callable[[list[str], int], list[list[str]]]
"""``complete_fn(prompts, k)`` -> ``k`` sampled continuations of each prompt, in prompt order."""


@dataclass(frozen=True)
class StepVerdict:
    label: str  # correct | incorrect | unverifiable
    reason: str


@dataclass(frozen=True)
class ProteinFact:
    """One drug-protein row of DrugBank: the protein's kind and lower-cased action words."""

    kind: str
    name: str
    actions: frozenset[str]


def _protein_key(text: str) -> str:
    """Case-, space- and hyphen-insensitive protein key ("CYP 3A4" == "cyp3a4")."""
    return _KEY_JUNK.sub("", text.casefold())


@dataclass
class Facts:
    """Per-drug names and protein relations, indexed by gene name, UniProt id and protein name."""

    names: dict[str, tuple[str, ...]]
    proteins: dict[str, dict[str, tuple[ProteinFact, ...]]] = field(default_factory=dict)

    @classmethod
    def from_tables(cls, drugs: pl.DataFrame, drug_proteins: pl.DataFrame) -> Facts:
        """Build from the ingest tables ``drugs`` (schemas.DRUGS) and ``drug_proteins`` (schemas.DRUG_PROTEINS)."""
        _require(drugs, ("drugbank_id", "name", "synonyms"), "drugs table")
        _require(drug_proteins, ("drug_id", "kind", "name", "actions", "uniprot_id", "gene_name"),
                 "drug_proteins table")
        names = {
            row["drugbank_id"]: tuple(dict.fromkeys([row["name"], *(row["synonyms"] or [])]))
            for row in drugs.select("drugbank_id", "name", "synonyms").iter_rows(named=True)
        }
        index: dict[str, dict[str, list[ProteinFact]]] = {}
        for row in drug_proteins.iter_rows(named=True):
            if row["drug_id"] not in names:
                raise InputError(f"drug_proteins table: drug_id {row['drug_id']!r} is not in the drugs table")
            label = row["gene_name"] or row["name"] or row["uniprot_id"] or "an unnamed protein"
            fact = ProteinFact(row["kind"], label, frozenset(a.lower() for a in row["actions"] or []))
            per_drug = index.setdefault(row["drug_id"], {})
            for ref in {_protein_key(r) for r in (row["gene_name"], row["uniprot_id"], row["name"]) if r}:
                per_drug.setdefault(ref, []).append(fact)
        proteins = {d: {k: tuple(v) for k, v in refs.items()} for d, refs in index.items()}
        return cls(names, proteins)

    def drug_names(self, drug_id: str) -> tuple[str, ...]:
        """Name and synonyms of ``drug_id`` (name first)."""
        try:
            return self.names[drug_id]
        except KeyError:
            raise InputError(f"step verifier: drug {drug_id!r} is not in the drugs table") from None

    def relations(self, drug_id: str, protein: str) -> tuple[ProteinFact, ...]:
        """DrugBank rows linking ``drug_id`` to ``protein`` (a gene, UniProt id or name, e.g. "CYP3A4 enzyme")."""
        per_drug = self.proteins.get(drug_id, {})
        for candidate in (protein, _GENERIC_WORDS.sub("", protein)):
            found = per_drug.get(_protein_key(candidate))
            if found:
                return found
        return ()

    def records(self, drug_id: str, relation: str, protein: str, kinds: Collection[str] | None = None) -> bool:
        """Whether DrugBank records ``drug_id`` in ``relation`` (a key of ``PROTEIN_RELATIONS``) to ``protein``
        (only rows of ``kinds`` when given): "target" needs a target row, the others a confirming action."""
        rows = [r for r in self.relations(drug_id, protein) if kinds is None or r.kind in kinds]
        if relation == "target":
            return any(r.kind == "target" for r in rows)
        return any(r.actions & set(PROTEIN_RELATIONS[relation]) for r in rows)


def _require(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what}: missing columns {missing}")


# --- the rule verifier ------------------------------------------------------------------------------------


def _protein_verdict(claim: Claim, drug_id: str, facts: Facts) -> StepVerdict:
    name = facts.drug_names(drug_id)[0]
    phrase = f"{_RELATION_PHRASES[claim.relation]} {claim.obj}"
    if facts.records(drug_id, claim.relation, claim.obj):
        return StepVerdict(CORRECT, f"DrugBank records {name} as {phrase}")
    return StepVerdict(INCORRECT, f"{name} is not recorded as {phrase}")


def _phrase_family(phrase: str, polarity: str, taxonomy: Taxonomy) -> str | None:
    """The family a process phrase names under ``polarity`` (directional subtypes first), or None."""
    for kind in (DIRECTIONAL, SYMMETRIC):
        sub = taxonomy.match_subtype(phrase, polarity, kind, pd_only=False)
        if sub is not None:
            return sub.family
    return None


def _gold_polarity(gold: Label, taxonomy: Taxonomy) -> str:
    modalities = taxonomy.family(gold.family).modalities
    for polarity, modality in modalities.items():
        if modality == gold.modality:
            return polarity
    raise InputError(f"gold label {gold}: modality {gold.modality!r} is not one of {sorted(modalities.values())}")


def _mechanism_verdict(claim: Claim, polarity: str, gold: Label, names: Mapping[str, str],
                       taxonomy: Taxonomy) -> StepVerdict:
    """A process/effect claim of ``polarity`` against the gold label: perpetrator, mechanism, modality."""
    gold_polarity = _gold_polarity(gold, taxonomy)
    if claim.relation == "process":
        family = _phrase_family(claim.obj, polarity, taxonomy)
        if family is None:
            return StepVerdict(UNVERIFIABLE, f"process {claim.obj!r} names no mechanism of the taxonomy")
        if family != gold.family and _phrase_family(claim.obj, gold_polarity, taxonomy) == gold.family:
            family = gold.family  # the phrase fits the gold family; only the polarity is off
    else:  # an effect a drug increases or decreases: the PD family carrying that polarity
        pd_families = [f.name for f in taxonomy.families if f.kind == "pd" and polarity in f.modalities]
        if not pd_families:
            return StepVerdict(UNVERIFIABLE, f"no pharmacodynamic family carries an effect {polarity}")
        family = pd_families[0]
    problems = []
    if gold.direction != BIDIRECTIONAL:
        perpetrator = "A" if gold.direction == A_TO_B else "B"
        if claim.drug != perpetrator:
            problems.append(f"wrong direction: gold is {gold.direction}, so {names[perpetrator]} acts on "
                            f"{names['B' if perpetrator == 'A' else 'A']}, not {names[claim.drug]} on "
                            f"{names[perpetrator]}")
    if family != gold.family:
        problems.append(f"wrong mechanism: {claim.obj!r} is {family}, gold family is {gold.family}")
    elif polarity != gold_polarity:
        problems.append(f"wrong modality: claims {polarity} of {claim.obj!r}, gold modality is "
                        f"{gold.modality}")
    if problems:
        return StepVerdict(INCORRECT, "; ".join(problems))
    return StepVerdict(CORRECT, f"{polarity} of {claim.obj} by {names[claim.drug]} fits gold {gold}")


def _claim_verdict(claim: Claim, ids: Mapping[str, str], gold: Label, facts: Facts,
                   taxonomy: Taxonomy) -> StepVerdict:
    if claim.relation in PROTEIN_RELATIONS:
        return _protein_verdict(claim, ids[claim.drug], facts)
    if claim.polarity is None:
        return StepVerdict(UNVERIFIABLE, f"a drug's own {claim.relation} {claim.obj!r} is not checkable")
    names = {who: facts.drug_names(drug_id)[0] for who, drug_id in ids.items()}
    return _mechanism_verdict(claim, claim.polarity, gold, names, taxonomy)


def verify_step(step: Step, a_id: str, b_id: str, gold_label: str, facts: Facts,
                evidence_ids: Sequence[str] | None, taxonomy: Taxonomy | None = None) -> StepVerdict:
    """Label one step correct / incorrect / unverifiable, with the reason.

    ``step.claims`` must have been read with the drugs' names (see :func:`parse_step`). ``evidence_ids``
    are the ids the prompt listed (None: not known, citations are not checked).
    """
    missing = [c for c in step.citations if evidence_ids is not None and c not in evidence_ids]
    if missing:
        return StepVerdict(INCORRECT, f"cites missing evidence {', '.join(missing)}")
    if not step.claims:
        if step.citations:
            return StepVerdict(UNVERIFIABLE, "cited text outside the claim grammar")
        return StepVerdict(UNVERIFIABLE, "uncited claim" if step.text.strip() else "empty step")
    tax = taxonomy or load_taxonomy()
    gold = Label.parse(gold_label)
    verdicts = [_claim_verdict(c, {"A": a_id, "B": b_id}, gold, facts, tax) for c in step.claims]
    for label in (INCORRECT, UNVERIFIABLE):
        hits = [v.reason for v in verdicts if v.label == label]
        if hits:
            return StepVerdict(label, "; ".join(hits))
    return StepVerdict(CORRECT, "; ".join(v.reason for v in verdicts))


def parse_step(step: Mapping[str, Any] | Step, a_id: str, b_id: str, facts: Facts) -> Step:
    """A trajectory's stored step (schemas.STEP: index, text, citations) with its claims read."""
    if isinstance(step, Step):
        index, text, citations = step.index, step.text, step.citations
    else:
        index, text, citations = step["index"], step["text"], list(step["citations"] or [])
    claims = extract_claims(text, facts.drug_names(a_id), facts.drug_names(b_id))
    return Step(index, text, list(citations), claims)


def _evidence_ids(row: Mapping[str, Any]) -> list[str] | None:
    if row.get("evidence_ids") is not None:
        return list(row["evidence_ids"])
    if row.get("prompt"):
        return _EVIDENCE_LINE.findall(row["prompt"])
    return None


def label_trajectory(row: Mapping[str, Any], facts: Facts, taxonomy: Taxonomy | None = None) -> list[StepVerdict]:
    """Verdicts of every step of one trajectory row (schemas.TRAJECTORIES)."""
    evidence = _evidence_ids(row)
    return [
        verify_step(parse_step(s, row["drug_a"], row["drug_b"], facts), row["drug_a"], row["drug_b"],
                    row["gold"], facts, evidence, taxonomy)
        for s in row["steps"] or []
    ]


def label_trajectories(df: pl.DataFrame, facts: Facts, taxonomy: Taxonomy | None = None) -> pl.DataFrame:
    """One row per step: the trajectory key, ``step`` (1-based), ``label``, ``reason`` and ``correct``."""
    _require(df, (*TRAJECTORY_KEY, "gold", "steps", "evidence_ids", "correct"), "trajectories table")
    rows: list[dict[str, Any]] = []
    for row in df.iter_rows(named=True):
        key = {c: row[c] for c in TRAJECTORY_KEY}
        for step, verdict in zip(row["steps"] or [], label_trajectory(row, facts, taxonomy)):
            rows.append({**key, "step": step["index"], "label": verdict.label, "reason": verdict.reason,
                         "correct": row["correct"]})
    schema = {c: df.schema[c] for c in TRAJECTORY_KEY} | {
        "step": pl.Int32, "label": pl.String, "reason": pl.String, "correct": pl.Boolean}
    return pl.DataFrame(rows, schema=schema)


# --- Monte-Carlo rollouts -----------------------------------------------------------------------------------


def backend_complete_fn(backend: Backend, params: GenerationParams) -> CompleteFn:
    """A ``complete_fn`` sampling from a teacher backend (``params.n`` is replaced by ``k``)."""

    def complete(prompts: list[str], k: int) -> list[list[str]]:
        return [[c.text for c in outs] for outs in backend.generate(prompts, replace(params, n=k))]

    return complete


def step_line(step: Mapping[str, Any]) -> str:
    """A stored step (schemas.STEP) as its completion line, ``Step i: text``."""
    return f"Step {step['index']}: {step['text']}"


def rollout_labels(rows: Sequence[Mapping[str, Any]], complete_fn: CompleteFn, k: int,
                   gold: Sequence[str] | None = None) -> list[list[float]]:
    """Per step, the share of ``k`` continuations sampled after the prompt and steps 1..i reaching the gold answer.

    ``rows`` are trajectory rows (``prompt``, ``steps``, ``gold``); ``gold`` overrides their gold labels.
    All prefixes go to ``complete_fn`` in one call.
    """
    if k < 1:
        raise InputError(f"rollout_labels: k must be >= 1, got {k}")
    golds = list(gold) if gold is not None else [r["gold"] for r in rows]
    if len(golds) != len(rows):
        raise InputError(f"rollout_labels: {len(golds)} gold labels for {len(rows)} rows")
    prefixes: list[str] = []
    owners: list[tuple[int, str]] = []  # (row, steps text so far) per prefix
    for i, row in enumerate(rows):
        done = ""
        for step in row["steps"] or []:
            done += step_line(step) + "\n"
            prefixes.append(row["prompt"] + done)
            owners.append((i, done))
    completions = complete_fn(prefixes, k) if prefixes else []
    if len(completions) != len(prefixes) or any(len(c) != k for c in completions):
        raise InputError(f"rollout_labels: complete_fn must return {k} completions for each of "
                         f"{len(prefixes)} prompts")
    scores: list[list[float]] = [[] for _ in rows]
    for (i, done), outs in zip(owners, completions):
        hits = 0
        for out in outs:
            answer = parse_completion(done + out).answer
            hits += answer is not None and answer.label == golds[i]
        scores[i].append(hits / k)
    return scores


# --- agreement ----------------------------------------------------------------------------------------------


def agreement(verifier_labels: Sequence[str], rollout_scores: Sequence[float], threshold: float = 0.5
              ) -> dict[str, float | int]:
    """Confusion counts, agreement rate and Cohen's kappa of the verifier vs rollouts (score >= threshold).

    One entry per step in both sequences; unverifiable steps are counted but not compared. Rate and kappa
    are NaN when undefined (nothing compared; kappa when both sources are constant and equal).
    """
    if len(verifier_labels) != len(rollout_scores):
        raise InputError(f"agreement: {len(verifier_labels)} verifier labels vs {len(rollout_scores)} rollout scores")
    unknown = sorted(set(verifier_labels) - set(VERDICTS))
    if unknown:
        raise InputError(f"agreement: unknown verifier labels {unknown}; expected {list(VERDICTS)}")
    counts = {"both_correct": 0, "both_incorrect": 0, "verifier_correct_rollout_incorrect": 0,
              "verifier_incorrect_rollout_correct": 0}
    for label, score in zip(verifier_labels, rollout_scores):
        if label == UNVERIFIABLE:
            continue
        rollout_ok = score >= threshold
        if label == CORRECT:
            counts["both_correct" if rollout_ok else "verifier_correct_rollout_incorrect"] += 1
        else:
            counts["verifier_incorrect_rollout_correct" if rollout_ok else "both_incorrect"] += 1
    n = sum(counts.values())
    nan = math.nan
    rate = (counts["both_correct"] + counts["both_incorrect"]) / n if n else nan
    kappa = nan
    if n:
        v_ok = (counts["both_correct"] + counts["verifier_correct_rollout_incorrect"]) / n
        r_ok = (counts["both_correct"] + counts["verifier_incorrect_rollout_correct"]) / n
        expected = v_ok * r_ok + (1 - v_ok) * (1 - r_ok)
        kappa = (rate - expected) / (1 - expected) if expected < 1 else nan
    return {**counts, "n_steps": len(verifier_labels), "n_compared": n,
            "n_unverifiable": len(verifier_labels) - n, "agreement": rate, "kappa": kappa}


def with_corruptions(trajectories: pl.DataFrame, proteins: Sequence[str]) -> pl.DataFrame:
    """``trajectories`` plus, for every one with steps and an answer, copies whose steps were corrupted
    programmatically (a wrong protein, a swapped citation; teacher ``<teacher>~<kind>``).

    Teachers that only write verified chains give the PRM no incorrect steps to learn from; these copies do,
    and the step verifier labels them like any other trajectory.
    """
    from mard_core.training.data import Completion
    from mard_core.training.negatives import CITATION_SWAPPED, WRONG_PROTEIN, hard_negatives

    rows = []
    for row in trajectories.filter(pl.col("answer").is_not_null() & (pl.col("steps").list.len() > 0)).to_dicts():
        for negative in hard_negatives(row["prompt"], Completion.from_row(row), {}, proteins,
                                       (WRONG_PROTEIN, CITATION_SWAPPED)):
            parsed = parse_completion(negative.completion.render())
            rows.append({**row, "teacher": f"{row['teacher']}~{negative.kind}", "text": negative.completion.render(),
                         "steps": [{"index": s.index, "text": s.text, "citations": s.citations} for s in parsed.steps]})
    return pl.concat([trajectories, pl.DataFrame(rows, schema=trajectories.schema)]) if rows else trajectories
