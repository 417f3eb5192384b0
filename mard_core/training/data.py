"""Student training data: screened trajectories -> SFT examples in both query orientations.

A trajectory row (``schemas.TRAJECTORIES``) answers the ordered query (A, B). Its student completion is the
canonical rendering of its steps and answer (:class:`mard_core.chains.Completion`) with the direction written
as one token (``<dir_ab>`` ...). The mirrored example is the same interaction asked as (B, A): the prompt
re-rendered with the drugs swapped and the answer's direction mirrored (A to B <-> B to A, Bidirectional
stays). The steps name the drugs, so they stay true in both orientations. Both examples share a ``pair_id``;
the SFT collator batches them together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from mard_core.chains import Completion, Row, prompt_drugs, row_name
from mard_core.errors import InputError
from mard_core.prompts import DIRECTION_TOKENS, DrugRef
from mard_core.retrieval import RetrievalIndex
from mard_core.student_prompt import StudentView
from mard_core.taxonomy import DIRECTIONS, mirror_direction

RenderSwapped = Callable[[Row], str]
"""``render_swapped(row) -> prompt`` of the swapped query (B, A) for a trajectory row of (A, B)."""

FORWARD, MIRROR = "ab", "ba"
DIRECTION_TOKEN_LIST: tuple[str, ...] = tuple(DIRECTION_TOKENS[d] for d in DIRECTIONS)
"""The direction tokens in :data:`mard_core.taxonomy.DIRECTIONS` order: A to B, B to A, Bidirectional."""
MIRROR_PERMUTATION: tuple[int, ...] = tuple(DIRECTIONS.index(mirror_direction(d)) for d in DIRECTIONS)
"""Index map of the direction tokens under the swap (A, B) -> (B, A): (1, 0, 2)."""


def swap_prompt_drugs(prompt: str) -> str:
    """The prompt with the ``Drug A:`` and ``Drug B:`` header lines swapped; evidence and the rest kept.

    Evidence items describe one drug each and cite their own ids, so they stay valid for (B, A).
    """
    a, b = prompt_drugs(prompt)
    rest = prompt.split("\n", 2)[2]
    return f"Drug A: {b.name} ({b.drugbank_id})\nDrug B: {a.name} ({a.drugbank_id})\n{rest}"


def default_render_swapped(row: Row) -> str:
    """:data:`RenderSwapped` that swaps the header lines of ``row['prompt']``."""
    return swap_prompt_drugs(str(row["prompt"]))


@dataclass(frozen=True)
class SFTExample:
    """One training sequence; ``orientation`` is ``ab`` (as screened) or ``ba`` (its mirror)."""

    pair_id: str
    orientation: str
    prompt: str
    completion: str


def pair_id(prompt: str, completion: str) -> str:
    """Content id of an (A, B) example, shared with its mirror."""
    return hashlib.sha256(f"{prompt}\x00{completion}".encode()).hexdigest()[:16]


def build_sft_examples(
    rows: Iterable[Row], render_swapped: RenderSwapped = default_render_swapped
) -> list[SFTExample]:
    """Every screened row as its (A, B) example followed by its mirrored (B, A) example.

    Rows with identical prompt and completion give one pair (exact duplicates are dropped).
    """
    out: list[SFTExample] = []
    seen: set[str] = set()
    for row in rows:
        prompt = row.get("prompt")
        if not prompt:
            raise InputError(f"{row_name(row)}: no prompt")
        completion = Completion.from_row(row)
        text = completion.render()
        pid = pair_id(prompt, text)
        if pid in seen:
            continue
        seen.add(pid)
        swapped = render_swapped(row)
        if swapped == prompt:
            raise InputError(f"{row_name(row)}: the swapped prompt equals the original prompt")
        out += [
            SFTExample(pid, FORWARD, prompt, text),
            SFTExample(pid, MIRROR, swapped, completion.mirrored().render()),
        ]
    return out


def group_pairs(examples: Sequence[SFTExample]) -> list[tuple[SFTExample, SFTExample]]:
    """(ab, ba) per ``pair_id`` in first-seen order; each pair must have exactly one example of each
    orientation."""
    groups: dict[str, dict[str, SFTExample]] = {}
    for ex in examples:
        if ex.orientation not in (FORWARD, MIRROR):
            raise InputError(f"SFT example {ex.pair_id}: orientation {ex.orientation!r} is not 'ab' or 'ba'")
        group = groups.setdefault(ex.pair_id, {})
        if ex.orientation in group:
            raise InputError(f"SFT example {ex.pair_id}: two '{ex.orientation}' examples share one pair_id")
        group[ex.orientation] = ex
    missing = [pid for pid, g in groups.items() if len(g) != 2]
    if missing:
        raise InputError(f"SFT examples {missing[:5]} lack their mirrored example ({len(missing)} pairs)")
    if not groups:
        raise InputError("no SFT examples to train on")
    return [(g[FORWARD], g[MIRROR]) for g in groups.values()]


def student_examples(examples: Sequence[SFTExample], view: StudentView) -> list[SFTExample]:
    """SFT examples (teacher format, both orientations) in the student's view; each mirror is written from its
    (A, B) example, on the evidence that example cites."""
    out = []
    for ab, _ in group_pairs(examples):
        evidence = view.evidence(ab.prompt)
        for orientation, swap in ((FORWARD, False), (MIRROR, True)):
            texts = view.example(ab.prompt, ab.completion, swap, evidence)
            out.append(SFTExample(ab.pair_id, orientation, *texts))
    return out


def student_corpus(
    train: pl.DataFrame, index: RetrievalIndex, drugs: pl.DataFrame, seed: int
) -> list[tuple[str, str]]:
    """(prompt, completion) of every training pair in both orders, in the student's view, with the
    knowledge-grounded teacher's chain for the pair's gold label."""
    from mard_core.generate import build_items, drug_names  # generate imports the teachers (torch)
    from mard_core.metrics.labels import present_in_random_order
    from mard_core.teachers.knowledge import KnowledgeTeacher

    teacher, view = KnowledgeTeacher(), StudentView(index.retrieve, drug_names(drugs))
    out = []
    for item in build_items(present_in_random_order(train, seed), index, drugs):
        text = teacher.write(item.a, item.b, list(item.evidence), item.gold)
        out += [view.example(item.prompt, text, swap, item.evidence) for swap in (False, True)]
    return out


# --- synthetic rows for tests, benchmarks and smoke runs ----------------------------------------------------

_PROTEINS = ("CYP3A4", "CYP2D6", "CYP2C9", "CYP1A2", "CYP2C19")


@dataclass(frozen=True)
class _Evidence:
    id: str
    sentence: str


def synthetic_trajectories(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` correct trajectory rows (TRAJECTORIES columns used by training) over made-up drugs.

    Three mechanism shapes rotate: CYP inhibition (A to B or B to A), CYP induction, and a symmetric
    additive effect (Bidirectional). Deterministic in ``(n, seed)``.
    """
    from mard_core.prompts import parse_completion, prompt_hash, render_completion, render_prompt

    rows = []
    for i in range(n):
        k = i + seed * 7919
        ia, ib = k % 997, (k * 3 + 1) % 991
        a, b = DrugRef(f"DB{ia:05d}", f"Drugamol{ia}"), DrugRef(f"DB{10000 + ib:05d}", f"Examab{ib}")
        protein = _PROTEINS[k % len(_PROTEINS)]
        shape = k % 3
        perp, victim = (a, b) if (k // 3) % 2 == 0 else (b, a)
        direction = "A to B" if perp is a else "B to A"
        if shape == 0:
            evidence = [
                f"{perp.name} is an inhibitor of {protein} (enzyme).",
                f"{victim.name} is a substrate of {protein} (enzyme).",
            ]
            steps = [
                (f"{perp.name} is an inhibitor of {protein}", ["E1"]),
                (f"{victim.name} is a substrate of {protein}", ["E2"]),
                (f"{perp.name} decreases the metabolism of {victim.name}", []),
            ]
            label = f"PK Metabolism/Metabolism/{direction}/Inhibition"
        elif shape == 1:
            evidence = [
                f"{perp.name} is an inducer of {protein} (enzyme).",
                f"{victim.name} is a substrate of {protein} (enzyme).",
            ]
            steps = [
                (f"{perp.name} is an inducer of {protein}", ["E1"]),
                (f"{victim.name} is a substrate of {protein}", ["E2"]),
                (f"{perp.name} increases the metabolism of {victim.name}", []),
            ]
            label = f"PK Metabolism/Metabolism/{direction}/Induction"
        else:
            evidence = [f"{a.name} can cause bleeding.", f"{b.name} can cause bleeding."]
            steps = [
                (f"{a.name} causes bleeding effects", ["E1"]),
                (f"{b.name} causes bleeding effects", ["E2"]),
            ]
            label = "PD Additive/Bleeding/Bidirectional/Increase"
        prompt = render_prompt(a, b, [_Evidence(f"E{j}", t) for j, t in enumerate(evidence, 1)])
        text = render_completion(steps, label, 0.9)
        parsed = parse_completion(text)
        rows.append(
            {
                "drug_a": a.drugbank_id,
                "drug_b": b.drugbank_id,
                "teacher": "synthetic",
                "sample": i,
                "prompt_hash": prompt_hash(prompt),
                "prompt": prompt,
                "evidence_ids": [f"E{j}" for j in range(1, len(evidence) + 1)],
                "text": text,
                "steps": [{"index": s.index, "text": s.text, "citations": s.citations} for s in parsed.steps],
                "answer": label,
                "confidence": 0.9,
                "gold": label,
                "correct": True,
            }
        )
    return rows
