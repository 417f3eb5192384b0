"""The release as DrugBank XML text, streamed: each record is rendered on its own (element order and nesting
follow drugbank.xsd) and written to a plain or zipped file that replaces the target atomically."""

from __future__ import annotations

import datetime as dt
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from xml.sax.saxutils import escape

import numpy as np

from mard_core.synth.drugs import NS, Drug, LinkOut, Pathway
from mard_core.synth.interactions import Pairs, sentence, with_linebreak
from mard_core.synth.molecules import Molecule
from mard_core.synth.world import (
    ATC_NAMES,
    CATEGORY_MESH,
    CELLULAR_LOCATION,
    ORGANISM_TAXONOMY,
    PROTEINS,
    Protein,
)
from schemas import PROTEIN_KINDS

ZIP_MEMBER = "full database.xml"

_EMPTY_REFERENCES = (
    "<references>\n{i}  <articles/>\n{i}  <textbooks/>\n{i}  <links/>\n{i}  <attachments/>\n{i}</references>"
)


def _x(text: str) -> str:
    return escape(text)


def _polypeptide_xml(protein: Protein, uniprot: str, gene: str, name: str) -> str:
    i = " " * 8
    organism = protein.organism
    return (
        f'{i}<polypeptide id="{uniprot}" source="Swiss-Prot">\n'
        f"{i}  <name>{_x(name)}</name>\n{i}  <general-function/>\n{i}  <specific-function/>\n"
        f"{i}  <gene-name>{gene}</gene-name>\n{i}  <locus/>\n"
        f"{i}  <cellular-location>{CELLULAR_LOCATION[protein.kind]}</cellular-location>\n"
        f"{i}  <transmembrane-regions/>\n{i}  <signal-regions/>\n"
        f"{i}  <theoretical-pi/>\n{i}  <molecular-weight/>\n"
        f"{i}  <chromosome-location/>\n"
        f'{i}  <organism ncbi-taxonomy-id="{ORGANISM_TAXONOMY.get(organism, "")}">{_x(organism)}</organism>\n'
        f"{i}  <external-identifiers>\n{i}    <external-identifier>\n"
        f"{i}      <resource>UniProtKB</resource>\n"
        f"{i}      <identifier>{uniprot}</identifier>\n{i}    </external-identifier>\n"
        f"{i}  </external-identifiers>\n"
        f'{i}  <synonyms/>\n{i}  <amino-acid-sequence format="FASTA"/>\n'
        f'{i}  <gene-sequence format="FASTA"/>\n'
        f"{i}  <pfams/>\n{i}  <go-classifiers/>\n{i}</polypeptide>\n"
    )


POLYPEPTIDE_XML: dict[str, str] = {
    key: "".join(_polypeptide_xml(p, *pp) for pp in p.polypeptides) for key, p in PROTEINS.items()
}


def _interactant_xml(kind: str, position: int, link: LinkOut) -> str:
    """One <target>/<enzyme>/<carrier>/<transporter> element (6-space indented)."""
    i, p = " " * 6, link.protein
    actions = (
        "<actions>\n"
        + "".join(f"{i}    <action>{_x(a)}</action>\n" for a in link.actions)
        + f"{i}  </actions>"
        if link.actions
        else "<actions/>"
    )
    strengths = ""
    if kind == "enzyme":
        strengths = (
            f"{i}  <inhibition-strength>{link.inhibition_strength}</inhibition-strength>\n"
            f"{i}  <induction-strength>{link.induction_strength}</induction-strength>\n"
        )
    return (
        f'{i}<{kind} position="{position}">\n{i}  <id>{p.be_id}</id>\n{i}  <name>{_x(p.name)}</name>\n'
        f"{i}  <organism>{_x(p.organism)}</organism>\n{i}  {actions}\n"
        f"{i}  {_EMPTY_REFERENCES.format(i=i + '  ')}\n"
        f"{i}  <known-action>{link.known_action}</known-action>\n"
        f"{POLYPEPTIDE_XML[p.key]}{strengths}{i}</{kind}>\n"
    )


def _list_xml(tag: str, items: Sequence[str]) -> str:
    return f"    <{tag}>\n{''.join(items)}    </{tag}>\n" if items else f"    <{tag}/>\n"


def _atc_xml(code: str) -> str:
    levels = [code[:5], code[:4], code[:3], code[:1]]
    inner = "".join(f'        <level code="{c}">{_x(ATC_NAMES[c])}</level>\n' for c in levels)
    return f'      <atc-code code="{code}">\n{inner}      </atc-code>\n'


def render_pathway(pathway: Pathway, names: dict[str, str]) -> str:
    """One <pathway> element of a record (6-space indented); ``names`` maps drug ids to names."""
    i = " " * 6
    members = "".join(
        f"{i}    <drug>\n{i}      <drugbank-id>{k}</drugbank-id>\n"
        f"{i}      <name>{_x(names[k])}</name>\n"
        f"{i}    </drug>\n"
        for k in pathway.members
    )
    enzymes = (
        (
            "<enzymes>\n"
            + "".join(f"{i}    <uniprot-id>{u}</uniprot-id>\n" for u in pathway.enzymes)
            + f"{i}  </enzymes>"
        )
        if pathway.enzymes
        else "<enzymes/>"
    )
    return (
        f"{i}<pathway>\n{i}  <smpdb-id>{pathway.smpdb_id}</smpdb-id>\n{i}  <name>{_x(pathway.name)}</name>\n"
        f"{i}  <category>{pathway.category}</category>\n{i}  <drugs>\n{members}{i}  </drugs>\n"
        f"{i}  {enzymes}\n{i}</pathway>\n"
    )


def _prose(drug: Drug) -> dict[str, str]:
    """Description, mechanism and metabolism sentences of a synthetic record."""
    assert drug.arch is not None and drug.attrs is not None, "not a synthetic record"
    arch, links, name = drug.arch, drug.attrs["links"], drug.name
    targets = [lk for lk in links if lk.protein.kind == "target"]
    substrates = [lk.protein.key for lk in links if lk.protein.kind == "enzyme" and "substrate" in lk.actions]
    mechanism = "; ".join(f"{a} of {lk.protein.name}" for lk in targets for a in lk.actions)
    return {
        "description": (
            f"{name} is a {arch.label}. This record is synthetic: MARD generated it for its demo release."
        ),
        "indication": f"Indicated where a {arch.label} is appropriate.",
        "mechanism": f"{name} acts as an {mechanism}." if mechanism else "",
        "metabolism": f"{name} is metabolized by {', '.join(substrates)}." if substrates else "",
    }


def _synthetic_parts(drug: Drug, pathway_xml: list[str]) -> tuple[str, str]:
    """The record text before and after its <drug-interactions> children."""
    assert drug.attrs is not None and drug.pathways is not None, "not a synthetic record"
    a, prose = drug.attrs, _prose(drug)
    mol: Molecule | None = a["molecule"]
    ids = "".join(f"    <drugbank-id>{s}</drugbank-id>\n" for s in a["secondary"])
    masses = (
        (
            f"    <average-mass>{mol.average_mass}</average-mass>\n"
            f"    <monoisotopic-mass>{mol.monoisotopic_mass}</monoisotopic-mass>\n"
        )
        if mol
        else ""
    )
    salts = [
        f"      <salt>\n        <drugbank-id>{sid}</drugbank-id>\n        <name>{_x(sname)}</name>\n"
        f"        <unii>{unii}</unii>\n        <cas-number>{cas}</cas-number>\n"
        f"        <inchikey>{key}</inchikey>\n"
        f"        <average-mass>{avg}</average-mass>\n        <monoisotopic-mass>{mono}</monoisotopic-mass>\n"
        f"      </salt>\n"
        for sid, sname, unii, cas, key, avg, mono in a["salts"]
    ]
    synonyms = (
        [f'      <synonym language="" coder="INN">{_x(a["synonym"])}</synonym>\n'] if a["synonym"] else []
    )
    categories = [
        f"      <category>\n        <category>{_x(c)}</category>\n"
        f"        <mesh-id>{CATEGORY_MESH.get(c, '')}</mesh-id>\n      </category>\n"
        for c in a["categories"]
    ]
    props = []
    if mol:
        for kind, value, source in (
            ("logP", a["logp"], "ALOGPS"),
            ("SMILES", mol.smiles, "ChemAxon"),
            ("InChIKey", mol.inchikey, "ChemAxon"),
            ("Molecular Weight", mol.average_mass, "ChemAxon"),
            ("Molecular Formula", mol.formula, "ChemAxon"),
        ):
            props.append(
                f"      <property>\n        <kind>{kind}</kind>\n        <value>{value}</value>\n"
                f"        <source>{source}</source>\n      </property>\n"
            )
    external = [
        f"      <external-identifier>\n        <resource>{res}</resource>\n"
        f"        <identifier>{val}</identifier>\n      </external-identifier>\n"
        for res, val in (("PubChem Compound", a["pubchem"]), ("ChEMBL", a["chembl"]))
        if val
    ]
    by_kind: dict[str, list[LinkOut]] = {k: [] for k in PROTEIN_KINDS}
    for lk in a["links"]:
        by_kind[lk.protein.kind].append(lk)
    proteins = "".join(
        _list_xml(k + "s", [_interactant_xml(k, n, lk) for n, lk in enumerate(v, 1)])
        for k, v in by_kind.items()
    )
    state = "liquid" if a["type"] == "biotech" else "solid"
    head = (
        f'<drug type="{a["type"]}" created="{a["created"]}" updated="{a["updated"]}">\n'
        f'    <drugbank-id primary="true">{drug.id}</drugbank-id>\n{ids}    <name>{_x(drug.name)}</name>\n'
        f"    <description>{_x(prose['description'])}</description>\n"
        f"    <cas-number>{a['cas']}</cas-number>\n"
        f"    <unii>{a['unii']}</unii>\n{masses}    <state>{state}</state>\n"
        + _list_xml("groups", [f"      <group>{g}</group>\n" for g in a["groups"]])
        + f"    <general-references>\n      <articles/>\n      <textbooks/>\n"
        f"      <links/>\n      <attachments/>\n"
        f"    </general-references>\n    <synthesis-reference/>\n"
        f"    <indication>{_x(prose['indication'])}</indication>\n    <pharmacodynamics/>\n"
        f"    <mechanism-of-action>{_x(prose['mechanism'])}</mechanism-of-action>\n    <toxicity/>\n"
        f"    <metabolism>{_x(prose['metabolism'])}</metabolism>\n    <absorption/>\n"
        f"    <half-life>{a['half_life']}</half-life>\n"
        f"    <protein-binding>{a['protein_binding']}</protein-binding>\n"
        f"    <route-of-elimination/>\n    <volume-of-distribution/>\n    <clearance/>\n"
        + _list_xml("salts", salts)
        + _list_xml("synonyms", synonyms)
        + "    <products/>\n    <international-brands/>\n    <mixtures/>\n"
        "    <packagers/>\n    <manufacturers/>\n"
        "    <prices/>\n"
        + _list_xml("categories", categories)
        + "    <affected-organisms>\n      <affected-organism>Humans and other mammals</affected-organism>\n"
        "    </affected-organisms>\n    <dosages/>\n"
        + _list_xml("atc-codes", [_atc_xml(c) for c in a["atc"]])
        + "    <ahfs-codes/>\n    <pdb-entries/>\n    <patents/>\n"
        "    <food-interactions/>\n    <drug-interactions>\n"
    )
    tail = (
        "    </drug-interactions>\n"
        + (_list_xml("calculated-properties", props) if mol else "")
        + "    <experimental-properties/>\n"
        + _list_xml("external-identifiers", external)
        + "    <external-links/>\n"
        + _list_xml("pathways", [pathway_xml[k] for k in drug.pathways])
        + f"    <reactions/>\n    <snp-effects/>\n    <snp-adverse-drug-reactions/>\n{proteins}  </drug>"
    )
    return head, tail


def _interaction_xml(partner_id: str, partner_xname: str, description: str) -> str:
    return (
        f"      <drug-interaction>\n        <drugbank-id>{partner_id}</drugbank-id>\n"
        f"        <name>{partner_xname}</name>\n        <description>{description}</description>\n"
        f"      </drug-interaction>\n"
    )


def write_xml(out: Path, drugs: list[Drug], pairs: Pairs, pathway_xml: list[str], exported: dt.date) -> int:
    """Stream the records to ``out`` (zip or plain, atomically); returns the XML size in bytes."""
    n, m = len(drugs), len(pairs.lo)
    lo, hi = pairs.lo, pairs.hi
    owner = np.concatenate([lo, hi])
    partner = np.concatenate([hi, lo])
    pair = np.concatenate([np.arange(m, dtype=np.int32)] * 2)
    side = np.concatenate([np.zeros(m, np.int8), np.ones(m, np.int8)])
    order = np.lexsort((partner, owner))
    owner, partner, pair, side = owner[order], partner[order], pair[order], side[order]
    bounds = np.searchsorted(owner, np.arange(n + 1)).tolist()
    alt = pairs.alt[pair]  # the code each listing states: the disagreeing side's alt, else the written one
    listed = np.where((alt >= 0) & (pairs.alt_side[pair] == side), alt, pairs.written[pair])
    ids = [d.id for d in drugs]
    xnames = [_x(d.name) for d in drugs]
    header = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<drugbank xmlns="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{NS} http://www.drugbank.ca/docs/drugbank.xsd" version="5.1" '
        f'exported-on="{exported.isoformat()}">\n'
    )
    with _atomic_output(out, exported) as sink:
        size = sink(header)
        for i, drug in enumerate(drugs):
            s, e = bounds[i], bounds[i + 1]
            ps, sides = pair[s:e], side[s:e]
            listings = []
            for j, f, g, code, brk in zip(
                partner[s:e].tolist(),
                lo[ps].tolist(),
                hi[ps].tolist(),
                listed[s:e].tolist(),
                pairs.linebreak[ps, sides].tolist(),
                strict=True,
            ):
                text = sentence(code, xnames[f], xnames[g])
                listings.append(_interaction_xml(ids[j], xnames[j], with_linebreak(text) if brk else text))
            head, tail = (drug.head, drug.tail) if drug.arch is None else _synthetic_parts(drug, pathway_xml)
            size += sink(f"  {head}{''.join(listings)}{tail}\n")
        size += sink("</drugbank>\n")
    return size


class _atomic_output:
    """Context manager giving a write(str) -> bytes function into a temp file that replaces ``out`` on
    success."""

    def __init__(self, out: Path, exported: dt.date):
        self.out, self.exported = out, exported
        self.tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        self._files: list[IO[bytes] | zipfile.ZipFile] = []

    def __enter__(self) -> Any:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        raw = open(self.tmp, "wb")
        self._files.append(raw)
        target: IO[bytes] = raw
        if self.out.suffix == ".zip":
            zf = zipfile.ZipFile(raw, "w")
            info = zipfile.ZipInfo(
                ZIP_MEMBER, date_time=(self.exported.year, self.exported.month, self.exported.day, 0, 0, 0)
            )
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            target = zf.open(info, "w", force_zip64=True)
            self._files[:0] = [target, zf]

        def write(text: str) -> int:
            data = text.encode("utf-8")
            target.write(data)
            return len(data)

        return write

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            for f in self._files:
                f.close()
        finally:
            if exc_type is None:
                os.replace(self.tmp, self.out)
            else:
                self.tmp.unlink(missing_ok=True)
