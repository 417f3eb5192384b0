"""The one prompt and trajectory format shared by teachers, the student, the PRM and evaluation.

Prompt: the ordered pair (A, B) with names and ids, then numbered evidence ``[E1] ...``. Completion: numbered
steps, each one claim citing evidence ids, then ``ANSWER: Family/Subtype/Direction/Modality | confidence p``.

    Step 1: Voriconazole is an inhibitor of CYP3A4 [E3].
    Step 2: Axitinib is a substrate of CYP3A4 [E7].
    Step 3: Voriconazole decreases the metabolism of Axitinib.
    ANSWER: PK Metabolism/Metabolism/A to B/Inhibition | confidence 0.85

The student writes the direction as one dedicated token (``<dir_ab>``, ``<dir_ba>``, ``<dir_bi>``); the parser
reads both forms. Claims are read from a small fixed grammar (below) so that each can be checked against
DrugBank fields; a step outside the grammar is kept, with no claim, and counts as unverifiable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

TEMPLATE_VERSION = "1"

DIRECTION_TOKENS = {"A to B": "<dir_ab>", "B to A": "<dir_ba>", "Bidirectional": "<dir_bi>"}
TOKEN_DIRECTIONS = {v: k for k, v in DIRECTION_TOKENS.items()}

# Relations a step may claim between a drug and a protein, with the DrugBank action words that confirm each.
PROTEIN_RELATIONS = {
    "substrate": ("substrate",),
    "inhibitor": ("inhibitor", "negative modulator"),
    "inducer": ("inducer", "positive modulator"),
    "target": (),  # any action: the drug binds/acts on the protein as a target
}


class EvidenceLike(Protocol):
    """What a prompt needs of an evidence item (``retrieval.Evidence`` is one). Read-only, so that frozen
    dataclasses match."""

    @property
    def id(self) -> str: ...

    @property
    def sentence(self) -> str: ...


@dataclass(frozen=True)
class DrugRef:
    drugbank_id: str
    name: str


@dataclass(frozen=True)
class Claim:
    """One checkable statement: (drug, relation, object). ``object`` is a gene/protein or an effect phrase."""

    drug: str  # "A" or "B"
    relation: str  # substrate | inhibitor | inducer | target | effect | process
    obj: str
    polarity: str | None = None  # increase | decrease for effect/process claims


@dataclass
class Step:
    index: int
    text: str
    citations: list[str]
    claims: list[Claim]


@dataclass
class Answer:
    family: str
    subtype: str
    direction: str
    modality: str
    confidence: float | None

    @property
    def label(self) -> str:
        return f"{self.family}/{self.subtype}/{self.direction}/{self.modality}"


@dataclass
class Parsed:
    steps: list[Step] = field(default_factory=list)
    answer: Answer | None = None
    errors: list[str] = field(default_factory=list)  # malformed parts, reported rather than guessed

    @property
    def ok(self) -> bool:
        return self.answer is not None and not self.errors


def render_prompt(a: DrugRef, b: DrugRef, evidence: Sequence[EvidenceLike]) -> str:
    """The model input for the ordered query (A, B)."""
    lines = [
        f"Drug A: {a.name} ({a.drugbank_id})",
        f"Drug B: {b.name} ({b.drugbank_id})",
        "Evidence:",
        *(f"[{e.id}] {e.sentence}" for e in evidence),
        "Task: explain step by step, citing evidence ids, how Drug A and Drug B interact; "
        + "then give the answer as Family/Subtype/Direction/Modality with a confidence.",
        "Reasoning:",
    ]
    return "\n".join(lines) + "\n"


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(f"{TEMPLATE_VERSION}\n{prompt}".encode()).hexdigest()[:16]


def render_step(index: int, text: str, citations: Sequence[str] = ()) -> str:
    cites = "".join(f" [{c}]" for c in citations)
    return f"Step {index}: {text.rstrip('.')}{cites}."


def render_answer(label: str, confidence: float, direction_token: bool = False) -> str:
    """``ANSWER: ...`` line; with ``direction_token`` the direction is written as its dedicated token."""
    family, subtype, direction, modality = label.split("/")
    if direction_token:
        direction = DIRECTION_TOKENS[direction]
    return f"ANSWER: {family}/{subtype}/{direction}/{modality} | confidence {confidence:.2f}"


def render_completion(
    steps: Sequence[tuple[str, Sequence[str]]], label: str, confidence: float, direction_token: bool = False
) -> str:
    body = [render_step(i, text, cites) for i, (text, cites) in enumerate(steps, 1)]
    return "\n".join([*body, render_answer(label, confidence, direction_token)]) + "\n"


# --- parsing -------------------------------------------------------------------------------------------

_STEP = re.compile(r"^\s*Step\s+(\d+)\s*:\s*(.*\S)\s*$")
_CITE = re.compile(r"\[(E\d+)\]")
_ANSWER = re.compile(r"^\s*ANSWER\s*:\s*(.+?)\s*(?:\|\s*confidence\s*([0-9]*\.?[0-9]+)\s*)?$", re.IGNORECASE)
_DIRECTIONS = ("A to B", "B to A", "Bidirectional")


def _polarity(verb: str) -> str:
    return "increase" if verb.lower().startswith("increase") else "decrease"


# Claim grammar: (pattern, groups -> (relation, object, polarity)). {D} is the claim's drug, {D2} the other
# drug, {P} a protein/gene, other groups effect or process phrases.
_CLAIM_PATTERNS: list[tuple[str, Callable[[tuple[str, ...]], tuple[str, str, str | None]]]] = [
    (r"{D} is an? (substrate|inhibitor|inducer) of (?:the )?{P}", lambda g: (g[0].lower(), g[1], None)),
    (
        r"{D} (inhibits|induces) {P}",
        lambda g: ("inhibitor" if g[0].lower() == "inhibits" else "inducer", g[1], None),
    ),
    (r"{D} is metaboli[sz]ed by {P}", lambda g: ("substrate", g[0], None)),
    (r"{D} (?:targets|acts on|binds) {P}", lambda g: ("target", g[0], None)),
    (r"{D} (increases|decreases) the (.+?) of {D2}", lambda g: ("process", g[1].lower(), _polarity(g[0]))),
    (r"{D} (?:has|causes) (?:an? )?(.+?) effects?", lambda g: ("effect", g[0].lower(), None)),
    (r"{D} (increases|decreases) (?:the )?(.+)", lambda g: ("effect", g[1].lower(), _polarity(g[0]))),
]


def _name_alt(names: Sequence[str]) -> str:
    return "|".join(re.escape(n) for n in sorted({n for n in names if n}, key=len, reverse=True))


def extract_claims(text: str, a_names: Sequence[str], b_names: Sequence[str]) -> list[Claim]:
    """Claims in one step's text (citations removed), drugs resolved to "A"/"B"; [] when none parse."""
    text = _CITE.sub("", text).strip().rstrip(".").strip()
    alts = {"A": _name_alt(a_names), "B": _name_alt(b_names)}
    for who, other in (("A", "B"), ("B", "A")):
        if not alts[who]:
            continue
        for pattern, build in _CLAIM_PATTERNS:
            rx = pattern.replace("{D2}", f"(?:{alts[other] or '$^'})").replace("{D}", f"(?:{alts[who]})")
            m = re.fullmatch(rx.replace("{P}", r"([A-Za-z0-9][\w\-/ ]*?)"), text, flags=re.IGNORECASE)
            if m:
                relation, obj, polarity = build(m.groups())
                return [Claim(who, relation, obj.strip(), polarity)]
    return []


def parse_answer(line: str) -> tuple[Answer | None, str | None]:
    """An ``ANSWER:`` line -> (Answer, None) or (None, what is wrong)."""
    m = _ANSWER.match(line)
    if not m:
        return None, f"not an answer line: {line.strip()[:80]!r}"
    parts = [p.strip() for p in m.group(1).split("/")]
    if len(parts) != 4:
        return None, f"answer needs Family/Subtype/Direction/Modality, got {m.group(1)!r}"
    family, subtype, direction, modality = parts
    direction = TOKEN_DIRECTIONS.get(direction, direction)
    if direction not in _DIRECTIONS:
        return None, f"unknown direction {direction!r} in answer"
    conf = float(m.group(2)) if m.group(2) else None
    if conf is not None and not 0.0 <= conf <= 1.0:
        return None, f"confidence {conf} outside [0, 1]"
    return Answer(family, subtype, direction, modality, conf), None


def parse_completion(
    text: str,
    a_names: Sequence[str] = (),
    b_names: Sequence[str] = (),
    evidence_ids: Sequence[str] | None = None,
) -> Parsed:
    """Steps, citations, claims and the answer of a completion; malformed parts go to ``errors``."""
    parsed = Parsed()
    answer_lines = 0
    known = set(evidence_ids) if evidence_ids is not None else None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.upper().startswith("ANSWER"):
            answer_lines += 1
            if answer_lines > 1:
                parsed.errors.append("more than one ANSWER line")
                continue
            answer, error = parse_answer(line)
            parsed.answer = answer
            if error:
                parsed.errors.append(error)
            continue
        m = _STEP.match(line)
        if not m:
            parsed.errors.append(f"unparseable line: {line[:80]!r}")
            continue
        index, body = int(m.group(1)), m.group(2)
        if index != len(parsed.steps) + 1:
            parsed.errors.append(f"step {index} out of order (expected {len(parsed.steps) + 1})")
        cites = _CITE.findall(body)
        if known is not None:
            parsed.errors.extend(f"step {index} cites unknown evidence {c}" for c in cites if c not in known)
        parsed.steps.append(Step(index, body, cites, extract_claims(body, a_names, b_names)))
    if answer_lines == 0:
        parsed.errors.append("no ANSWER line")
    return parsed
