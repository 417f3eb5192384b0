"""The rule step verifier: one reasoning step checked against DrugBank and the gold label.

:func:`verify_step` checks a step's claims (read by the grammar of :mod:`mard_core.prompts`): protein claims
against the ``drug_proteins`` table (:class:`Facts`), process/effect claims against the gold label
(perpetrator, modality, mechanism family), citations against the prompt's evidence ids. The PRM's step labels
(:mod:`mard_core.prm.labels`) and the Mechanism Fidelity Score (:mod:`mard_core.metrics.mfs`) both use it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from mard_core.errors import InputError
from mard_core.prompts import PROTEIN_RELATIONS, Claim, Step, extract_claims
from mard_core.taxonomy import (
    A_TO_B,
    BIDIRECTIONAL,
    DIRECTIONAL,
    SYMMETRIC,
    Label,
    Taxonomy,
    load_taxonomy,
)

CORRECT, INCORRECT, UNVERIFIABLE = "correct", "incorrect", "unverifiable"
VERDICTS = (CORRECT, INCORRECT, UNVERIFIABLE)

_RELATION_PHRASES = {
    "substrate": "a substrate of",
    "inhibitor": "an inhibitor of",
    "inducer": "an inducer of",
    "target": "acting on the target",
}
_GENERIC_WORDS = re.compile(r"^the\s+|\s+(?:enzyme|transporter|carrier|protein|gene)s?$", re.IGNORECASE)
_KEY_JUNK = re.compile(r"[\s\-_]+")


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
        """Build from the ingest tables ``drugs`` (schemas.DRUGS) and ``drug_proteins``
        (schemas.DRUG_PROTEINS)."""
        require_columns(drugs, ("drugbank_id", "name", "synonyms"), "drugs table")
        require_columns(
            drug_proteins,
            ("drug_id", "kind", "name", "actions", "uniprot_id", "gene_name"),
            "drug_proteins table",
        )
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
        """DrugBank rows linking ``drug_id`` to ``protein`` (a gene, UniProt id or name, e.g. "CYP3A4
        enzyme")."""
        per_drug = self.proteins.get(drug_id, {})
        for candidate in (protein, _GENERIC_WORDS.sub("", protein)):
            found = per_drug.get(_protein_key(candidate))
            if found:
                return found
        return ()

    def records(
        self, drug_id: str, relation: str, protein: str, kinds: Collection[str] | None = None
    ) -> bool:
        """Whether DrugBank records ``drug_id`` in ``relation`` (a key of ``PROTEIN_RELATIONS``) to
        ``protein`` (only rows of ``kinds`` when given): "target" needs a target row, the others a confirming
        action."""
        rows = [r for r in self.relations(drug_id, protein) if kinds is None or r.kind in kinds]
        if relation == "target":
            return any(r.kind == "target" for r in rows)
        return any(r.actions & set(PROTEIN_RELATIONS[relation]) for r in rows)


def require_columns(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise :class:`InputError` naming ``what`` when ``df`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what}: missing columns {missing}")


# --- the rules --------------------------------------------------------------------------------------------


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
    raise InputError(
        f"gold label {gold}: modality {gold.modality!r} is not one of {sorted(modalities.values())}"
    )


def _mechanism_verdict(
    claim: Claim, polarity: str, gold: Label, names: Mapping[str, str], taxonomy: Taxonomy
) -> StepVerdict:
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
            problems.append(
                f"wrong direction: gold is {gold.direction}, so {names[perpetrator]} acts on "
                f"{names['B' if perpetrator == 'A' else 'A']}, not {names[claim.drug]} on "
                f"{names[perpetrator]}"
            )
    if family != gold.family:
        problems.append(f"wrong mechanism: {claim.obj!r} is {family}, gold family is {gold.family}")
    elif polarity != gold_polarity:
        problems.append(
            f"wrong modality: claims {polarity} of {claim.obj!r}, gold modality is {gold.modality}"
        )
    if problems:
        return StepVerdict(INCORRECT, "; ".join(problems))
    return StepVerdict(CORRECT, f"{polarity} of {claim.obj} by {names[claim.drug]} fits gold {gold}")


def _claim_verdict(
    claim: Claim, ids: Mapping[str, str], gold: Label, facts: Facts, taxonomy: Taxonomy
) -> StepVerdict:
    if claim.relation in PROTEIN_RELATIONS:
        return _protein_verdict(claim, ids[claim.drug], facts)
    if claim.polarity is None:
        return StepVerdict(UNVERIFIABLE, f"a drug's own {claim.relation} {claim.obj!r} is not checkable")
    names = {who: facts.drug_names(drug_id)[0] for who, drug_id in ids.items()}
    return _mechanism_verdict(claim, claim.polarity, gold, names, taxonomy)


def verify_step(
    step: Step,
    a_id: str,
    b_id: str,
    gold_label: str,
    facts: Facts,
    evidence_ids: Sequence[str] | None,
    taxonomy: Taxonomy | None = None,
) -> StepVerdict:
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
