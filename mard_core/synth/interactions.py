"""Interactions: which pairs interact and by which template, drawn where the rules say so (plus a small share
of generic "adverse effects" noise), and the sentences as listed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from mard_core.synth.drugs import Drug
from mard_core.synth.world import NOISE_TEMPLATE, RULES, TEMPLATE_BY_ID, TEMPLATES, Template

ZIPF_EXPONENT = 1.0  # template weight = 1 / rank**ZIPF_EXPONENT, rank = position in TEMPLATES
NOISE_SHARE = 0.03  # random pairs with the generic "adverse effects" sentence
DISAGREE_SHARE = 0.01  # mechanism pairs one of whose listings says the generic sentence instead
LINEBREAK_SHARE = 0.005  # listings whose description has a newline and indentation inside


@dataclass(frozen=True)
class Pairs:
    """Generated pairs in (lower index, higher index) order; #Drug1 = ``first``."""

    first: np.ndarray
    second: np.ndarray
    template: np.ndarray  # index into TEMPLATES
    disagree_side: (
        np.ndarray
    )  # -1, or 0/1: the listing under the lower/higher index says the generic sentence
    linebreak: np.ndarray  # (m, 2) bool: the listing under the lower/higher index has a line break


def plan_pairs(
    drugs: list[Drug], fixture_mask: np.ndarray, n_target: float, gen: np.random.Generator
) -> Pairs:
    """Pairs drawn rule by rule towards ``n_target`` in all (none between two fixture drugs), then the generic
    noise share; which listings disagree and which carry a line break."""
    n = len(drugs)
    weights = np.array([d.weight for d in drugs], dtype=np.float64)
    members: dict[str, list[int]] = {}
    for i, drug in enumerate(drugs):
        for role in drug.roles:
            members.setdefault(role, []).append(i)

    def pool(roles: tuple[str, ...]) -> np.ndarray:
        sets = [np.asarray(members.get(r, ()), dtype=np.int64) for r in roles]
        out = sets[0]
        for other in sets[1:]:
            out = np.intersect1d(out, other)
        return out

    def draw(candidates: np.ndarray, k: int) -> np.ndarray:
        w = weights[candidates]
        return gen.choice(candidates, size=k, p=w / w.sum())

    rank = {t.id: r for r, t in enumerate(TEMPLATES, 1)}
    live = [(rule, pool(rule.perpetrator), pool(rule.victim)) for rule in RULES]
    live = [(rule, p, v) for rule, p, v in live if p.size and v.size]
    t_weight = {rule.template: rank[rule.template] ** -ZIPF_EXPONENT for rule, _, _ in live}
    total = sum(t_weight.values())
    t_candidates: Counter[str] = Counter()
    for rule, p, v in live:
        t_candidates[rule.template] += p.size * v.size
    t_index = {t.id: k for k, t in enumerate(TEMPLATES)}
    firsts, seconds, templates = [], [], []
    for rule, p, v in live:
        candidates = p.size * v.size
        share = t_weight[rule.template] / total * candidates / t_candidates[rule.template]
        k = min(max(1, round(n_target * (1 - NOISE_SHARE) * share)), 3 * candidates) if n_target > 0 else 0
        a, b = draw(p, k), draw(v, k)
        if TEMPLATE_BY_ID[rule.template].symmetric:
            swap = gen.random(k) < 0.5
            a, b = np.where(swap, b, a), np.where(swap, a, b)
        firsts.append(a)
        seconds.append(b)
        templates.append(np.full(k, t_index[rule.template], dtype=np.int16))

    def dedupe(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = (a != b) & ~(fixture_mask[a] & fixture_mask[b])
        a, b, t = a[keep], b[keep], t[keep]
        _, first_seen = np.unique(np.minimum(a, b) * n + np.maximum(a, b), return_index=True)
        return a[first_seen], b[first_seen], t[first_seen]

    a, b, t = dedupe(np.concatenate(firsts), np.concatenate(seconds), np.concatenate(templates))
    k = round(len(a) * NOISE_SHARE / (1 - NOISE_SHARE))  # noise is a share of the realised pairs
    everyone = np.arange(n, dtype=np.int64)
    a, b, t = dedupe(
        np.concatenate([a, draw(everyone, k)]),
        np.concatenate([b, draw(everyone, k)]),
        np.concatenate([t, np.full(k, t_index[NOISE_TEMPLATE], dtype=np.int16)]),
    )
    a, b = a.astype(np.int32), b.astype(np.int32)
    m = len(a)
    disagree = (gen.random(m) < DISAGREE_SHARE) & (t != t_index[NOISE_TEMPLATE])
    side = np.where(disagree, gen.integers(0, 2, m), -1).astype(np.int8)
    return Pairs(a, b, t, side, gen.random((m, 2)) < LINEBREAK_SHARE)


def with_linebreak(text: str) -> str:
    """Break a description at its middle space with a newline and indentation, as some real exports do."""
    i = text.find(" ", len(text) // 2)
    return text if i < 0 else f"{text[:i]}\n          {text[i + 1 :]}"


def match_template(sentence: str, name_1: str, name_2: str) -> tuple[Template, str, str] | None:
    """The template ``sentence`` instantiates with these two drug names, and the names as #Drug1, #Drug2."""
    text = " ".join(sentence.split())
    for template in TEMPLATES:
        for d1, d2 in ((name_1, name_2), (name_2, name_1)):
            if template.text.replace("#Drug1", d1).replace("#Drug2", d2) == text:
                return template, d1, d2
    return None
