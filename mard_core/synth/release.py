"""The release: :func:`write_release` and :func:`evolve_release`, what they count (:class:`SynthTruth`), the
world sidecar beside the release and the optional truth table."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mard_core.errors import InputError
from mard_core.stage import sha256_file as file_sha256
from mard_core.stage import write_atomic
from mard_core.synth.config import WorldConfig
from mard_core.synth.drugs import FIRST_CREATED, Drug, Fixture, load_fixture
from mard_core.synth.history import Params, Step, World, build_world, oracle
from mard_core.synth.interactions import Pairs, T, match_template, sentence
from mard_core.synth.render import render_pathway, write_xml
from mard_core.synth.world import TEMPLATE_BY_ID, TEMPLATES

SYNTH_VERSION = "2"  # 2: incomplete records, class-curated labels, noise, the world sidecar, evolution
DEFAULT_FIXTURE = Path(__file__).resolve().parents[1] / "data" / "real_drugs.xml"
DEFAULT_INTERACTIONS_PER_DRUG = 200.0
DEFAULT_EXPORTED_ON = "2026-04-02"

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
        pa.field("intended_template", pa.string()),  # the world's label; null for a fixture sentence
        pa.field("intended_perpetrator", pa.string()),  # its #Drug1; null if symmetric
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
    - template_counts / family_counts: pairs per template id / family of the pair's label (as the label
      stage resolves its listings).
    - world: the oracle figures of :func:`mard_core.synth.history.oracle` and what the last evolution step
      changed (also in the sidecar).
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
    world: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_release(
    out: Path,
    n_drugs: int,
    seed: int,
    *,
    fixture: Path | None = DEFAULT_FIXTURE,
    interactions_per_drug: float = DEFAULT_INTERACTIONS_PER_DRUG,
    exported_on: str = DEFAULT_EXPORTED_ON,
    world: WorldConfig | None = None,
    truth_path: Path | None = None,
) -> SynthTruth:
    """Write a DrugBank 5.1 full-database release of ``n_drugs`` synthetic drugs merged with ``fixture``,
    and its sidecar ``<out>.world.json`` (:func:`sidecar_path`: the world's parameters and oracle figures).

    ``out`` ending in ``.zip`` gets a zip with the one member "full database.xml" (DEFLATE, fixed timestamp),
    anything ending in ``.xml`` the plain XML. ``interactions_per_drug`` is the target mean number of
    interaction partners per drug; the realised mean is lower where the drugs' mechanisms allow fewer pairs.
    ``world`` (default ``WorldConfig()``) says how the written records and sentences depart from the world.
    ``truth_path`` (.parquet), if given, receives one row per pair (TRUTH_SCHEMA). Same inputs, same bytes.
    Every file is written atomically.
    """
    _check_out(out)
    if isinstance(n_drugs, bool) or not isinstance(n_drugs, int) or n_drugs < 0:
        raise InputError(f"n_drugs must be a non-negative integer, got {n_drugs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if not (isinstance(interactions_per_drug, (int, float)) and 0 <= interactions_per_drug < float("inf")):
        raise InputError(f"interactions_per_drug must be a finite number >= 0, got {interactions_per_drug!r}")
    if _date(exported_on) <= FIRST_CREATED:
        raise InputError(f"exported_on {exported_on} must be after {FIRST_CREATED}")
    fx = load_fixture(Path(fixture)) if fixture is not None else None
    params = Params(
        n_drugs,
        seed,
        float(interactions_per_drug),
        exported_on,
        world or WorldConfig(),
        _fixture_sha(fixture),
    )
    state = build_world(params, fx)
    if len(state.drugs) < 2:
        raise InputError(
            f"a release needs at least 2 drugs, got {len(state.drugs)} (n_drugs={n_drugs} plus the fixture)"
        )
    return _write(Path(out), state, truth_path)


def evolve_release(
    previous: Path,
    out: Path,
    seed: int,
    *,
    exported_on: str | None = None,
    fixture: Path | None = DEFAULT_FIXTURE,
    truth_path: Path | None = None,
) -> SynthTruth:
    """Write the next release of ``previous``'s world to ``out`` (and its sidecar): the same drugs and ids,
    a few renamed or merged into another of their class (the merged id becomes a secondary id of the
    survivor), new drugs with new ids, new pairs, some labels corrected and missing rows filled in, exported
    on ``exported_on`` (default: 91 days after ``previous``). The world is rebuilt from ``previous``'s
    sidecar, whose recorded sha256 must match ``previous``; same ``previous`` and seed, same bytes."""
    _check_out(out)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an integer, got {seed!r}")
    params = read_params(Path(previous))
    last = _date(params.last_export)
    exported_on = exported_on or (last + dt.timedelta(days=91)).isoformat()
    if _date(exported_on) <= last:
        raise InputError(f"exported_on {exported_on} must be after {previous}'s export date {last}")
    if _fixture_sha(fixture) != params.fixture_sha256:
        raise InputError(f"{previous}: was written with another real-drug fixture than {fixture}")
    fx = load_fixture(Path(fixture)) if fixture is not None else None
    params = dataclasses.replace(params, steps=(*params.steps, Step(seed, exported_on)))
    return _write(Path(out), build_world(params, fx), truth_path)


def sidecar_path(release: Path) -> Path:
    """Where a synthetic release's world description lives: ``<release>.world.json`` beside it."""
    return Path(release).with_name(Path(release).name + ".world.json")


def read_params(release: Path) -> Params:
    """The world parameters of a synthetic release, from its sidecar (checked against the release)."""
    side = sidecar_path(release)
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
        params = Params.from_dict(data["params"])
        recorded = data["release"]["sha256"]
    except OSError as exc:
        raise InputError(f"{side}: cannot read the world sidecar of {release}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{side}: not a MARD world sidecar ({exc})") from None
    if data.get("synth_version") != SYNTH_VERSION:
        raise InputError(f"{side}: written by synth version {data.get('synth_version')}, not {SYNTH_VERSION}")
    if file_sha256(Path(release)) != recorded:
        raise InputError(f"{side}: describes another file than {release} (sha256 differs)")
    return params


def world_figures(release: Path, sha256: str) -> dict[str, Any] | None:
    """The oracle figures of a synthetic release whose sha256 is ``sha256``, from its sidecar; None for a
    release without one (a real DrugBank release) or whose sidecar describes another file."""
    side = sidecar_path(release)
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{side}: cannot read the world sidecar of {release}: {exc}") from None
    if not isinstance(data, dict) or data.get("release", {}).get("sha256") != sha256:
        return None
    figures = data.get("world")
    return figures if isinstance(figures, dict) else None


def _check_out(out: Path) -> None:
    if Path(out).suffix not in (".xml", ".zip"):
        raise InputError(f"{out}: the release must be written to a .xml or .zip path")


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InputError(f"exported_on must be an ISO date (YYYY-MM-DD), got {value!r}") from None


def _fixture_sha(fixture: Path | None) -> str | None:
    return file_sha256(Path(fixture)) if fixture is not None and Path(fixture).is_file() else None


def _write(out: Path, state: World, truth_path: Path | None) -> SynthTruth:
    """The release, its sidecar and (optionally) its truth table; what it contains."""
    drugs, pairs, fx = state.drugs, state.pairs, state.fixture
    exported = _date(state.params.last_export)
    names = {d.id: d.name for d in drugs}
    xml_bytes = write_xml(out, drugs, pairs, [render_pathway(p, names) for p in state.pathways], exported)
    fixture_pairs = _fixture_pairs(fx, drugs) if fx else []
    figures = {**oracle(state), "changes": state.changes}
    sidecar = {
        "synth_version": SYNTH_VERSION,
        "release": {"file": out.name, "sha256": file_sha256(out), "exported_on": exported.isoformat()},
        "params": state.params.to_dict(),
        "world": figures,
    }
    write_atomic(
        sidecar_path(out), lambda p: p.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    )
    if truth_path is not None:
        _write_truth(Path(truth_path), drugs, pairs, fixture_pairs)
    resolved = pairs.resolved() % T
    counts = Counter({TEMPLATES[k].id: int(c) for k, c in enumerate(np.bincount(resolved, minlength=T)) if c})
    counts.update(row[3] or "unmatched" for row in fixture_pairs)
    families: Counter[str] = Counter()
    for template_id, c in counts.items():
        families[TEMPLATE_BY_ID[template_id].family if template_id in TEMPLATE_BY_ID else "unmatched"] += c
    n_fixture = len(fx.drugs) if fx else 0
    return SynthTruth(
        n_drugs=len(drugs),
        n_synthetic_drugs=len(drugs) - n_fixture,
        n_fixture_drugs=n_fixture,
        n_interaction_elements=2 * len(pairs.lo) + (len(fx.listings) if fx else 0),
        n_pairs=len(pairs.lo) + len(fixture_pairs),
        n_drug_proteins=sum(len(d.attrs["links"]) for d in drugs if d.attrs) + (fx.n_proteins if fx else 0),
        n_pathways=len(state.pathways) + (len(fx.pathway_ids) if fx else 0),
        n_disagreeing_pairs=int((pairs.alt >= 0).sum()) + sum(not row[6] for row in fixture_pairs),
        xml_bytes=xml_bytes,
        template_counts=dict(sorted(counts.items())),
        family_counts=dict(sorted(families.items())),
        world=figures,
    )


def _fixture_pairs(
    fx: Fixture, drugs: list[Drug]
) -> list[tuple[str, str, str | None, str | None, str | None, str, bool, str | None, str | None]]:
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
                template.id if template else None,
                perpetrator,
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
    for s in range(0, len(pairs.lo), size):
        rows: dict[str, list] = {k: [] for k in TRUTH_SCHEMA.names}
        for lo, hi, written, intended, alt in zip(
            pairs.lo[s : s + size].tolist(),
            pairs.hi[s : s + size].tolist(),
            pairs.written[s : s + size].tolist(),
            pairs.intended[s : s + size].tolist(),
            pairs.alt[s : s + size].tolist(),
            strict=True,
        ):
            template, wanted = TEMPLATES[written % T], TEMPLATES[intended % T]
            rows["drug_a"].append(ids[lo])
            rows["drug_b"].append(ids[hi])
            rows["perpetrator"].append(None if template.symmetric else ids[lo if written < T else hi])
            rows["template_id"].append(template.id)
            rows["family"].append(template.family)
            rows["sentence"].append(sentence(written, names[lo], names[hi]))
            rows["listings_agree"].append(alt < 0)
            rows["intended_template"].append(wanted.id)
            rows["intended_perpetrator"].append(None if wanted.symmetric else ids[lo if intended < T else hi])
        yield rows
