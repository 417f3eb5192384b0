"""The release: :func:`write_release`, what it counts (:class:`SynthTruth`) and the optional truth table."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mard_core.errors import InputError
from mard_core.stage import write_atomic
from mard_core.synth.drugs import FIRST_CREATED, Drug, Fixture, build_drugs, draw_pathways, load_fixture
from mard_core.synth.interactions import Pairs, match_template, plan_pairs
from mard_core.synth.render import render_pathway, write_xml
from mard_core.synth.world import TEMPLATE_BY_ID, TEMPLATES

SYNTH_VERSION = "1"
DEFAULT_FIXTURE = Path(__file__).resolve().parents[1] / "data" / "real_drugs.xml"
DEFAULT_INTERACTIONS_PER_DRUG = 200.0

TRUTH_SCHEMA = pa.schema(
    [
        pa.field("drug_a", pa.string(), nullable=False),  # drug_a < drug_b
        pa.field("drug_b", pa.string(), nullable=False),
        pa.field(
            "perpetrator", pa.string()
        ),  # the drug named as #Drug1 of a directional template; null if symmetric
        pa.field("template_id", pa.string()),  # TEMPLATES id; null for a fixture sentence no template matches
        pa.field("family", pa.string()),
        pa.field("sentence", pa.string()),  # whitespace-normalised, names unescaped
        pa.field("listings_agree", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class SynthTruth:
    """What a written release contains, counted by the generator; an independent parse finds the same.

    - n_drugs: top-level <drug> records (synthetic + fixture); <drug> references nested in pathways are not.
    - n_interaction_elements: <drug-interaction> elements; every pair is listed under both of its drugs.
    - n_pairs: unordered drug pairs with an interaction.
    - n_drug_proteins: <target>/<enzyme>/<carrier>/<transporter> elements of top-level records (ingest emits
      one row per element, with its first polypeptide when it has one).
    - n_pathways: distinct smpdb-ids.
    - n_disagreeing_pairs: pairs whose two listings differ after whitespace normalisation.
    - template_counts / family_counts: pairs per template id / family of the pair's mechanism sentence.
    """

    n_drugs: int
    n_synthetic_drugs: int
    n_fixture_drugs: int
    n_interaction_elements: int
    n_pairs: int
    n_drug_proteins: int
    n_pathways: int
    n_disagreeing_pairs: int
    xml_bytes: int
    template_counts: dict[str, int]
    family_counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_release(
    out: Path,
    n_drugs: int,
    seed: int,
    *,
    fixture: Path | None = DEFAULT_FIXTURE,
    interactions_per_drug: float = DEFAULT_INTERACTIONS_PER_DRUG,
    exported_on: str = "2026-04-02",
    truth_path: Path | None = None,
) -> SynthTruth:
    """Write a DrugBank 5.1 full-database release of ``n_drugs`` synthetic drugs merged with ``fixture``.

    ``out`` ending in ``.zip`` gets a zip with the one member "full database.xml" (DEFLATE, fixed timestamp),
    anything ending in ``.xml`` the plain XML. ``interactions_per_drug`` is the target mean number of
    interaction partners per drug; the realised mean is lower where the drugs' mechanisms allow fewer pairs.
    ``truth_path`` (.parquet), if given, receives one row per pair (TRUTH_SCHEMA). Same inputs, same bytes.
    Both files are written atomically.
    """
    out = Path(out)
    if out.suffix not in (".xml", ".zip"):
        raise InputError(f"{out}: the release must be written to a .xml or .zip path")
    if isinstance(n_drugs, bool) or not isinstance(n_drugs, int) or n_drugs < 0:
        raise InputError(f"n_drugs must be a non-negative integer, got {n_drugs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if not (isinstance(interactions_per_drug, (int, float)) and 0 <= interactions_per_drug < float("inf")):
        raise InputError(f"interactions_per_drug must be a finite number >= 0, got {interactions_per_drug!r}")
    try:
        exported = dt.date.fromisoformat(exported_on)
    except (TypeError, ValueError):
        raise InputError(f"exported_on must be an ISO date (YYYY-MM-DD), got {exported_on!r}") from None
    if exported <= FIRST_CREATED:
        raise InputError(f"exported_on {exported_on} must be after {FIRST_CREATED}")
    fx = load_fixture(Path(fixture)) if fixture is not None else None
    rng = random.Random(seed)
    drugs = build_drugs(n_drugs, fx, rng, exported)
    if len(drugs) < 2:
        raise InputError(
            f"a release needs at least 2 drugs, got {len(drugs)} (n_drugs={n_drugs} plus the fixture)"
        )
    pathways = draw_pathways(drugs, rng)
    fixture_mask = np.array([d.arch is None for d in drugs])
    pairs = plan_pairs(
        drugs, fixture_mask, len(drugs) * interactions_per_drug / 2, np.random.default_rng(seed)
    )
    xml_bytes = write_xml(out, drugs, pairs, [render_pathway(p, drugs) for p in pathways], exported)
    fixture_pairs = _fixture_pairs(fx, drugs) if fx else []
    if truth_path is not None:
        _write_truth(Path(truth_path), drugs, pairs, fixture_pairs)
    counts = Counter(
        {
            TEMPLATES[k].id: int(c)
            for k, c in enumerate(np.bincount(pairs.template, minlength=len(TEMPLATES)))
            if c
        }
    )
    counts.update(row[3] or "unmatched" for row in fixture_pairs)
    families: Counter[str] = Counter()
    for template_id, c in counts.items():
        families[TEMPLATE_BY_ID[template_id].family if template_id in TEMPLATE_BY_ID else "unmatched"] += c
    n_fixture = len(fx.drugs) if fx else 0
    return SynthTruth(
        n_drugs=len(drugs),
        n_synthetic_drugs=len(drugs) - n_fixture,
        n_fixture_drugs=n_fixture,
        n_interaction_elements=2 * len(pairs.first) + (len(fx.listings) if fx else 0),
        n_pairs=len(pairs.first) + len(fixture_pairs),
        n_drug_proteins=sum(len(d.attrs["links"]) for d in drugs if d.attrs) + (fx.n_proteins if fx else 0),
        n_pathways=len(pathways) + (len(fx.pathway_ids) if fx else 0),
        n_disagreeing_pairs=int((pairs.disagree_side >= 0).sum()) + sum(not row[6] for row in fixture_pairs),
        xml_bytes=xml_bytes,
        template_counts=dict(sorted(counts.items())),
        family_counts=dict(sorted(families.items())),
    )


def _fixture_pairs(
    fx: Fixture, drugs: list[Drug]
) -> list[tuple[str, str, str | None, str | None, str | None, str, bool]]:
    """Truth rows of the fixture's own pairs: the sentence of the lower id's listing, matched to a
    template."""
    name = {d.id: d.name for d in drugs}
    listed: dict[tuple[str, str], dict[str, str]] = {}
    for owner, partner, description in fx.listings:
        pair = (min(owner, partner), max(owner, partner))
        listed.setdefault(pair, {})[owner] = " ".join(description.split())
    rows = []
    for (a, b), by_owner in sorted(listed.items()):
        sentence = by_owner[a] if a in by_owner else by_owner[b]  # the pair's owner listed it
        match = match_template(sentence, name[a], name[b])
        template, perpetrator = (
            (match[0], None if match[0].symmetric else (a if match[1] == name[a] else b))
            if match
            else (None, None)
        )
        rows.append(
            (
                a,
                b,
                perpetrator,
                template.id if template else None,
                template.family if template else None,
                sentence,
                len(set(by_owner.values())) == 1,
            )
        )
    return rows


def _write_truth(path: Path, drugs: list[Drug], pairs: Pairs, fixture_rows: list[tuple]) -> None:
    """One Parquet row per pair (TRUTH_SCHEMA), fixture pairs first, written in batches."""
    ids = [d.id for d in drugs]
    names = [d.name for d in drugs]

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, TRUTH_SCHEMA) as writer:
            if fixture_rows:
                writer.write_table(
                    pa.Table.from_pylist(
                        [dict(zip(TRUTH_SCHEMA.names, row, strict=True)) for row in fixture_rows],
                        schema=TRUTH_SCHEMA,
                    )
                )
            for rows in _truth_batches(ids, names, pairs):
                writer.write_table(pa.Table.from_pydict(rows, schema=TRUTH_SCHEMA))

    write_atomic(path, write)


def _truth_batches(ids: list[str], names: list[str], pairs: Pairs, size: int = 200_000) -> Iterator[dict]:
    for s in range(0, len(pairs.first), size):
        rows: dict[str, list] = {k: [] for k in TRUTH_SCHEMA.names}
        for f, g, t, side in zip(
            pairs.first[s : s + size].tolist(),
            pairs.second[s : s + size].tolist(),
            pairs.template[s : s + size].tolist(),
            pairs.disagree_side[s : s + size].tolist(),
            strict=True,
        ):
            template = TEMPLATES[t]
            rows["drug_a"].append(ids[min(f, g)])
            rows["drug_b"].append(ids[max(f, g)])
            rows["perpetrator"].append(None if template.symmetric else ids[f])
            rows["template_id"].append(template.id)
            rows["family"].append(template.family)
            rows["sentence"].append(template.text.replace("#Drug1", names[f]).replace("#Drug2", names[g]))
            rows["listings_agree"].append(side < 0)
        yield rows
