"""Streaming ingest: values, counts, and every kind of bad input."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest

from mard_core import ingest as ingest_module
from mard_core.errors import InputError
from mard_core.ingest import ingest, open_source, read_header
from mard_core.ingest_config import IngestConfig
from mard_core.stage import StageRun, run_stage

NS = "http://www.drugbank.ca"


def drug_xml(
    did: str, name: str, partners: list[tuple[str, str, str]], enzymes: str = "", pathways: str = ""
) -> str:
    ddis = "".join(
        f"<drug-interaction><drugbank-id>{p}</drugbank-id><name>{n}</name><description>{d}</description>"
        "</drug-interaction>"
        for p, n, d in partners
    )
    return (
        f'<drug type="small molecule" created="2005-06-13" updated="2024-01-02">'
        f'<drugbank-id primary="true">{did}</drugbank-id><drugbank-id>APRD0{did[-4:]}</drugbank-id>'
        f"<name>{name}</name><description>About {name}.</description><groups><group>approved</group></groups>"
        f"<drug-interactions>{ddis}</drug-interactions><pathways>{pathways}</pathways>"
        f"<enzymes>{enzymes}</enzymes></drug>"
    )


ENZYME = (
    '<enzyme position="1"><id>BE0002638</id><name>Cytochrome P450 3A4</name><organism>Humans</organism>'
    "<actions><action>inhibitor</action></actions><known-action>unknown</known-action>"
    "<inhibition-strength>strong</inhibition-strength>"
    '<polypeptide id="P08684" source="Swiss-Prot"><name>Cytochrome P450 3A4</name>'
    "<gene-name>CYP3A4</gene-name>"
    "</polypeptide></enzyme>"
)
PATHWAY = (
    "<pathway><smpdb-id>SMP0000001</smpdb-id><name>Drug A Action</name><category>drug_action</category>"
    "<drugs><drug><drugbank-id>DB00001</drugbank-id><name>Alpha</name></drug>"
    "<drug><drugbank-id>DB00002</drugbank-id><name>Beta</name></drug></drugs>"
    "<enzymes><uniprot-id>P08684</uniprot-id></enzymes></pathway>"
)


def release_xml(
    drugs: list[str], root: str = f'drugbank xmlns="{NS}" version="5.1" exported-on="2026-04-02"'
) -> str:
    tag = root.split()[0]
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>' + "".join(drugs) + f"</{tag}>\n"


MINI = release_xml(
    [
        drug_xml(
            "DB00001",
            "Alpha",
            [
                ("DB00002", "Beta", "The metabolism of Beta can be decreased when combined with Alpha."),
                ("DB09999", "Ghost", "Ghost and Alpha."),
            ],
            ENZYME,
            PATHWAY,
        ),
        drug_xml(
            "DB00002",
            "Beta",
            [("DB00001", "Alpha", "The metabolism of Beta can be decreased when combined with Alpha.")],
            pathways=PATHWAY,
        ),
    ]
)


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def test_minimal_release_tables(tmp_path: Path) -> None:
    src = write(tmp_path, "mini.xml", MINI)
    out = tmp_path / "out"
    out.mkdir()
    fields = ingest(src, out, IngestConfig(batch_rows=1))
    assert fields["counts"] == {"drugs": 2, "interactions": 3, "drug_proteins": 1, "pathways": 1}
    assert fields["drugbank_version"] == "5.1" and fields["exported_on"] == "2026-04-02"
    assert fields["unknown_partner_elements"] == 1 and fields["unknown_partner_ids"] == ["DB09999"]
    drugs = pl.read_parquet(out / "drugs.parquet")
    assert drugs["drugbank_id"].to_list() == ["DB00001", "DB00002"]  # nested pathway <drug>s are not records
    assert drugs["secondary_ids"].to_list()[0] == ["APRD00001"]
    enzyme = pl.read_parquet(out / "drug_proteins.parquet").row(0, named=True)
    assert (
        enzyme["uniprot_id"] == "P08684"
        and enzyme["gene_name"] == "CYP3A4"
        and enzyme["actions"] == ["inhibitor"]
    )
    assert (
        enzyme["inhibition_strength"] == "strong" and enzyme["position"] == 1 and enzyme["kind"] == "enzyme"
    )
    pathway = pl.read_parquet(out / "pathways.parquet").row(0, named=True)
    assert pathway["drug_ids"] == ["DB00001", "DB00002"] and pathway["enzyme_uniprot_ids"] == ["P08684"]


def test_zip_is_read_in_place(tmp_path: Path) -> None:
    src = tmp_path / "drugbank.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("full database.xml", MINI)
    out = tmp_path / "out"
    out.mkdir()
    assert ingest(src, out)["source"]["member"] == "full database.xml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drugbank.zip", "out"]  # nothing extracted


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"readme.txt": "hi"}, "no .xml member"),
        ({"a.xml": MINI, "b.xml": MINI}, "several XML members"),
        ({"../evil.xml": MINI}, "unsafe path"),
    ],
)
def test_bad_zips_are_refused(tmp_path: Path, members: dict[str, str], message: str) -> None:
    src = tmp_path / "bad.zip"
    with zipfile.ZipFile(src, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    with pytest.raises(InputError, match=message) as exc:
        read_header(src)
    assert str(src) in str(exc.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (MINI[: len(MINI) // 2], "truncated XML near byte"),
        (release_xml([], root='other xmlns="http://www.drugbank.ca"'), "root element is"),
        (release_xml([], root='drugbank xmlns="http://example.org"'), "expected <drugbank> in namespace"),
        (release_xml([]), "no <drug> records"),
        ("not xml at all", "not a well-formed XML"),
        (
            (
                '<?xml version="1.0"?><!DOCTYPE drugbank [<!ENTITY x "xxxxxxxx">]>'
                f'<drugbank xmlns="{NS}" version="5.1"><drug>&x;</drug></drugbank>'
            ),
            "DOCTYPE",
        ),
        (
            release_xml([drug_xml("DB00001", "A", []), drug_xml("DB00001", "B", [])]),
            "duplicate primary drugbank-id DB00001",
        ),
        (MINI.replace("\n", "\n" + "<!---->" * 160_000, 1), "no XML root element in the first 1,048,576"),
        (MINI + "<!---->" * 160_000, "over 1,048,576 bytes after the </drugbank> end"),
    ],
)
def test_bad_input_gives_clear_error_and_no_output(tmp_path: Path, text: str, message: str) -> None:
    src = write(tmp_path, "release.xml", text)
    run = StageRun("ingest", "test", {}, {"source": message}, tmp_path / "runs")
    with pytest.raises(InputError, match=message) as exc:
        run_stage(run, lambda tmp: ingest(src, tmp))
    assert str(src) in str(exc.value) and "\n" not in str(exc.value)
    assert not run.out.exists()
    assert list(run.out.parent.iterdir()) == []  # no work directory left behind


def test_zip_member_over_the_uncompressed_cap_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "drugbank.zip"
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("full database.xml", MINI)
    run = StageRun("ingest", "test", {}, {}, tmp_path / "runs")
    with pytest.raises(
        InputError,
        match=rf"'full database.xml' is {len(MINI):,} bytes uncompressed, "
        r"over the limit of 1,000 \(ingest.max_uncompressed_bytes\)",
    ) as exc:
        run_stage(run, lambda tmp: ingest(src, tmp, IngestConfig(max_uncompressed_bytes=1000)))
    assert str(src) in str(exc.value) and not run.out.exists()


def test_zip_member_bytes_are_counted_not_read_from_its_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zip reader that yields more than the member's header declares is stopped at the cap all the same."""

    @contextmanager
    def lying_zip(path: Path, max_uncompressed_bytes: int | None = None) -> Iterator[tuple[io.BytesIO, str]]:
        yield io.BytesIO(MINI.encode()), "db.xml"

    monkeypatch.setattr(ingest_module, "open_source", lying_zip)
    with pytest.raises(
        InputError,
        match=r"'db.xml' is at least [\d,]+ bytes uncompressed, over the "
        r"limit of 1,000 ",
    ):
        ingest(tmp_path / "db.zip", tmp_path, IngestConfig(max_uncompressed_bytes=1000))


def test_oversized_record_is_refused(tmp_path: Path) -> None:
    big = drug_xml("DB00001", "Alpha", []).replace("</drug>", "<x/>" * 100_000 + "</drug>")  # a 400 KB record
    src = write(tmp_path, "big.xml", release_xml([big]))
    with pytest.raises(
        InputError,
        match=r"big.xml: the <drug> record at line 2 is over 100,000 bytes "
        r"\(ingest.max_record_bytes\)",
    ):
        ingest(src, tmp_path, IngestConfig(max_record_bytes=100_000))


PEAK_RSS_GROWTH_MB = """
import resource, sys
from pathlib import Path
from mard_core.ingest import ingest
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ingest(Path(sys.argv[1]), Path(sys.argv[2]))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_memory_stays_bounded_whatever_sits_beside_the_drugs(tmp_path: Path) -> None:
    """4M non-drug elements (16 MB; a 16 KB zip) before the drugs, flat and nested; held, they take 490 MB."""
    src = tmp_path / "junk.zip"
    head, drugs = MINI.split("<drug ", 1)
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("db.xml", "w") as f:
        f.write(head.encode() + b"<x/>" * 1_000_000)  # junk under the root, then a junk subtree
        f.write(b"<x>" + b"<y/>" * 3_000_000 + b"</x><drug " + drugs.encode())
    out = tmp_path / "out"
    out.mkdir()
    child = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_GROWTH_MB, str(src), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert int(child.stdout) < 250  # MB over the imports; ~75 MB (Parquet, Polars) with or without the junk


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"), open_source(tmp_path / "nope.xml"):
        pass


def test_fixture_exact_values(tmp_path: Path, fixture_xml: Path) -> None:
    fields = ingest(fixture_xml, tmp_path)
    assert fields["counts"]["drugs"] == 16 and fields["unknown_partner_elements"] == 0
    cyp = pl.read_parquet(tmp_path / "drug_proteins.parquet").filter(
        (pl.col("drug_id") == "DB00582") & (pl.col("gene_name") == "CYP3A4")
    )
    assert cyp.to_dicts() == [
        {
            "drug_id": "DB00582",
            "kind": "enzyme",
            "be_id": "BE0002638",
            "name": "Cytochrome P450 3A4",
            "organism": "Humans",
            "actions": ["substrate", "inhibitor"],
            "known_action": "no",
            "position": 3,
            "uniprot_id": "P08684",
            "gene_name": "CYP3A4",
            "inhibition_strength": "strong",
            "induction_strength": None,
        }
    ]
    vori = (
        pl.read_parquet(tmp_path / "drugs.parquet")
        .filter(pl.col("drugbank_id") == "DB00582")
        .row(0, named=True)
    )
    assert (
        vori["name"] == "Voriconazole"
        and vori["atc_codes"] == ["J02AC03"]
        and vori["secondary_ids"] == ["APRD00373"]
    )
    ddi = pl.read_parquet(tmp_path / "interactions.parquet").filter(
        (pl.col("drug_id") == "DB00582") & (pl.col("partner_id") == "DB06626")
    )
    assert ddi["description"].to_list() == [
        "The metabolism of Axitinib can be decreased when combined with Voriconazole."
    ]


def test_synthetic_round_trip_matches_generator_truth(tmp_path: Path, small_release) -> None:
    release, truth = small_release
    fields = ingest(release, tmp_path)
    assert fields["counts"] == {
        "drugs": truth.n_drugs,
        "interactions": truth.n_interaction_elements,
        "drug_proteins": truth.n_drug_proteins,
        "pathways": truth.n_pathways,
    }
    assert fields["unknown_partner_elements"] == 0
    pairs = (
        pl.read_parquet(tmp_path / "interactions.parquet")
        .select(
            pl.min_horizontal("drug_id", "partner_id").alias("a"),
            pl.max_horizontal("drug_id", "partner_id").alias("b"),
        )
        .unique()
    )
    assert pairs.height == truth.n_pairs
