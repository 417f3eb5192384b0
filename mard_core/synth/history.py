"""The world behind a release and its history: :func:`build_world` draws it from its :class:`Params` (the
first release's settings and every later release's :class:`Step`), so a release's sidecar is all it takes to
rebuild its world and write the next release; :func:`oracle` says how far the written release departs from
it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from mard_core.errors import InputError
from mard_core.synth.config import WorldConfig
from mard_core.synth.drugs import (
    Drug,
    Fixture,
    Pathway,
    build_drugs,
    draw_pathways,
    link_evidence,
    record_categories,
    record_roles,
    synthetic_drug,
)
from mard_core.synth.interactions import (
    NOISE,
    Pairs,
    T,
    canonical,
    curate,
    plan_pairs,
    plausible,
    preference_keys,
    role_matrices,
    sentence,
)
from mard_core.synth.names import IdPool, Names
from mard_core.synth.world import ARCHETYPES, MECHANISM_LINKS

# What one release step changes, as shares of the synthetic drugs / of the pairs (at least one of each kind).
RENAME_SHARE = 0.01  # renamed drugs (the old name becomes a synonym)
MERGE_SHARE = 0.005  # drugs merged into another of their class (their id becomes the survivor's secondary id)
NEW_DRUG_SHARE = 0.05  # new drugs, with new ids
NEW_PAIR_SHARE = 0.03  # new pairs between drugs of the previous release
CORRECT_SHARE = 0.3  # of the pairs whose label departs from the world's: corrected to it
FILL_SHARE = 0.1  # of the rows missing from records: filled in


@dataclass(frozen=True)
class Step:
    """One later release: its seed and export date."""

    seed: int
    exported_on: str


@dataclass(frozen=True)
class Params:
    """Everything a release's world is drawn from (stored in its sidecar)."""

    n_drugs: int
    seed: int
    interactions_per_drug: float
    exported_on: str
    world: WorldConfig
    fixture_sha256: str | None
    steps: tuple[Step, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Params:
        return cls(
            **{
                **data,
                "world": WorldConfig(**data["world"]),
                "steps": tuple(Step(**s) for s in data["steps"]),
            }
        )

    @property
    def last_export(self) -> str:
        return self.steps[-1].exported_on if self.steps else self.exported_on


@dataclass
class World:
    """A world at one release: its drugs (in primary-id order), pathways, pairs and what the last step
    changed."""

    params: Params
    fixture: Fixture | None
    drugs: list[Drug]
    pathways: list[Pathway]
    pairs: Pairs
    names: Names
    ids: IdPool
    keys: np.ndarray
    class_index: dict[str, int]
    changes: dict[str, Any] = field(default_factory=dict)

    def classes(self) -> np.ndarray:
        return np.array([self.class_index[d.klass] for d in self.drugs], dtype=np.int64)

    def fixture_mask(self) -> np.ndarray:
        return np.array([d.arch is None for d in self.drugs])

    def curate(self, lo: np.ndarray, hi: np.ndarray, noise: np.ndarray, gen: np.random.Generator) -> Pairs:
        """Intended and written labels of new pairs, from the drugs' world roles (in blocks of pairs)."""
        matrices, classes, cfg = (
            role_matrices(self.drugs, lambda d: d.roles),
            self.classes(),
            self.params.world,
        )
        blocks = [
            curate(lo[s], hi[s], noise[s], plausible(matrices, lo[s], hi[s]), self.keys, classes, cfg, gen)
            for s in _blocks(len(lo))
        ]
        return Pairs.concat(blocks)


def build_world(params: Params, fx: Fixture | None) -> World:
    """The world of ``params``: the first release's, then each step applied in turn."""
    rng = random.Random(params.seed)
    names, ids = Names(rng, set(fx.names) if fx else set()), IdPool(fx.ids if fx else set())
    exported = dt.date.fromisoformat(params.exported_on)
    drugs = build_drugs(params.n_drugs, fx, rng, exported, params.world.missing_share, names, ids)
    pathways = draw_pathways(drugs, rng)
    class_index = {
        k: i
        for i, k in enumerate([a.key for a in ARCHETYPES] + sorted(d.id for d in (fx.drugs if fx else [])))
    }
    world = World(
        params,
        fx,
        drugs,
        pathways,
        _no_pairs(),
        names,
        ids,
        preference_keys(params.seed, len(class_index)),
        class_index,
    )
    gen = np.random.default_rng(params.seed)
    lo, hi, noise = plan_pairs(drugs, world.fixture_mask(), _target(world), gen)
    world.pairs = world.curate(lo, hi, noise, gen)
    previous = exported
    for k, step in enumerate(params.steps, 1):
        exported = dt.date.fromisoformat(step.exported_on)
        if exported <= previous:
            raise InputError(f"release {k}: exported_on {step.exported_on} must be after {previous}")
        _evolve(world, step, k, previous, exported)
        previous = exported
    return world


def _blocks(m: int, size: int = 50_000) -> list[slice]:
    return [slice(s, s + size) for s in range(0, m, size)] or [slice(0, 0)]


def _no_pairs() -> Pairs:
    empty = np.zeros(0, dtype=np.int32)
    codes = np.zeros(0, dtype=np.int16)
    return Pairs(empty, empty, codes, codes, codes, np.zeros(0, np.int8), np.zeros((0, 2), bool))


def _target(world: World) -> float:
    return len(world.drugs) * world.params.interactions_per_drug / 2


def _count(share: float, n: int) -> int:
    return min(n, max(1, round(share * n))) if n else 0


def _evolve(world: World, step: Step, k: int, previous: dt.date, exported: dt.date) -> None:
    """Apply one release step in place: renames, merges, filled rows, corrections, new drugs, new pairs."""
    rng = random.Random(f"{world.params.seed}/{k}/{step.seed}")
    gen = np.random.default_rng([world.params.seed, k, step.seed])
    world.names.rng = rng
    drugs, updated = world.drugs, exported.isoformat()
    synthetic = [i for i, d in enumerate(drugs) if d.attrs is not None]
    changes: dict[str, Any] = {"renamed": {}, "merged": {}}
    for i in sorted(rng.sample(synthetic, _count(RENAME_SHARE, len(synthetic)))):
        drug = drugs[i]
        assert drug.arch is not None and drug.attrs is not None
        old, drug.name = drug.name, world.names.make(rng.choice(drug.arch.stems), "plain", None)
        drug.attrs.update(synonym=old, updated=updated)
        changes["renamed"][drug.id] = [old, drug.name]
    by_class: dict[str, list[int]] = {}
    for i in synthetic:
        if drugs[i].id not in changes["renamed"]:
            by_class.setdefault(drugs[i].klass, []).append(i)
    merged: set[int] = set()
    for _ in range(_count(MERGE_SHARE, len(synthetic))):
        groups = sorted(c for c, members in by_class.items() if len(members) >= 2)
        if not groups:
            break
        members = by_class[rng.choice(groups)]
        survivor, gone = sorted(rng.sample(members, 2))
        members.remove(survivor)
        members.remove(gone)
        _merge(world, survivor, gone, updated)
        merged.add(gone)
        changes["merged"][drugs[gone].id] = drugs[survivor].id
    changes["filled_rows"] = sum(_fill(d, rng, updated) for d in drugs if d.attrs is not None)
    keep = np.array([i not in merged for i in range(len(drugs))])
    pairs = world.pairs
    alive = keep[pairs.lo] & keep[pairs.hi]
    changes["removed_pairs"] = int((~alive).sum())
    pairs = pairs.take(alive).remap(np.cumsum(keep) - 1)
    world.drugs = drugs = [d for i, d in enumerate(drugs) if keep[i]]
    departs = np.flatnonzero(canonical(pairs.resolved()) != canonical(pairs.intended))
    fix = departs[gen.random(len(departs)) < CORRECT_SHARE]
    written, alt = pairs.written.copy(), pairs.alt.copy()
    written[fix], alt[fix] = pairs.intended[fix], -1
    pairs = dataclasses.replace(pairs, written=written, alt=alt)
    changes["corrected_pairs"] = len(fix)
    created_after = previous + dt.timedelta(days=1)
    weights = [a.weight for a in ARCHETYPES]
    new = [
        synthetic_drug(
            world.ids.take("DB"),
            "plain",
            None,
            rng.choices(ARCHETYPES, weights)[0],
            world.names,
            world.ids,
            rng,
            exported,
            world.params.world.missing_share,
            created_after,
        )
        for _ in range(_count(NEW_DRUG_SHARE, len(synthetic)))
    ]
    changes["new_drugs"] = [d.id for d in new]
    order = sorted(range(len(drugs) + len(new)), key=lambda i: (drugs + new)[i].id)
    index = np.empty(len(order), dtype=np.int64)
    index[order] = np.arange(len(order))
    world.drugs = drugs = [(drugs + new)[i] for i in order]
    world.pairs = pairs = pairs.remap(index)
    is_new = np.zeros(len(drugs), dtype=bool)
    is_new[index[len(drugs) - len(new) :]] = True
    lo, hi, noise = plan_pairs(drugs, world.fixture_mask(), _target(world), gen)
    fresh = ~np.isin(lo.astype(np.int64) * len(drugs) + hi, pairs.lo.astype(np.int64) * len(drugs) + pairs.hi)
    old_pairs = np.flatnonzero(fresh & ~(is_new[lo] | is_new[hi]))
    chosen = np.zeros(len(lo), dtype=bool)
    chosen[fresh & (is_new[lo] | is_new[hi])] = True
    chosen[gen.permutation(old_pairs)[: _count(NEW_PAIR_SHARE, len(pairs.lo))]] = True
    added = world.curate(lo[chosen], hi[chosen], noise[chosen], gen)
    changes["new_pairs"] = len(added.lo)
    merged_pairs = Pairs.concat([pairs, added])
    world.pairs = merged_pairs.take(np.lexsort((merged_pairs.hi, merged_pairs.lo)))
    world.changes = changes


def _merge(world: World, survivor: int, gone: int, updated: str) -> None:
    """``gone`` merged into ``survivor``: its id a secondary id of the survivor, its pathways the
    survivor's."""
    keep, lost = world.drugs[survivor], world.drugs[gone]
    assert keep.attrs is not None and keep.pathways is not None and lost.pathways is not None
    keep.attrs["secondary"] = [*keep.attrs["secondary"], lost.id]
    keep.attrs["updated"] = updated
    for p in lost.pathways:
        pathway = world.pathways[p]
        members = tuple(dict.fromkeys(keep.id if m == lost.id else m for m in pathway.members))
        world.pathways[p] = dataclasses.replace(pathway, members=members)
        if p not in keep.pathways:
            keep.pathways.append(p)


def _fill(drug: Drug, rng: random.Random, updated: str) -> int:
    """Curators fill in some of a record's missing rows; returns how many."""
    assert drug.attrs is not None
    hidden = drug.attrs["hidden"]
    filled = [lk for lk in hidden if rng.random() < FILL_SHARE]
    if filled:
        drug.attrs["hidden"] = [lk for lk in hidden if lk not in filled]
        drug.attrs["links"] = [*drug.attrs["links"], *filled]
        drug.attrs["categories"] = record_categories(drug.attrs["class_categories"], drug.attrs["links"])
        drug.attrs["updated"] = updated
    return len(filled)


@cache
def code_labels() -> tuple[str, ...]:
    """The taxonomy label (drug_a = the pair's lower index) the label stage gives each code's sentence."""
    from mard_core.labeling import classify  # the label stage's own classifier: the oracle counts its labels

    a, b = "Xavolinib", "Yotrepamab"
    return tuple(str(classify(sentence(c, a, b), [a], [b]).label) for c in range(2 * T))


def oracle(world: World) -> dict[str, Any]:
    """How far the written release departs from its world, over the generated pairs.

    - ceiling: share of pairs whose label (as the label stage resolves a pair's listings: the lower id's)
      is the world's intended label: what a system that knew the world could score at best.
    - rules_on_record: share of labels some rule derives from the two drugs' written records (a pair with
      the generic sentence counts when no rule applies); rules_on_world the same from the world's roles.
    - missing_row_share: mechanism-bearing protein rows left out of synthetic records.
    - misses: the pairs (``lower id|higher id``) whose label departs from the world's, so that the ceiling of
      any subset of pairs (a split's test part) can be measured.
    """
    pairs, m = world.pairs, len(world.pairs.lo)
    labels = np.array(code_labels())
    label_id = np.unique(labels, return_inverse=True)[1]
    resolved = pairs.resolved().astype(np.int64)
    same = label_id[resolved] == label_id[pairs.intended.astype(np.int64)]

    def derivable(roles: Any) -> float:
        matrices, hits = role_matrices(world.drugs, roles), 0
        for s in _blocks(m):
            options = plausible(matrices, pairs.lo[s], pairs.hi[s])
            hit = (options & (label_id[None, :] == label_id[resolved[s]][:, None])).any(1)
            hits += int((hit | ((resolved[s] % T == NOISE) & ~options.any(1))).sum())
        return hits / m if m else 1.0

    rows = [
        bool(MECHANISM_LINKS.intersection(link_evidence([lk])))
        for d in world.drugs
        if d.attrs is not None
        for lk in d.attrs["links"] + d.attrs["hidden"]
    ]
    hidden = sum(len(d.attrs["hidden"]) for d in world.drugs if d.attrs is not None)
    return {
        "n_pairs": m,
        "ceiling": round(float(same.mean()) if m else 1.0, 4),
        "ceiling_sentence": round(
            float((canonical(pairs.resolved()) == canonical(pairs.intended)).mean()) if m else 1.0, 4
        ),
        "rules_on_record": round(derivable(record_roles), 4),
        "rules_on_world": round(derivable(lambda d: d.roles), 4),
        "missing_row_share": round(hidden / max(1, sum(rows)), 4),
        "n_disagreeing_pairs": int((pairs.alt >= 0).sum()),
        "n_generic_pairs": int((pairs.intended == NOISE).sum()),
        "misses": sorted(
            f"{world.drugs[lo].id}|{world.drugs[hi].id}"
            for lo, hi in zip(pairs.lo[~same].tolist(), pairs.hi[~same].tolist(), strict=True)
        ),
    }
