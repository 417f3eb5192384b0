"""The synthetic DrugBank release: schema-valid, deterministic, mechanism-consistent, counted correctly."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from lxml import etree

from mard_core import synth
from mard_core.errors import InputError
from mard_core.synth import history, interactions, molecules, render, world
from mard_core.synth.drugs import link_evidence, load_fixture
from mard_core.synth.names import SALTS
from schemas import PROTEIN_KINDS, SCHEMA_DIR

NS = {"d": "http://www.drugbank.ca"}
REFERENCE = SCHEMA_DIR / "reference"  # see its README.md for sources and licences
XSD = REFERENCE / "drugbank.xsd"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, synth.SynthTruth]:
    """A plain-XML release of 150 synthetic drugs plus the fixture, with its truth table."""
    d = tmp_path_factory.mktemp("synth")
    truth = synth.write_release(d / "release.xml", 150, seed=3, truth_path=d / "truth.parquet")
    return d / "release.xml", d / "truth.parquet", truth


@pytest.fixture(scope="module")
def state(release: tuple[Path, Path, synth.SynthTruth]) -> history.World:
    """The world behind the release, rebuilt from its sidecar."""
    return history.build_world(synth.read_params(release[0]), load_fixture(synth.DEFAULT_FIXTURE))


@pytest.fixture(scope="module")
def records(release: tuple[Path, Path, synth.SynthTruth]) -> dict[str, dict]:
    """Top-level records parsed independently of the generator: names, evidence, listings."""
    out = {}
    for drug in etree.parse(str(release[0])).getroot().findall("d:drug", NS):
        links = set()
        for kind in PROTEIN_KINDS:
            for el in drug.findall(f"d:{kind}s/d:{kind}", NS):
                actions = [a.text for a in el.findall("d:actions/d:action", NS)]
                links |= {(g.text, a) for g in el.findall("d:polypeptide/d:gene-name", NS) for a in actions}
        cats = {c.text for c in drug.findall("d:categories/d:category/d:category", NS)}
        drug_id = drug.findtext("d:drugbank-id[@primary='true']", namespaces=NS)
        out[drug_id] = {
            "name": drug.findtext("d:name", namespaces=NS),
            "links": links,
            "roles": world.drug_roles(links, cats),
            "listings": [
                (
                    e.findtext("d:drugbank-id", namespaces=NS),
                    e.findtext("d:name", namespaces=NS),
                    e.findtext("d:description", namespaces=NS),
                )
                for e in drug.findall("d:drug-interactions/d:drug-interaction", NS)
            ],
            "smiles": drug.findtext(
                "d:calculated-properties/d:property[d:kind='SMILES']/d:value", namespaces=NS
            ),
        }
    return out


def sentence_roles(text: str, name_a: str, name_b: str) -> tuple[world.Template, str, str] | None:
    """(template, #Drug1 name, #Drug2 name) by substituting the two names into every template."""
    text = " ".join(text.split())
    for t in world.TEMPLATES:
        for d1, d2 in ((name_a, name_b), (name_b, name_a)):
            if t.text.replace("#Drug1", d1).replace("#Drug2", d2) == text:
                return t, d1, d2
    return None


def test_fixture_and_release_validate_against_the_xsd(fixture_xml: Path, small_release: tuple) -> None:
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    assert schema.validate(etree.parse(str(fixture_xml))), schema.error_log
    with zipfile.ZipFile(small_release[0]) as zf, zf.open(render.ZIP_MEMBER) as fh:
        doc = etree.parse(fh)
    assert schema.validate(doc), schema.error_log
    assert len(doc.getroot().findall("d:drug", NS)) == small_release[1].n_drugs == 60 + 16


def test_zip_is_deterministic_with_one_deflated_member(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.xml.zip", tmp_path / "b.xml.zip", tmp_path / "c.xml.zip"
    synth.write_release(a, 40, seed=11)
    synth.write_release(b, 40, seed=11)
    synth.write_release(c, 40, seed=12)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]
    with zipfile.ZipFile(a) as zf:
        assert [(i.filename, i.compress_type) for i in zf.infolist()] == [
            ("full database.xml", zipfile.ZIP_DEFLATED)
        ]
        assert zf.read("full database.xml").startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<drugbank')
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.xml.zip",
        "a.xml.zip.world.json",
        "b.xml.zip",
        "b.xml.zip.world.json",
        "c.xml.zip",
        "c.xml.zip.world.json",
    ]  # each release with its world sidecar, no temp files


def test_fixture_drugs_are_merged_with_their_real_sentences(records: dict[str, dict]) -> None:
    vori, axi = records["DB00582"], records["DB06626"]
    assert (vori["name"], axi["name"]) == ("Voriconazole", "Axitinib")
    sentence = "The metabolism of Axitinib can be decreased when combined with Voriconazole."
    assert ("DB06626", "Axitinib", sentence) in vori["listings"]
    assert ("DB00582", "Voriconazole", sentence) in axi["listings"]
    fixture_ids = {
        "DB00582",
        "DB06626",
        "DB01026",
        "DB01045",
        "DB00683",
        "DB00682",
        "DB00641",
        "DB01211",
        "DB00390",
        "DB00196",
        "DB01118",
        "DB00215",
        "DB00945",
        "DB00338",
        "DB00783",
        "DB13956",
    }
    assert fixture_ids <= set(records)
    synthetic_partners = {p for p, _, _ in vori["listings"]} - fixture_ids
    assert synthetic_partners, "synthetic drugs interact with the fixture's drugs too"


def test_hard_name_cases_are_present_and_names_unique(records: dict[str, dict]) -> None:
    names = [r["name"] for r in records.values()]
    assert len({n.casefold() for n in names}) == len(names)
    name_set = set(names)
    contained = [n for n in names if any(n.startswith(m + " ") for m in name_set if m != n)]
    assert "Estradiol valerate" in contained and len(contained) >= 2  # a fixture and a synthetic case
    assert any(not n.isascii() for n in names)
    assert any(re.search(r", \w+ \(\w+\)$", n) for n in names)
    assert any(n.endswith(tuple(f" {s}" for s in SALTS)) for n in names)


def test_every_sentence_names_both_drugs_and_the_intended_one_follows_the_mechanisms(
    release: tuple[Path, Path, synth.SynthTruth], records: dict[str, dict], state: history.World
) -> None:
    seen_templates = Counter()
    for drug_id, rec in records.items():
        for partner_id, partner_name, text in rec["listings"]:
            assert partner_name == records[partner_id]["name"]
            match = sentence_roles(text, rec["name"], partner_name)
            assert match is not None, f"{drug_id}: no template for {text!r}"
            seen_templates[match[0].id] += 1
    assert {"metabolism_decreased", "metabolism_increased", "qtc_prolongation_risk"} <= set(seen_templates)
    drugs = {d.id: d for d in state.drugs}  # the world's roles: records may leave some out
    for row in pq.read_table(release[1]).to_pylist():
        template = world.TEMPLATE_BY_ID[row["intended_template"]]
        if template.id == world.NOISE_TEMPLATE:
            continue
        a, b = drugs[row["drug_a"]], drugs[row["drug_b"]]
        perp, victim = (a, b) if row["intended_perpetrator"] in (None, a.id) else (b, a)
        orientations = [(perp, victim), (victim, perp)] if template.symmetric else [(perp, victim)]
        assert any(
            world.explains(rule, p.roles, v.roles)
            for rule in world.rules_for(template.id)
            for p, v in orientations
        ), row
        if (
            template.id == "metabolism_decreased" and perp.attrs and victim.attrs
        ):  # without the rule table too
            inhibited = {
                lk.protein.key
                for lk in perp.attrs["links"] + perp.attrs["hidden"]
                if "inhibitor" in lk.actions
            }
            assert inhibited & {
                lk.protein.key
                for lk in victim.attrs["links"] + victim.attrs["hidden"]
                if "substrate" in lk.actions
            }, row


def test_truth_counts_match_an_independent_parse(release: tuple[Path, Path, synth.SynthTruth]) -> None:
    path, _, truth = release
    n_drugs = n_elements = n_proteins = 0
    pathways, listings = set(), defaultdict(list)
    for _, el in etree.iterparse(str(path), events=("end",), tag="{http://www.drugbank.ca}drug"):
        if el.getparent().getparent() is not None:
            continue  # a pathway's <drug> reference
        n_drugs += 1
        drug_id = el.findtext("d:drugbank-id[@primary='true']", namespaces=NS)
        for e in el.findall("d:drug-interactions/d:drug-interaction", NS):
            n_elements += 1
            partner = e.findtext("d:drugbank-id", namespaces=NS)
            text = " ".join(e.findtext("d:description", namespaces=NS).split())
            listings[tuple(sorted((drug_id, partner)))].append(text)
        n_proteins += sum(len(el.findall(f"d:{k}s/d:{k}", NS)) for k in PROTEIN_KINDS)
        pathways |= {p.text for p in el.findall("d:pathways/d:pathway/d:smpdb-id", NS)}
    assert n_drugs == truth.n_drugs == 150 + truth.n_fixture_drugs
    assert n_elements == truth.n_interaction_elements
    assert all(len(v) == 2 for v in listings.values()), "every pair is listed under both drugs"
    assert len(listings) == truth.n_pairs == sum(truth.template_counts.values())
    assert sum(len(set(v)) > 1 for v in listings.values()) == truth.n_disagreeing_pairs > 0
    assert n_proteins == truth.n_drug_proteins
    assert len(pathways) == truth.n_pathways > 0
    assert set(truth.family_counts) == set(world.FAMILIES)  # all seven mechanism families occur


def test_truth_table_gives_perpetrator_template_and_sentence(release: tuple, records: dict) -> None:
    _, truth_path, truth = release
    rows = pq.read_table(truth_path).to_pylist()
    assert len(rows) == truth.n_pairs
    for row in rows:
        assert row["drug_a"] < row["drug_b"]
        template = world.TEMPLATE_BY_ID[row["template_id"]]
        a, b = records[row["drug_a"]]["name"], records[row["drug_b"]]["name"]
        listed = {" ".join(t.split()) for p, _, t in records[row["drug_a"]]["listings"] if p == row["drug_b"]}
        assert row["sentence"] in listed or not row["listings_agree"]
        if template.symmetric:
            assert row["perpetrator"] is None
        else:
            first = records[row["perpetrator"]]["name"]
            second = b if first == a else a
            assert row["sentence"] == template.text.replace("#Drug1", first).replace("#Drug2", second)


def test_descriptions_carry_some_line_breaks_and_the_skew_is_zipf_like(release: tuple, records: dict) -> None:
    texts = [t for r in records.values() for _, _, t in r["listings"]]
    assert any("\n" in t for t in texts)
    counts = release[2].template_counts
    assert max(counts, key=counts.get) == "metabolism_decreased"
    assert sum(v for k, v in counts.items() if k != world.NOISE_TEMPLATE) > 10 * counts[world.NOISE_TEMPLATE]


def test_smiles_are_well_formed_and_formulas_add_up(records: dict[str, dict]) -> None:
    smiles = [r["smiles"] for r in records.values() if r["smiles"]]
    assert len(smiles) > 100
    for s in smiles:
        assert s.count("(") == s.count(")"), s
        ring_digits = Counter(re.findall(r"\d", re.sub(r"\[[^\]]*\]", "", s)))  # each opens and closes
        assert all(n % 2 == 0 for n in ring_digits.values()), s
    mol = molecules.random_molecule(__import__("random").Random(5))
    atoms = Counter({el: int(n or 1) for el, n in re.findall(r"([A-Z][a-z]?)(\d*)", mol.formula)})
    assert atoms["C"] == len(re.findall(r"C(?!l)|c", mol.smiles))
    assert re.fullmatch(r"[A-Z]{14}-[A-Z]{8}SA-N", mol.inchikey)


def test_templates_are_drugbanks_own_sentences() -> None:
    known = {row["Description"] for row in csv.DictReader((REFERENCE / "ddi_types_86.csv").open())}
    with (REFERENCE / "ddi_types_113.txt").open() as fh:
        known |= {line.split("\t")[2] for line in fh.read().splitlines()[1:] if line.strip()}
    for t in world.TEMPLATES:
        assert (t.source == "variant") == (t.text not in known), t.id
        assert t.family in world.FAMILIES
        assert ("#Drug1" in t.text) and ("#Drug2" in t.text)
    for rule in world.RULES:
        assert rule.template in world.TEMPLATE_BY_ID
        assert all(":" in r or r in world.ROLES for r in rule.perpetrator + rule.victim), rule


def test_tables_are_consistent() -> None:
    be_ids = [p.be_id for p in world.PROTEINS.values()]
    assert len(be_ids) == len(set(be_ids))
    for arch in world.ARCHETYPES:
        assert all(lk.protein in world.PROTEINS for lk in arch.links + arch.one_of), arch.key
        assert all(a[:1] + a[1:3] in world.ATC_NAMES and a in world.ATC_NAMES for a in arch.atc), arch.key


def test_bad_input_raises_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.xml or \.zip"):
        synth.write_release(tmp_path / "r.json", 5, seed=0)
    with pytest.raises(InputError, match="missing.xml"):
        synth.write_release(tmp_path / "r.xml", 5, seed=0, fixture=tmp_path / "missing.xml")
    with pytest.raises(InputError, match="exported_on"):
        synth.write_release(tmp_path / "r.xml", 5, seed=0, exported_on="April 2026")
    with pytest.raises(InputError, match="n_drugs"):
        synth.write_release(tmp_path / "r.xml", -1, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(render, "_synthetic_parts", boom)
    with pytest.raises(RuntimeError):
        synth.write_release(tmp_path / "r.xml.zip", 5, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_without_fixture_only_synthetic_drugs(tmp_path: Path) -> None:
    truth = synth.write_release(tmp_path / "r.xml", 30, seed=1, fixture=None, interactions_per_drug=20)
    assert (truth.n_drugs, truth.n_fixture_drugs) == (30, 0)
    assert 0 < truth.n_interaction_elements <= 30 * 29
    assert b"DB00582" not in (tmp_path / "r.xml").read_bytes()
    silent = synth.write_release(tmp_path / "s.xml", 30, seed=1, interactions_per_drug=0)
    assert silent.n_interaction_elements == 2 * 48  # only the fixture's own pairs


def _labels_of(path: Path) -> dict[tuple[str, str], str]:
    """Each pair's label as the label stage resolves its listings, from an independent ingest."""
    from mard_core.ingest import ingest
    from mard_core.labeling import label_pairs

    out = path.parent / f"{path.name}.tables"
    out.mkdir(exist_ok=True)
    ingest(path, out)
    result = label_pairs(
        pl.read_parquet(out / "drugs.parquet"), pl.read_parquet(out / "interactions.parquet")
    )
    return {(r["drug_a"], r["drug_b"]): r["label"] for r in result.ddi_pairs.iter_rows(named=True)}


def test_records_leave_out_mechanism_rows_the_world_uses(
    release: tuple[Path, Path, synth.SynthTruth], records: dict[str, dict], state: history.World
) -> None:
    rows = hidden = 0
    for drug in state.drugs:
        if drug.attrs is None:
            continue
        for lk in drug.attrs["links"] + drug.attrs["hidden"]:
            rows += bool(world.MECHANISM_LINKS & set(link_evidence([lk])))
        hidden += len(drug.attrs["hidden"])
        listed = records[drug.id]["links"]
        for lk in drug.attrs["hidden"]:  # a hidden row is absent from the XML record
            assert not set(link_evidence([lk])) <= listed, (drug.id, lk.protein.key)
    assert 0.22 < hidden / rows < 0.38  # missing_share 0.3
    # rules on the records miss pairs that rules on the world explain
    figures = release[2].world
    assert figures["rules_on_world"] > 0.95 and figures["rules_on_record"] < figures["rules_on_world"] - 0.1
    missed = 0
    for row in pq.read_table(release[1]).to_pylist():
        template = world.TEMPLATE_BY_ID[row["intended_template"]]
        if template.id == world.NOISE_TEMPLATE:
            continue
        a, b = records[row["drug_a"]], records[row["drug_b"]]
        missed += not any(
            world.explains(rule, p["roles"], v["roles"])
            for rule in world.rules_for(template.id)
            for p, v in ((a, b), (b, a))
        )
    assert missed > 0.1 * release[2].n_pairs


def test_the_curators_choice_is_learnable_from_the_drug_classes(
    release: tuple[Path, Path, synth.SynthTruth], state: history.World
) -> None:
    """Where several mechanisms are plausible, the majority label of the other pairs of the same class pair
    (with the same plausible labels) predicts the written one far better than a coin flip between them."""
    ids = {d.id: k for k, d in enumerate(state.drugs)}
    rows = [r for r in pq.read_table(release[1]).to_pylist() if r["drug_a"] in ids and r["drug_b"] in ids]
    lo = np.array([ids[r["drug_a"]] for r in rows])
    hi = np.array([ids[r["drug_b"]] for r in rows])
    options = interactions.plausible(interactions.role_matrices(state.drugs, lambda d: d.roles), lo, hi)
    classes = state.classes()
    T = interactions.T

    def in_classes(code: int, f: int, g: int) -> tuple[int, int | None]:
        """A code as (template, class of #Drug1): what transfers between pairs of the same classes."""
        perp = f if code < T else g
        return code % T, None if world.TEMPLATES[code % T].symmetric else int(classes[perp])

    groups: dict[tuple, list[tuple[int, int | None]]] = defaultdict(list)
    coin = []
    for row, f, g, opts in zip(rows, lo, hi, options, strict=True):
        codes = np.flatnonzero(opts)
        if len(codes) < 2:
            continue
        t = next(k for k, tpl in enumerate(world.TEMPLATES) if tpl.id == row["template_id"])
        code = t if tpl_first(row, f, ids) else t + T
        key = (frozenset((int(classes[f]), int(classes[g]))), frozenset(in_classes(c, f, g) for c in codes))
        groups[key].append(in_classes(code, f, g))
        coin.append(1 / len(codes))
    hits = total = 0
    for labels in groups.values():
        for i, label in enumerate(labels):
            rest = Counter(labels[:i] + labels[i + 1 :])
            if rest:
                total += 1
                hits += rest.most_common(1)[0][0] == label
    assert total > 100
    assert hits / total > 0.75 and hits / total > float(np.mean(coin)) + 0.2, (hits / total, np.mean(coin))


def tpl_first(row: dict, f: int, ids: dict[str, int]) -> bool:
    """Whether the truth row's written #Drug1 is the pair's lower-index drug (always so when symmetric)."""
    return row["perpetrator"] is None or ids[row["perpetrator"]] == f


def test_noise_rates_disagreements_and_the_oracle_ceiling(
    release: tuple[Path, Path, synth.SynthTruth], state: history.World
) -> None:
    path, truth_path, truth = release
    rows = pq.read_table(truth_path).to_pylist()
    by_id = {d.id: d for d in state.drugs}
    real = {d.id for d in state.drugs if d.arch is None}
    generated = [r for r in rows if not {r["drug_a"], r["drug_b"]} <= real]  # not the fixture's own pairs
    mechanism = [r for r in generated if r["intended_template"] != world.NOISE_TEMPLATE]
    implausible = sum(  # label noise: a written sentence no rule gives the pair
        not any(
            world.explains(rule, by_id[p].roles, by_id[v].roles)
            for rule in world.rules_for(r["template_id"])
            for p, v in ((r["drug_a"], r["drug_b"]), (r["drug_b"], r["drug_a"]))
        )
        for r in mechanism
    )
    assert 0.01 < implausible / len(mechanism) < 0.06  # label_noise 0.03
    disagreeing = sum(not r["listings_agree"] for r in mechanism)
    assert 0.008 < disagreeing / len(mechanism) < 0.04  # disagree_share 0.02
    side = json.loads(synth.sidecar_path(path).read_text())
    assert (
        side["world"] == truth.world
        and side["release"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    )
    assert side["params"]["n_drugs"] == 150 and side["params"]["seed"] == 3
    # the ceiling, recomputed from the label stage's own labels of the release and the intended sentences
    labels = _labels_of(path)
    names = {d.id: d.name for d in state.drugs}
    from mard_core.labeling import classify

    same, missed = 0, set()
    for r in generated:
        a, b = r["drug_a"], r["drug_b"]
        tpl = world.TEMPLATE_BY_ID[r["intended_template"]]
        d1, d2 = (b, a) if r["intended_perpetrator"] == b else (a, b)
        text = tpl.text.replace("#Drug1", names[d1]).replace("#Drug2", names[d2])
        hit = labels[(a, b)] == str(classify(text, [names[a]], [names[b]]).label)
        same += hit
        missed |= set() if hit else {f"{min(a, b)}|{max(a, b)}"}
    assert same / len(generated) == pytest.approx(truth.world["ceiling"], abs=2e-4)
    assert set(truth.world["misses"]) == missed  # the pairs behind each split's own ceiling
    assert 0.8 < truth.world["ceiling"] < 0.97


def _release_records(path: Path) -> tuple[str, dict[str, dict]]:
    """exported-on and, per primary id: name, secondary ids, synonyms, {partner: description}."""
    with zipfile.ZipFile(path) as zf, zf.open(render.ZIP_MEMBER) as fh:
        root = etree.parse(fh).getroot()
    out = {}
    for drug in root.findall("d:drug", NS):
        ids = drug.findall("d:drugbank-id", NS)
        out[next(i.text for i in ids if i.get("primary") == "true")] = {
            "name": drug.findtext("d:name", namespaces=NS),
            "secondary": {i.text for i in ids if i.get("primary") != "true"},
            "synonyms": {s.text for s in drug.findall("d:synonyms/d:synonym", NS)},
            "listings": {
                e.findtext("d:drugbank-id", namespaces=NS): " ".join(
                    e.findtext("d:description", namespaces=NS).split()
                )
                for e in drug.findall("d:drug-interactions/d:drug-interaction", NS)
            },
        }
    return root.get("exported-on"), out


def test_the_next_release_evolves_the_same_world(tmp_path: Path) -> None:
    old, new, again = tmp_path / "old.xml.zip", tmp_path / "new.xml.zip", tmp_path / "again.xml.zip"
    synth.write_release(old, 100, seed=2)
    truth = synth.evolve_release(old, new, seed=1, truth_path=tmp_path / "truth.parquet")
    synth.evolve_release(old, again, seed=1)
    assert new.read_bytes() == again.read_bytes()
    changes = truth.world["changes"]
    old_date, before = _release_records(old)
    new_date, after = _release_records(new)
    assert new_date > old_date == "2026-04-02"
    gone = set(before) - set(after)
    assert gone == set(changes["merged"]) and len(gone) >= 1
    for merged, survivor in changes["merged"].items():
        assert merged in after[survivor]["secondary"]
        assert not any(merged in r["listings"] for r in after.values())
    assert set(after) - set(before) == set(changes["new_drugs"]) and len(changes["new_drugs"]) == 5
    renamed = {i for i in set(before) & set(after) if before[i]["name"] != after[i]["name"]}
    assert renamed == set(changes["renamed"]) and len(renamed) >= 1
    assert all(before[i]["name"] in after[i]["synonyms"] for i in renamed)
    kept = set(before) & set(after)
    assert len(renamed) <= 0.02 * len(kept)
    pairs_before = {(a, b): t for a in kept for b, t in before[a]["listings"].items() if b in kept}
    pairs_after = {(a, b): t for a in kept for b, t in after[a]["listings"].items() if b in kept}
    assert set(pairs_before) <= set(pairs_after)  # nothing lost but the merged drugs' pairs
    fresh = set(pairs_after) - set(pairs_before)
    assert any(a not in changes["new_drugs"] and b not in changes["new_drugs"] for a, b in fresh)
    unchanged_names = {i for i in kept if i not in renamed}
    changed = [p for p in pairs_before if set(p) <= unchanged_names and pairs_before[p] != pairs_after[p]]
    assert changed and len(changed) < 0.1 * len(pairs_before)  # corrected labels, the rest stays

    def unordered(recs: dict[str, dict]) -> set[tuple[str, str]]:
        return {(min(a, b), max(a, b)) for a, r in recs.items() for b in r["listings"]}

    assert len(unordered(after) - unordered(before)) == changes["new_pairs"]
    assert len(unordered(before) - unordered(after)) == changes["removed_pairs"]
    assert changes["corrected_pairs"] > 0 and changes["filled_rows"] >= 0
    corrected = pq.read_table(tmp_path / "truth.parquet").to_pylist()
    intended = {(r["drug_a"], r["drug_b"]): r for r in corrected}
    fixed = [p for p in changed if p[0] < p[1]]
    assert any(
        intended[p]["template_id"] == intended[p]["intended_template"]
        and intended[p]["perpetrator"] == intended[p]["intended_perpetrator"]
        for p in fixed
    )
    # a third release builds on the second's sidecar; the world's parameters carry every step
    third = synth.evolve_release(new, tmp_path / "third.xml.zip", seed=5, exported_on="2027-01-01")
    assert third.n_drugs > truth.n_drugs
    assert [
        s["seed"]
        for s in json.loads(synth.sidecar_path(tmp_path / "third.xml.zip").read_text())["params"]["steps"]
    ] == [1, 5]


def test_evolving_needs_the_release_s_own_sidecar(tmp_path: Path) -> None:
    old = tmp_path / "old.xml.zip"
    synth.write_release(old, 20, seed=1)
    with pytest.raises(InputError, match="must be after"):
        synth.evolve_release(old, tmp_path / "n.xml.zip", seed=1, exported_on="2026-04-02")
    other = tmp_path / "other.xml.zip"
    synth.write_release(other, 21, seed=1)
    synth.sidecar_path(other).replace(synth.sidecar_path(old))
    with pytest.raises(InputError, match="describes another file"):
        synth.evolve_release(old, tmp_path / "n.xml.zip", seed=1)
    synth.sidecar_path(old).unlink()
    with pytest.raises(InputError, match=r"old\.xml\.zip\.world\.json"):
        synth.evolve_release(old, tmp_path / "n.xml.zip", seed=1)
    assert not (tmp_path / "n.xml.zip").exists()
