"""The student's view of a query: a compact prompt that puts the mechanism-bearing evidence first, the drugs
written by role, and the completion it learns to write.

A small model cannot use a 24-line prompt of long sentences, nor copy drug names it has never seen. The
student therefore reads the same retrieved evidence (same ``[E#]`` ids, so its citations point at real
DrugBank rows) rendered as:

    Query: Drug A with Drug B
    [E3] Drug A is a substrate and strong inhibitor of CYP3A4 (enzyme)
    [E5] Drug B is a substrate of CYP3A4 (enzyme)
    [E16] 5 similar pairs: PK Metabolism/Metabolism/<dir_ab>/Inhibition
    [E4] Drug A is an inhibitor of ERG11 (target)
    [E10] Drug A category: Antifungal Agents
    Reasoning:

First the protein facts of the proteins both drugs touch (a perpetrator/victim pair first), then the labels
of the most similar training pairs turned to the query's A/B order (each label once, with its count), then
each drug's other proteins and categories, at most ``max_items`` lines. The query drugs are written
``Drug A`` / ``Drug B`` in the prompt and in the completion; :func:`from_roles` puts the names back into a
generated chain, so the chain a user (and the MFS checker) reads names the drugs. The completion is the
chain's steps and ``ANSWER: label`` with the direction token; the confidence is not generated: it is the
probability the student gives its label
(:mod:`mard_core.constrained`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from mard_core.chains import Completion, prompt_drugs
from mard_core.prompts import DIRECTION_TOKENS, DrugRef, parse_completion
from mard_core.retrieval import Evidence
from mard_core.taxonomy import Label, mirror_direction

ROLES = ("Drug A", "Drug B")
_ACCESSION = re.compile(r", [A-Z0-9_.-]+\)$")
_CITE = re.compile(r"E\d+")
_CITES = re.compile(r"(?:\s*\[E\d+\])+")
_STRONG_ACTIONS = {"inhibitor", "inducer", "negative modulator", "positive modulator"}


def _names_pattern(names: Sequence[str]) -> re.Pattern[str] | None:
    alts = sorted({n for n in names if n}, key=len, reverse=True)
    if not alts:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in alts) + r")(?!\w)", re.IGNORECASE)


def to_roles(text: str, names_a: Sequence[str], names_b: Sequence[str]) -> str:
    """``text`` with whole-word mentions of A's names written ``Drug A`` and of B's ``Drug B``; the longest
    name wins where one drug's name holds the other's (``estradiol cypionate`` beside ``estradiol``)."""
    role = {n.lower(): ROLES[1] for n in names_b if n} | {n.lower(): ROLES[0] for n in names_a if n}
    pattern = _names_pattern(list(role))
    return text if pattern is None else pattern.sub(lambda m: role[m.group(0).lower()], text)


def from_roles(text: str, name_a: str, name_b: str) -> str:
    """A generated chain with ``Drug A`` / ``Drug B`` replaced by the query's names."""
    return text.replace(ROLES[0], "\x00A\x00").replace(ROLES[1], name_b).replace("\x00A\x00", name_a)


def _protein_line(e: Evidence, role: str, names: Sequence[str]) -> str:
    sentence = _ACCESSION.sub(")", e.sentence)
    pattern = _names_pattern(names)
    return pattern.sub(role, sentence, count=1) if pattern else sentence


def _analogue_line(e: Evidence, drug_a: str) -> str | None:
    """A similar training pair's label in the query's A/B order (the neighbour of A first), written as the
    answer line writes a label, so that the student can copy it."""
    if not e.value:
        return None
    family, subtype, direction, modality = e.value.split("/")
    if e.similar_to != drug_a:
        direction = mirror_direction(direction)
    return f"{family}/{subtype}/{DIRECTION_TOKENS[direction]}/{modality}"


def _mechanism_rank(a_facts: Sequence[Evidence], b_facts: Sequence[Evidence]) -> int:
    """0 when one drug acts on the protein (inhibits, induces) and the other is its substrate, else 1."""
    acts = {x for e in a_facts for x in e.actions} | {x for e in b_facts for x in e.actions}
    substrate = any("substrate" in e.actions for e in (*a_facts, *b_facts))
    return 0 if acts & _STRONG_ACTIONS and substrate else 1


@dataclass(frozen=True)
class StudentPrompt:
    """The prompt text and, for each evidence id it covers, the id of the line that shows it (a line of
    similar pairs stands for all of them; ids it leaves out are absent)."""

    text: str
    shown: Mapping[str, str]


def student_prompt(
    drug_a: str,
    drug_b: str,
    names_a: Sequence[str],
    names_b: Sequence[str],
    evidence: Sequence[Evidence],
    max_items: int,
) -> StudentPrompt:
    """The student's prompt for the ordered query (A, B) over ``evidence`` (as retrieved for the pair)."""
    role = {drug_a: (ROLES[0], names_a), drug_b: (ROLES[1], names_b)}
    proteins = [e for e in evidence if e.kind == "protein" and e.drug_id in role]
    by_gene: dict[str, dict[str, list[Evidence]]] = {}
    for e in proteins:
        key = e.gene_name or e.uniprot_id or e.sentence
        by_gene.setdefault(key, {drug_a: [], drug_b: []})[e.drug_id].append(e)
    shared = [g for g, sides in by_gene.items() if sides[drug_a] and sides[drug_b]]
    shared.sort(key=lambda g: _mechanism_rank(by_gene[g][drug_a], by_gene[g][drug_b]))
    first = [e for g in shared for e in (*by_gene[g][drug_a], *by_gene[g][drug_b])]
    lines = [(e, _protein_line(e, *role[e.drug_id])) for e in first]
    analogues: dict[str, list[Evidence]] = {}
    for e in evidence:
        if e.kind == "similar_interaction" and (line := _analogue_line(e, drug_a)) is not None:
            analogues.setdefault(line, []).append(e)
    lines += [
        (same[0], f"{len(same)} similar {'pair' if len(same) == 1 else 'pairs'}: {line}")
        for line, same in sorted(analogues.items(), key=lambda kv: -len(kv[1]))
    ]
    lines += [(e, _protein_line(e, *role[e.drug_id])) for e in proteins if e not in first]
    lines += [
        (e, f"{role[e.drug_id][0]} category: {e.value}")
        for e in evidence
        if e.kind == "category" and e.drug_id in role
    ]
    lines = lines[:max_items]
    shown = {e.id: e.id for e, _ in lines}
    shown.update({e.id: same[0].id for same in analogues.values() if same[0].id in shown for e in same})
    body = [f"[{e.id}] {line}" for e, line in lines]
    return StudentPrompt("\n".join([f"Query: {ROLES[0]} with {ROLES[1]}", *body, "Reasoning:"]) + "\n", shown)


def student_completion(
    completion: Completion, names_a: Sequence[str], names_b: Sequence[str], shown: Mapping[str, str]
) -> str:
    """What the student learns to write: the chain's steps by role, citing the prompt's lines (``shown``),
    then ``ANSWER: label`` with the direction token (no confidence: the student's confidence is its label
    probability)."""

    def cite(m: re.Match[str]) -> str:
        ids = dict.fromkeys(shown[c] for c in _CITE.findall(m.group(0)) if c in shown)
        return "".join(f" [{c}]" for c in ids)

    steps = [
        to_roles(f"Step {i}: {_CITES.sub(cite, text)}", names_a, names_b)
        for i, text in enumerate(completion.steps, 1)
    ]
    return "\n".join([*steps, answer_line(completion.label)]) + "\n"


def answer_line(label: str) -> str:
    """``ANSWER: Family/Subtype/<dir_..>/Modality``: the line the student's decoding is constrained to."""
    family, subtype, direction, modality = label.split("/")
    return f"ANSWER: {family}/{subtype}/{DIRECTION_TOKENS[direction]}/{modality}"


MAX_ITEMS = 10
"""Evidence lines in a student prompt (about 100 words with the chain's 20)."""


class StudentView:
    """Teacher-format examples (full prompt, completion text) turned into the student's view, on the evidence
    the prompt was rendered from (given, or retrieved again for the prompt's drug ids: the same items); with
    ``swap`` the same example is written for the mirrored query (B, A), its answer's direction mirrored."""

    def __init__(
        self, retrieve: Callable[[str, str], Sequence[Evidence]], names: Mapping[str, Sequence[str]]
    ):
        self.retrieve, self.names = retrieve, names

    def _names(self, ref: DrugRef) -> Sequence[str]:
        return self.names.get(ref.drugbank_id) or (ref.name,)

    def evidence(self, prompt: str) -> Sequence[Evidence]:
        """The evidence ``prompt`` was rendered from, retrieved again for its drugs."""
        a, b = prompt_drugs(prompt)
        return self.retrieve(a.drugbank_id, b.drugbank_id)

    def example(
        self, prompt: str, completion: str, swap: bool = False, evidence: Sequence[Evidence] | None = None
    ) -> tuple[str, str]:
        a, b = prompt_drugs(prompt)
        if evidence is None:
            evidence = self.evidence(prompt)
        if swap:
            a, b = b, a
        view = student_prompt(
            a.drugbank_id, b.drugbank_id, self._names(a), self._names(b), evidence, MAX_ITEMS
        )
        parsed = parse_completion(completion, self._names(a), self._names(b))
        if parsed.answer is None or not parsed.steps:
            return view.text, to_roles(completion, self._names(a), self._names(b))
        label = Label.parse(parsed.answer.label)
        chain = Completion(tuple(s.text for s in parsed.steps), (label.mirrored() if swap else label).slash())
        return view.text, student_completion(chain, self._names(a), self._names(b), view.shown)
