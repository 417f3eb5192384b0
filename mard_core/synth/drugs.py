"""The drugs of a release: the real-drug fixture's records, merged verbatim, and synthetic ones drawn from the
archetypes; action and metabolism pathways."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from mard_core.errors import InputError
from mard_core.synth.molecules import inchikey_shape, random_molecule
from mard_core.synth.names import SALTS, IdPool, Names, random_cas, random_unii
from mard_core.synth.world import (
    ARCHETYPES,
    GROUP_SETS,
    MECHANISM_LINKS,
    PK_CATEGORY_NAMES,
    PROTEINS,
    Archetype,
    Protein,
    drug_roles,
)
from schemas import PROTEIN_KINDS

NS = "http://www.drugbank.ca"
HARD_CASES = ("ester", "salt", "unicode", "punctuation")
HARD_CASE_SHARE = {"ester": 0.02, "salt": 0.02, "unicode": 0.015, "punctuation": 0.01}
FIXTURE_WEIGHT = 3.0  # well-known drugs are drawn into more interactions
FIRST_CREATED = dt.date(2005, 6, 13)


@dataclass(frozen=True)
class LinkOut:
    """A protein link as a synthetic record lists it."""

    protein: Protein
    actions: tuple[str, ...]
    known_action: str
    inhibition_strength: str
    induction_strength: str


@dataclass
class Drug:
    """One top-level record: a verbatim fixture record (``head``/``tail`` around its interactions) or
    synthetic. ``roles`` are the world's: a synthetic record may not show all of them (``attrs["hidden"]``
    holds the protein links its record leaves out; see :func:`record_roles`)."""

    id: str
    name: str
    roles: frozenset[str]
    weight: float
    head: str = ""
    tail: str = ""
    arch: Archetype | None = None
    attrs: dict[str, Any] | None = None
    pathways: list[int] | None = None

    @property
    def klass(self) -> str:
        """The drug's class: its archetype, or the drug itself for a real (fixture) drug."""
        return self.arch.key if self.arch else self.id


@dataclass(frozen=True)
class Fixture:
    """The real-drug fixture: its records and what synthetic drugs must not reuse."""

    drugs: list[Drug]
    ids: set[str]  # every drugbank id used (primary, secondary, salt)
    names: set[str]  # casefolded
    listings: list[tuple[str, str, str]]  # (owner id, partner id, description)
    n_proteins: int
    pathway_ids: set[str]


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def record_evidence(drug: etree._Element) -> tuple[set[tuple[str, str]], set[str]]:
    """(gene name, action) pairs of a record's targets/enzymes/carriers/transporters, and its category
    names."""
    links: set[tuple[str, str]] = set()
    for kind in PROTEIN_KINDS:
        for el in drug.iterfind(f"{_q(kind + 's')}/{_q(kind)}"):
            actions = [(a.text or "").strip() for a in el.iterfind(f"{_q('actions')}/{_q('action')}")]
            genes = [(g.text or "").strip() for g in el.iterfind(f"{_q('polypeptide')}/{_q('gene-name')}")]
            links.update((g, a) for g in genes for a in actions if g and a)
    cats = {
        (c.text or "").strip() for c in drug.iterfind(f"{_q('categories')}/{_q('category')}/{_q('category')}")
    }
    return links, cats


def load_fixture(path: Path) -> Fixture:
    """The fixture at ``path``, each record kept verbatim (cut where appended interactions go)."""
    try:
        root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise InputError(f"{path}: cannot read the real-drug fixture: {exc}") from None
    if root.tag != _q("drugbank"):
        raise InputError(f"{path}: root element is {root.tag!r}, expected <drugbank> in namespace {NS}")
    drugs, ids, names, listings, n_proteins, pathway_ids = [], set(), set(), [], 0, set()
    for el in root.iterfind(_q("drug")):
        primary = [
            i.text.strip() for i in el.iterfind(_q("drugbank-id")) if i.get("primary") == "true" and i.text
        ]
        name = (el.findtext(_q("name")) or "").strip()
        if len(primary) != 1 or not name:
            raise InputError(
                f"{path}: record on line {el.sourceline} needs one primary drugbank-id and a name"
            )
        drug_id = primary[0]
        record_ids = {(i.text or "").strip() for i in el.iterfind(_q("drugbank-id"))} | {
            (i.text or "").strip() for i in el.iterfind(f"{_q('salts')}/{_q('salt')}/{_q('drugbank-id')}")
        }
        if drug_id in ids or name.casefold() in names:
            raise InputError(f"{path}: duplicate drug {drug_id} / {name!r}")
        ids |= record_ids
        names.add(name.casefold())
        for ddi in el.iterfind(f"{_q('drug-interactions')}/{_q('drug-interaction')}"):
            listings.append(
                (
                    drug_id,
                    (ddi.findtext(_q("drugbank-id")) or "").strip(),
                    ddi.findtext(_q("description")) or "",
                )
            )
        n_proteins += sum(len(el.findall(f"{_q(k + 's')}/{_q(k)}")) for k in PROTEIN_KINDS)
        pathway_ids |= {
            (p.text or "").strip() for p in el.iterfind(f"{_q('pathways')}/{_q('pathway')}/{_q('smpdb-id')}")
        }
        links, cats = record_evidence(el)
        head, tail = _split_record(path, drug_id, etree.tostring(el, encoding="unicode", with_tail=False))
        drugs.append(Drug(drug_id, name, drug_roles(links, cats), FIXTURE_WEIGHT, head, tail))
    if not drugs:
        raise InputError(f"{path}: the fixture has no <drug> records")
    primary_ids = {d.id for d in drugs}
    for owner, partner, _ in listings:
        if partner not in primary_ids:
            raise InputError(
                f"{path}: drug {owner} lists interaction partner {partner!r}, not a record of the fixture"
            )
    return Fixture(drugs, ids, names, listings, n_proteins, pathway_ids)


def _split_record(path: Path, drug_id: str, text: str) -> tuple[str, str]:
    """Cut a serialised fixture record where appended interactions go (before </drug-interactions>)."""
    text = text.replace(f' xmlns="{NS}"', "", 1)
    if "<drug-interactions/>" in text:
        i = text.index("<drug-interactions/>")
        return text[:i] + "<drug-interactions>\n", "    </drug-interactions>" + text[
            i + len("<drug-interactions/>") :
        ]
    if "</drug-interactions>" not in text:
        raise InputError(f"{path}: record {drug_id} has no <drug-interactions> element")
    i = text.index("</drug-interactions>")
    return text[:i].rstrip(" "), "    " + text[i:]


def _draw_links(arch: Archetype, rng: random.Random) -> list[LinkOut]:
    picks = ([rng.choice(arch.one_of)] if arch.one_of else []) + [
        lk for lk in arch.links if rng.random() < lk.p
    ]
    merged: dict[str, dict[str, Any]] = {}
    for lk in picks:
        entry = merged.setdefault(lk.protein, {"actions": [], "inhibitor": "", "inducer": ""})
        if lk.action not in entry["actions"]:
            entry["actions"].append(lk.action)
        if lk.strength and lk.action in ("inhibitor", "inducer"):
            entry[lk.action] = rng.choice(lk.strength.split("|"))
    out, first_target = [], True
    for key, entry in merged.items():
        protein = PROTEINS[key]
        if protein.kind == "target":
            known, first_target = ("yes" if first_target else "unknown"), False
        else:
            known = "no"
        out.append(LinkOut(protein, tuple(entry["actions"]), known, entry["inhibitor"], entry["inducer"]))
    return out


def _pk_categories(links: Sequence[LinkOut]) -> set[str]:
    """DrugBank's PK categories (e.g. "Cytochrome P-450 CYP3A4 Inhibitors (strong)") implied by the links."""
    cats = set()
    for lk in links:
        gene = lk.protein.key
        prefix = f"Cytochrome P-450 {gene}" if gene.startswith("CYP") else PK_CATEGORY_NAMES.get(gene)
        if prefix is None:
            continue
        for action in lk.actions:
            if action in ("substrate", "inhibitor", "inducer"):
                cats.add(f"{prefix} {action.capitalize()}s")
        if lk.inhibition_strength and gene.startswith("CYP"):
            cats.add(f"{prefix} Inhibitors ({lk.inhibition_strength})")
        if lk.induction_strength and gene.startswith("CYP"):
            cats.add(f"{prefix} Inducers ({lk.induction_strength})")
    return cats


def link_evidence(links: Sequence[LinkOut]) -> list[tuple[str, str]]:
    """(gene name, action) pairs of protein links."""
    return [(gene, a) for lk in links for _, gene, _ in lk.protein.polypeptides for a in lk.actions]


def record_categories(class_categories: Sequence[str], links: Sequence[LinkOut]) -> list[str]:
    """A synthetic record's categories: its class's and the PK categories its listed links imply."""
    return sorted(set(class_categories) | _pk_categories(links))


def record_roles(drug: Drug) -> frozenset[str]:
    """The roles a drug's written record supports (its world roles less those only hidden links give)."""
    if drug.attrs is None or not drug.attrs["hidden"]:
        return drug.roles
    return drug_roles(link_evidence(drug.attrs["links"]), drug.attrs["categories"])


def synthetic_drug(
    drug_id: str,
    case: str,
    base: str | None,
    arch: Archetype,
    names: Names,
    ids: IdPool,
    rng: random.Random,
    exported: dt.date,
    missing_share: float,
    created_after: dt.date = FIRST_CREATED,
) -> Drug:
    """One synthetic record's content; ``case`` is the hard name case (an ester names ``base``). Each
    mechanism-bearing link is left out of the record with probability ``missing_share``."""
    name = names.make(rng.choice(arch.stems), case, base)
    links = _draw_links(arch, rng)
    hidden = [
        lk
        for lk, u in [(lk, rng.random()) for lk in links]  # one draw per link whatever the share
        if u < missing_share and MECHANISM_LINKS.intersection(link_evidence([lk]))
    ]
    class_cats = sorted(c for c, p in arch.categories if rng.random() < p)
    world_cats = record_categories(class_cats, links)
    listed = [lk for lk in links if lk not in hidden]
    molecule = None if arch.biotech else random_molecule(rng)
    groups = (
        ("experimental",)
        if arch.key == "experimental_compound"
        else rng.choices([g for g, _ in GROUP_SETS], [w for _, w in GROUP_SETS])[0]
    )
    atc = []
    if arch.atc:
        atc.append(rng.choice(arch.atc) + f"{rng.randint(50, 99)}")
        if len(arch.atc) > 1 and rng.random() < 0.15:
            atc.append(
                rng.choice([a for a in arch.atc if not atc[0].startswith(a)]) + f"{rng.randint(50, 99)}"
            )
    span = (exported - created_after).days
    created = created_after + dt.timedelta(days=rng.randint(0, span * 9 // 10))
    updated = created + dt.timedelta(days=rng.randint(0, (exported - created).days))
    secondary = []
    for prefix, p in (
        ("APRD", 0.35),
        ("BTD", 0.6 if arch.biotech else 0.0),
        ("BIOD", 0.3 if arch.biotech else 0.0),
        ("EXPT", 0.1),
        ("DBSALT", 0.03),
    ):
        if rng.random() < p:
            secondary.append(ids.take(prefix))
    salts = []
    if molecule is not None and case == "plain" and rng.random() < 0.15:
        suffix = rng.choice(sorted(SALTS))
        if names.claim(f"{name} {suffix}"):
            avg, mono = SALTS[suffix]
            salts.append(
                (
                    ids.take("DBSALT"),
                    f"{name} {suffix}",
                    random_unii(rng),
                    random_cas(rng),
                    inchikey_shape(molecule.smiles + suffix),
                    round(molecule.average_mass + avg, 4),
                    round(molecule.monoisotopic_mass + mono, 6),
                )
            )
    attrs = {
        "type": "biotech" if arch.biotech else "small molecule",
        "created": created.isoformat(),
        "updated": updated.isoformat(),
        "secondary": secondary,
        "groups": groups,
        "links": listed,
        "hidden": hidden,
        "class_categories": class_cats,
        "categories": record_categories(class_cats, listed),
        "atc": atc,
        "molecule": molecule,
        "salts": salts,
        "cas": random_cas(rng),
        "unii": random_unii(rng),
        "half_life": f"{rng.randint(1, 48)} hours",
        "protein_binding": f"{rng.randint(10, 99)}%",
        "logp": round(rng.uniform(-2.0, 6.5), 2),
        "synonym": name[:-1] if name.endswith("e") and rng.random() < 0.4 else "",
        "pubchem": str(rng.randint(100000, 170000000)) if molecule and rng.random() < 0.8 else "",
        "chembl": f"CHEMBL{rng.randint(1000, 5000000)}" if rng.random() < 0.6 else "",
    }
    weight = arch.promiscuity * rng.lognormvariate(0.0, 0.75)
    return Drug(
        drug_id,
        name,
        drug_roles(link_evidence(links), world_cats),
        weight,
        arch=arch,
        attrs=attrs,
        pathways=[],
    )


def build_drugs(
    n_synthetic: int,
    fx: Fixture | None,
    rng: random.Random,
    exported: dt.date,
    missing_share: float,
    names: Names,
    ids: IdPool,
) -> list[Drug]:
    """Fixture and synthetic drugs in primary-id order; synthetic ids skip every id the fixture uses."""
    coverage = rng.sample(ARCHETYPES, len(ARCHETYPES))  # every class appears once before weighted draws
    coverage.sort(key=lambda a: a.biotech)  # a small molecule first: the forced ester case needs a base
    weights = [a.weight for a in ARCHETYPES]
    bases: list[tuple[str, Archetype]] = []
    synthetic = []
    for gen in range(n_synthetic):
        case = _name_case(gen, rng)
        if case == "ester" and bases:
            base, arch = bases[-1]
        else:
            case = "plain" if case == "ester" else case
            base, arch = None, coverage.pop(0) if coverage else rng.choices(ARCHETYPES, weights)[0]
        drug = synthetic_drug(ids.take("DB"), case, base, arch, names, ids, rng, exported, missing_share)
        if case == "plain" and not arch.biotech:
            bases.append((drug.name, arch))
        synthetic.append(drug)
    return sorted((fx.drugs if fx else []) + synthetic, key=lambda d: d.id)


def _name_case(gen: int, rng: random.Random) -> str:
    """Plain, or a hard name case; the first synthetic drugs cover every case once."""
    if gen <= len(HARD_CASES):
        return ("plain", *HARD_CASES)[gen]
    r = rng.random()
    for case, share in HARD_CASE_SHARE.items():
        if r < share:
            return case
        r -= share
    return "plain"


@dataclass(frozen=True)
class Pathway:
    """An SMPDB pathway and the drugs (indices) listing it."""

    smpdb_id: str
    name: str
    category: str
    members: tuple[str, ...]  # drug ids
    enzymes: tuple[str, ...]  # UniProt ids


def draw_pathways(drugs: list[Drug], rng: random.Random) -> list[Pathway]:
    """Action pathways (with up to two same-class drugs) and metabolism pathways for some synthetic drugs."""
    out: list[Pathway] = []
    by_arch: dict[str, list[int]] = {}
    for i, drug in enumerate(drugs):
        if drug.arch is None:
            continue
        assert drug.attrs is not None  # synthetic records (those with an archetype) carry attrs
        links = drug.attrs["links"]
        peers = by_arch.setdefault(drug.arch.key, [])
        if rng.random() < 0.2:
            members = tuple(drugs[k].id for k in (i, *rng.sample(peers, min(len(peers), rng.randint(0, 2)))))
            enzymes = tuple(
                dict.fromkeys(
                    lk.protein.polypeptides[0][0]
                    for lk in links
                    if lk.protein.kind == "target" and lk.protein.polypeptides
                )
            )
            out.append(
                Pathway(
                    f"SMP{100001 + len(out):07d}",
                    f"{drug.name} Action Pathway",
                    "drug_action",
                    members,
                    enzymes,
                )
            )
        metabolic = tuple(lk.protein.polypeptides[0][0] for lk in links if lk.protein.kind == "enzyme")
        if metabolic and rng.random() < 0.1:
            out.append(
                Pathway(
                    f"SMP{100001 + len(out):07d}",
                    f"{drug.name} Metabolism Pathway",
                    "drug_metabolism",
                    (drug.id,),
                    metabolic,
                )
            )
        peers.append(i)
    by_id = {d.id: d for d in drugs}
    for k, pathway in enumerate(out):
        for member in pathway.members:
            listed = by_id[member].pathways
            assert listed is not None  # members are synthetic records, built with pathways=[]
            listed.append(k)
    return out
