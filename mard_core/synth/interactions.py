"""Interactions: which pairs interact (drawn where the rules say so, from the drugs' world roles, plus a small
share of generic "adverse effects" noise), which sentence the curators wrote for each, and the sentences as
listed.

A pair's label is a code: ``c < T`` (T = len(TEMPLATES)) is template ``c`` with the pair's lower index as
#Drug1, ``T + c`` the same template with the higher index as #Drug1. The plausible codes of a pair are those
some rule gives (either orientation); the world's intended label is the one the curators prefer for the two
drugs' classes (a seeded per class pair ranking, Zipf-weighted so common sentences are preferred more often);
the written label follows it with probability ``curator_follow``, else it is another plausible code; label
noise and disagreeing listings come on top (see :class:`~mard_core.synth.config.WorldConfig`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from mard_core.synth.config import WorldConfig
from mard_core.synth.drugs import Drug
from mard_core.synth.world import NOISE_TEMPLATE, RULES, TEMPLATES, Template

ZIPF_EXPONENT = 1.0  # template weight = 1 / rank**ZIPF_EXPONENT, rank = position in TEMPLATES
NOISE_SHARE = 0.03  # random pairs with the generic "adverse effects" sentence
LINEBREAK_SHARE = 0.005  # listings whose description has a newline and indentation inside
T = len(TEMPLATES)
NOISE = next(k for k, t in enumerate(TEMPLATES) if t.id == NOISE_TEMPLATE)
SYMMETRIC = np.array([t.symmetric for t in TEMPLATES])
RANK = np.arange(1, T + 1, dtype=np.float64)


@dataclass(frozen=True)
class Pairs:
    """Interacting pairs of drug indices ``lo < hi`` and their label codes (see the module docstring)."""

    lo: np.ndarray  # int32
    hi: np.ndarray  # int32
    intended: np.ndarray  # int16: the world's label
    written: np.ndarray  # int16: what the listings state
    alt: np.ndarray  # int16: what the disagreeing listing states instead, or -1
    alt_side: np.ndarray  # int8: 0/1, the listing under lo/hi that states ``alt``
    linebreak: np.ndarray  # (m, 2) bool: the listing under lo/hi has a line break

    def take(self, rows: np.ndarray) -> Pairs:
        """The pairs at ``rows`` (indices or a mask)."""
        return Pairs(*(getattr(self, f.name)[rows] for f in fields(self)))

    def remap(self, index: np.ndarray) -> Pairs:
        """Drug indices mapped through ``index`` (old -> new, order-preserving)."""
        return Pairs(index[self.lo].astype(np.int32), index[self.hi].astype(np.int32), *self.labels())

    def labels(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, f.name) for f in fields(self)[2:])

    @staticmethod
    def concat(parts: Sequence[Pairs]) -> Pairs:
        return Pairs(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Pairs)))

    def resolved(self) -> np.ndarray:
        """The code the label stage keeps: the lower id's listing (``alt`` where that listing disagrees)."""
        return np.where((self.alt >= 0) & (self.alt_side == 0), self.alt, self.written)


def canonical(codes: np.ndarray) -> np.ndarray:
    """Codes with a symmetric template's two orientations made one."""
    t = codes % T
    return np.where(SYMMETRIC[t], t, codes)


def preference_keys(seed: int, classes: int) -> np.ndarray:
    """(perpetrator class, victim class, template) -> log preference key; the curators write the plausible
    code of highest key. Keys are Gumbel-like draws scaled by template rank (Efraimidis-Spirakis), so a
    template is preferred in proportion to its Zipf weight; a symmetric template's key is symmetric."""
    u = np.random.default_rng([seed, 101]).random((classes, classes, T))
    key = np.log(u) * RANK**ZIPF_EXPONENT
    return np.where(SYMMETRIC, np.maximum(key, key.transpose(1, 0, 2)), key)


def role_matrices(drugs: Sequence[Drug], roles: Callable[[Drug], frozenset[str]]) -> tuple[np.ndarray, ...]:
    """(rules x drugs) bool: the drug has every perpetrator role / every victim role of the rule."""
    names = sorted({r for rule in RULES for r in rule.perpetrator + rule.victim})
    pos = {r: k for k, r in enumerate(names)}
    has = np.zeros((len(names), len(drugs)), dtype=bool)
    for i, drug in enumerate(drugs):
        for r in roles(drug):
            if r in pos:
                has[pos[r], i] = True
    perp = np.array([has[[pos[r] for r in rule.perpetrator]].all(0) for rule in RULES])
    victim = np.array([has[[pos[r] for r in rule.victim]].all(0) for rule in RULES])
    return perp.reshape(len(RULES), len(drugs)), victim.reshape(len(RULES), len(drugs))


_RULES_OF = [[k for k, rule in enumerate(RULES) if rule.template == t.id] for t in TEMPLATES]


def plausible(matrices: tuple[np.ndarray, ...], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(m, 2T) bool: the codes some rule gives the pairs; a symmetric template has its code ``t`` only."""
    perp, victim = matrices
    out = np.zeros((len(lo), 2 * T), dtype=bool)
    for t, rules in enumerate(_RULES_OF):
        if not rules:
            continue
        fwd = (perp[rules][:, lo] & victim[rules][:, hi]).any(0)
        rev = (perp[rules][:, hi] & victim[rules][:, lo]).any(0)
        if SYMMETRIC[t]:
            out[:, t] = fwd | rev
        else:
            out[:, t], out[:, T + t] = fwd, rev
    return out


def plan_pairs(
    drugs: list[Drug], fixture_mask: np.ndarray, n_target: float, gen: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (lo, hi, is noise) drawn rule by rule from the drugs' world roles towards ``n_target`` in all
    (none between two fixture drugs), then the generic noise share."""
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
    firsts, seconds = [], []
    for rule, p, v in live:
        candidates = p.size * v.size
        share = t_weight[rule.template] / total * candidates / t_candidates[rule.template]
        k = min(max(1, round(n_target * (1 - NOISE_SHARE) * share)), 3 * candidates) if n_target > 0 else 0
        firsts.append(draw(p, k))
        seconds.append(draw(v, k))

    def dedupe(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = (a != b) & ~(fixture_mask[a] & fixture_mask[b])
        lo, hi = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
        first_seen = np.sort(np.unique(lo * n + hi, return_index=True)[1])
        return lo[first_seen], hi[first_seen], first_seen

    lo, hi, _ = dedupe(np.concatenate(firsts), np.concatenate(seconds))
    k = round(len(lo) * NOISE_SHARE / (1 - NOISE_SHARE))  # noise is a share of the realised pairs
    everyone = np.arange(n, dtype=np.int64)
    m = len(lo)
    lo, hi, source = dedupe(np.concatenate([lo, draw(everyone, k)]), np.concatenate([hi, draw(everyone, k)]))
    return lo.astype(np.int32), hi.astype(np.int32), source >= m


def curate(
    lo: np.ndarray,
    hi: np.ndarray,
    noise: np.ndarray,
    options: np.ndarray,
    keys: np.ndarray,
    classes: np.ndarray,
    cfg: WorldConfig,
    gen: np.random.Generator,
) -> Pairs:
    """The pairs' intended and written labels: ``options`` (m, 2T) are their plausible codes (world roles),
    ``keys`` the class preference table, ``classes`` each drug's class index."""
    m = len(lo)
    draws = gen.random((m, 6))  # fixed number of draws per pair, whatever the settings
    pick = gen.random((m, 2 * T))
    wrong = gen.integers(0, 2 * T, m)
    side = gen.integers(0, 2, m).astype(np.int8)
    ca, cb = classes[lo], classes[hi]
    score = np.where(options, np.concatenate([keys[ca, cb], keys[cb, ca]], axis=1), -np.inf)
    has_option = options.any(1) & ~noise
    intended = np.where(has_option, score.argmax(1), NOISE).astype(np.int16)
    others = options & (np.arange(2 * T) != intended[:, None])
    other = np.where(others, pick, -1.0).argmax(1)
    deviate = has_option & others.any(1) & (draws[:, 0] >= cfg.curator_follow)
    written = np.where(deviate, other, intended).astype(np.int16)
    wrong = np.where(wrong % T == NOISE, (wrong + 1) % (2 * T), wrong)  # any other sentence but the generic
    mislabel = has_option & (draws[:, 1] < cfg.label_noise) & (canonical(wrong) != canonical(written))
    written = np.where(mislabel, wrong, written).astype(np.int16)
    disagree = has_option & (draws[:, 2] < cfg.disagree_share)
    alt_other = np.where(others & (canonical(np.arange(2 * T)) != canonical(written)[:, None]), pick, -1.0)
    alt = np.where(alt_other.max(1) >= 0, alt_other.argmax(1), NOISE)
    alt = np.where(disagree, alt, -1).astype(np.int16)
    flip = SYMMETRIC[written % T] & (draws[:, 3] < 0.5)  # either drug first in a symmetric sentence
    written = np.where(flip, written % T + T, written).astype(np.int16)
    linebreak = draws[:, 4:6] < LINEBREAK_SHARE
    return Pairs(lo, hi, intended, written, alt, side, linebreak)


def sentence(code: int, lo_name: str, hi_name: str) -> str:
    """The sentence of ``code`` for a pair whose lower/higher index drugs have these names."""
    d1, d2 = (lo_name, hi_name) if code < T else (hi_name, lo_name)
    return TEMPLATES[code % T].text.replace("#Drug1", d1).replace("#Drug2", d2)


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
