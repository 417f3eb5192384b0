"""Step labels without humans: a rule verifier against DrugBank and the gold label, and Monte-Carlo rollouts.

Two independent sources label each reasoning step:

* :func:`mard_core.verifier.verify_step` checks the step's claim (read by the grammar of
  :mod:`mard_core.prompts`): protein claims against the ``drug_proteins`` table, process/effect claims against
  the gold label (perpetrator, modality, mechanism family), citations against the prompt's evidence ids;
  :func:`label_trajectories` applies it to every step of a trajectory table.
* :func:`rollout_labels` (Math-Shepherd style) samples ``k`` continuations from each step prefix and scores
  the step by the share that reach the gold answer.

:func:`agreement` reports how the two sources agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import polars as pl

from mard_core.chains import Completion
from mard_core.errors import InputError
from mard_core.negatives import CITATION_SWAPPED, WRONG_PROTEIN, hard_negatives
from mard_core.prompts import parse_completion
from mard_core.taxonomy import Taxonomy
from mard_core.teachers.base import Backend, GenerationParams
from mard_core.verifier import (
    CORRECT,
    UNVERIFIABLE,
    VERDICTS,
    Facts,
    StepVerdict,
    parse_step,
    require_columns,
    verify_step,
)

TRAJECTORY_KEY = ("split", "part", "drug_a", "drug_b", "teacher", "sample")
"""Columns that identify one trajectory in the step-label table."""

_EVIDENCE_LINE = re.compile(r"^\[(E\d+)\]", re.MULTILINE)

CompleteFn = Callable[[list[str], int], list[list[str]]]
"""``complete_fn(prompts, k)`` -> ``k`` sampled continuations of each prompt, in prompt order."""


def _evidence_ids(row: Mapping[str, Any]) -> list[str] | None:
    if row.get("evidence_ids") is not None:
        return list(row["evidence_ids"])
    if row.get("prompt"):
        return _EVIDENCE_LINE.findall(row["prompt"])
    return None


def label_trajectory(
    row: Mapping[str, Any], facts: Facts, taxonomy: Taxonomy | None = None
) -> list[StepVerdict]:
    """Verdicts of every step of one trajectory row (schemas.TRAJECTORIES)."""
    evidence = _evidence_ids(row)
    return [
        verify_step(
            parse_step(s, row["drug_a"], row["drug_b"], facts),
            row["drug_a"],
            row["drug_b"],
            row["gold"],
            facts,
            evidence,
            taxonomy,
        )
        for s in row["steps"] or []
    ]


def label_trajectories(df: pl.DataFrame, facts: Facts, taxonomy: Taxonomy | None = None) -> pl.DataFrame:
    """One row per step: the trajectory key, ``step`` (1-based), ``label``, ``reason`` and ``correct``."""
    require_columns(df, (*TRAJECTORY_KEY, "gold", "steps", "evidence_ids", "correct"), "trajectories table")
    rows: list[dict[str, Any]] = []
    for row in df.iter_rows(named=True):
        key = {c: row[c] for c in TRAJECTORY_KEY}
        for step, verdict in zip(row["steps"] or [], label_trajectory(row, facts, taxonomy), strict=True):
            rows.append(
                {
                    **key,
                    "step": step["index"],
                    "label": verdict.label,
                    "reason": verdict.reason,
                    "correct": row["correct"],
                }
            )
    schema = {c: df.schema[c] for c in TRAJECTORY_KEY} | {
        "step": pl.Int32,
        "label": pl.String,
        "reason": pl.String,
        "correct": pl.Boolean,
    }
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


def rollout_labels(
    rows: Sequence[Mapping[str, Any]], complete_fn: CompleteFn, k: int, gold: Sequence[str] | None = None
) -> list[list[float]]:
    """Per step, the share of ``k`` continuations sampled after the prompt and steps 1..i reaching the gold
    answer.

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
        raise InputError(
            f"rollout_labels: complete_fn must return {k} completions for each of {len(prefixes)} prompts"
        )
    scores: list[list[float]] = [[] for _ in rows]
    for (i, done), outs in zip(owners, completions, strict=True):
        hits = 0
        for out in outs:
            answer = parse_completion(done + out).answer
            hits += answer is not None and answer.label == golds[i]
        scores[i].append(hits / k)
    return scores


# --- agreement ----------------------------------------------------------------------------------------------


def agreement(
    verifier_labels: Sequence[str], rollout_scores: Sequence[float], threshold: float = 0.5
) -> dict[str, float | int]:
    """Confusion counts, agreement rate and Cohen's kappa of the verifier vs rollouts (score >= threshold).

    One entry per step in both sequences; unverifiable steps are counted but not compared. Rate and kappa
    are NaN when undefined (nothing compared; kappa when both sources are constant and equal).
    """
    if len(verifier_labels) != len(rollout_scores):
        raise InputError(
            f"agreement: {len(verifier_labels)} verifier labels vs {len(rollout_scores)} rollout scores"
        )
    unknown = sorted(set(verifier_labels) - set(VERDICTS))
    if unknown:
        raise InputError(f"agreement: unknown verifier labels {unknown}; expected {list(VERDICTS)}")
    counts = {
        "both_correct": 0,
        "both_incorrect": 0,
        "verifier_correct_rollout_incorrect": 0,
        "verifier_incorrect_rollout_correct": 0,
    }
    for label, score in zip(verifier_labels, rollout_scores, strict=True):
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
    return {
        **counts,
        "n_steps": len(verifier_labels),
        "n_compared": n,
        "n_unverifiable": len(verifier_labels) - n,
        "agreement": rate,
        "kappa": kappa,
    }


def with_corruptions(trajectories: pl.DataFrame, proteins: Sequence[str]) -> pl.DataFrame:
    """``trajectories`` plus, for every one with steps and an answer, copies whose steps were corrupted
    programmatically (a wrong protein, a swapped citation; teacher ``<teacher>~<kind>``).

    Teachers that only write verified chains give the PRM no incorrect steps to learn from; these copies do,
    and the step verifier labels them like any other trajectory.
    """
    rows = []
    for row in trajectories.filter(
        pl.col("answer").is_not_null() & (pl.col("steps").list.len() > 0)
    ).to_dicts():
        for negative in hard_negatives(
            row["prompt"], Completion.from_row(row), {}, proteins, (WRONG_PROTEIN, CITATION_SWAPPED)
        ):
            parsed = parse_completion(negative.completion.render())
            rows.append(
                {
                    **row,
                    "teacher": f"{row['teacher']}~{negative.kind}",
                    "text": negative.completion.render(),
                    "steps": [
                        {"index": s.index, "text": s.text, "citations": s.citations} for s in parsed.steps
                    ],
                }
            )
    return pl.concat([trajectories, pl.DataFrame(rows, schema=trajectories.schema)]) if rows else trajectories
