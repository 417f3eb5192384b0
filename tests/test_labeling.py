"""The sentence classifier and the pair-labelling function."""

from __future__ import annotations

import csv
import pickle
import re

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mard_core.errors import InputError
from mard_core.labeling import (
    AMBIGUOUS_NAMES,
    NAMES_NOT_FOUND,
    NO_TEMPLATE,
    UNKNOWN_PARTNER,
    UNKNOWN_PHRASE,
    Classifier,
    classify,
    classify_records,
    label_pairs,
)
from mard_core.taxonomy import A_TO_B, B_TO_A, BIDIRECTIONAL, load_taxonomy, mirror_direction
from schemas import DDI_PAIRS, SCHEMA_DIR

REFERENCE = SCHEMA_DIR / "reference"  # see its README.md for sources and licences


def _templates() -> list[tuple[str, str, str]]:
    """(id, template text, subject column) of both reference lists."""
    with open(REFERENCE / "ddi_types_86.csv", newline="") as fh:
        out = [(f"86-{r['Interaction type']}", r["Description"], r["Subject"]) for r in csv.DictReader(fh)]
    lines = (REFERENCE / "ddi_types_113.txt").read_text().splitlines()[1:]
    out += [(f"113-{c[1]}", c[2], c[0]) for c in (line.split("\t") for line in lines if line.strip())]
    return out


TEMPLATES = _templates()
NAME_PAIRS = [
    ("Voriconazole", "Axitinib"),
    ("Estradiol valerate", "Estradiol"),  # one name contains the other
    ("Factor IX Complex (Human)", "Neomycin, polymyxin B, and hydrocortisone"),  # parens, commas, "and"
    ("Lutetium Lu-177 [DOTA]*+?", "Ñandú-β-carotène"),  # regex metacharacters, unicode
]


def _expected_family(template: str) -> str:
    """An independent keyword reading of what family a template expresses."""
    t = template.lower()
    for keys, family in (
        (("metabolism",), "PK Metabolism"),
        (("absorption", "bioavailability"), "PK Absorption"),
        (("protein binding",), "PK Distribution"),
        (("excretion",), "PK Excretion"),
        (("serum concentration",), "PK Exposure"),
    ):
        if any(k in t for k in keys):
            return family
    return "PD Antagonistic" if re.search(r"\bdecrease", t) else "PD Additive"


def _expected_actor(template: str) -> str | None:
    """The placeholder of the drug that acts, None for symmetric 'risk or severity' sentences."""
    if template.startswith("The risk or severity"):
        return None
    slots = re.findall(r"#Drug[12]", template)
    return slots[0] if template.startswith("#Drug") else slots[-1]


def test_template_lists_are_complete() -> None:
    assert len(TEMPLATES) == 86 + 113


def test_subject_column_marks_symmetric_templates() -> None:
    # Subject 3 (both lists) marks the symmetric sentences, except that the 113 list also gives 3 to the
    # hypersensitivity sentence, which names the drug the reaction is to: the classifier reads it as
    # directional (the 86 list agrees: subject 2).
    for tid, text, subject in TEMPLATES:
        if "hypersensitivity reaction to" in text:
            continue
        assert (subject == "3") == text.startswith("The risk or severity"), tid


@pytest.mark.parametrize(("tid", "template", "subject"), TEMPLATES, ids=[t[0] for t in TEMPLATES])
def test_every_template_is_labelled(tid: str, template: str, subject: str) -> None:
    tax = load_taxonomy()
    actor = _expected_actor(template)
    for first, second in NAME_PAIRS:
        sentence = template.replace("#Drug1", first).replace("#Drug2", second)
        for a_is_drug1 in (True, False):
            a, b = (first, second) if a_is_drug1 else (second, first)
            c = classify(sentence, [a], [b])
            assert c.matched, (tid, sentence, c.reason)
            assert c.family == _expected_family(template), (tid, c)
            assert not c.fallback, (tid, c)  # every listed phrase has a subtype of its own
            tax.validate_label(c.label)
            if actor is None:
                assert c.direction == BIDIRECTIONAL, tid
            else:
                a_acts = (actor == "#Drug1") == a_is_drug1
                assert c.direction == (A_TO_B if a_acts else B_TO_A), (tid, sentence, a, c)


def test_voriconazole_axitinib_example() -> None:
    sentence = "The metabolism of Axitinib can be decreased when combined with Voriconazole."
    c = classify(sentence, ["Voriconazole"], ["Axitinib"])
    assert str(c.label) == "PK Metabolism/Metabolism/A to B/Inhibition"
    assert c.template == "property_change" and c.phrase == "metabolism"
    assert c.masked == "The metabolism of {B} can be decreased when combined with {A}."
    # The same sentence read from axitinib's record: direction follows the sentence, not the record.
    assert (
        str(classify(sentence, ["Axitinib"], ["Voriconazole"]).label)
        == "PK Metabolism/Metabolism/B to A/Inhibition"
    )


@pytest.mark.parametrize(
    ("sentence", "label"),
    [
        (
            (
                "The risk or severity of bleeding and hemorrhage "
                "can be increased when Warfarin is combined with Aspirin."
            ),
            "PD Additive/Bleeding/Bidirectional/Increase",
        ),
        (
            (
                "The risk or severity of bleeding and bruising "
                "can be increased when Aspirin is combined with Warfarin."
            ),
            "PD Additive/Bleeding/Bidirectional/Increase",
        ),
        (
            (
                "The risk or severity of gastrointestinal bleeding "
                "can be increased when Aspirin is combined with Warfarin."
            ),
            "PD Additive/Gastrointestinal bleeding/Bidirectional/Increase",
        ),
        (
            (
                "The risk or severity of thrombocytopenia "
                "can be increased when Aspirin is combined with Warfarin."
            ),
            "PD Additive/Thrombocytopenia/Bidirectional/Increase",
        ),
        (
            "The risk or severity of CNS depression can be increased when Aspirin is combined with Warfarin.",
            "PD Additive/CNS depression/Bidirectional/Increase",
        ),
        ("Aspirin may increase the sparkling activities of Warfarin.", "PD Additive/Other/A to B/Increase"),
        (
            "The risk or severity of glitter can be increased when Aspirin is combined with Warfarin.",
            "PD Additive/Other risk/Bidirectional/Increase",
        ),
        (
            "The metabolism of Aspirin can be increased when combined with Warfarin.",
            "PK Metabolism/Metabolism/B to A/Induction",
        ),
        (
            "The excretion of Warfarin can be decreased when combined with Aspirin.",
            "PK Excretion/Excretion/A to B/Decrease",
        ),
        (
            "Aspirin may increase the serum concentration of Warfarin.",
            "PK Exposure/Serum concentration/A to B/Increase",
        ),
        (
            (
                "The serum concentration of carbamazepine-10,11 epoxide (CBZ-E), an active metabolite of "
                "Warfarin, can be increased when used in combination with Aspirin."
            ),
            "PK Exposure/Active metabolite concentration/A to B/Increase",
        ),
        (
            (
                "The serum concentration of E3174, an active metabolite of Aspirin can be decreased when "
                "used in combination with Warfarin."
            ),
            "PK Exposure/Active metabolite concentration/B to A/Decrease",
        ),
        (
            (
                "The risk or severity of adverse effects "
                "can be decreased when Aspirin is combined with Warfarin."
            ),
            "PD Antagonistic/Adverse effects/Bidirectional/Decrease",
        ),
        (
            "The risk or severity of seizure can be decreased when Aspirin is combined with Warfarin.",
            "PD Antagonistic/Other risk/Bidirectional/Decrease",
        ),
        (
            (
                "Warfarin may increase the bradycardic, atrioventricular blocking (AV block), and "
                "arrhythmogenic activities of Aspirin."
            ),
            "PD Additive/Bradycardic/B to A/Increase",
        ),
        (
            (
                "The risk or severity of liver enzyme elevations "
                "can be increased when Warfarin is combined with Aspirin."
            ),
            "PD Additive/Hepatotoxicity/Bidirectional/Increase",
        ),
        (
            (
                "The risk or severity of neutropenia and thrombocytopenia can be increased when Warfarin is "
                "combined with  Aspirin."
            ),
            "PD Additive/Neutropenia/Bidirectional/Increase",
        ),
        (
            "The excretion of Aspirin can be increased when combined with Warfarin.",
            "PK Excretion/Excretion/B to A/Increase",
        ),
        (
            "Warfarin can cause a decrease in the bioavailability of Aspirin.",
            "PK Absorption/Bioavailability/B to A/Decrease",
        ),
    ],
)
def test_real_world_variants(sentence: str, label: str) -> None:
    assert str(classify(sentence, ["Aspirin"], ["Warfarin"]).label) == label


def test_fallback_flag_marks_other() -> None:
    c = classify("Aspirin may decrease the glittering activities of Warfarin.", ["Aspirin"], ["Warfarin"])
    assert (c.family, c.subtype, c.fallback, c.phrase) == ("PD Antagonistic", "Other", True, "glittering")


def test_whitespace_is_normalised() -> None:
    messy = "  The metabolism of\n        Axitinib can be\tdecreased when combined with\n Voriconazole. \n"
    c = classify(messy, ["Voriconazole"], ["Axitinib"])
    assert str(c.label) == "PK Metabolism/Metabolism/A to B/Inhibition"
    assert c.masked == "The metabolism of {B} can be decreased when combined with {A}."


def test_longest_name_wins_when_one_contains_the_other() -> None:
    s = "The metabolism of Estradiol can be decreased when combined with Estradiol valerate."
    assert classify(s, ["Estradiol"], ["Estradiol valerate"]).direction == B_TO_A
    assert classify(s, ["Estradiol valerate"], ["Estradiol"]).direction == A_TO_B
    # Estradiol's record lists the valerate salt as a name too: the partner's primary name still wins.
    assert classify(s, ["Estradiol", "Estradiol valerate"], ["Estradiol valerate"]).direction == B_TO_A


def test_word_boundaries_are_respected() -> None:
    s = "Estradiol may increase the thrombogenic activities of Ethinylestradiol."
    assert classify(s, ["Ethinylestradiol"], ["Estradiol"]).direction == B_TO_A


@pytest.mark.parametrize(
    ("sentence", "a", "b", "direction"),
    [
        # partner named by a synonym (brand name)
        (
            "The metabolism of Axitinib can be decreased when combined with Vfend.",
            ["Voriconazole", "Vfend"],
            ["Axitinib"],
            A_TO_B,
        ),
        # partner named by a salt whose name contains its primary name
        (
            "Midazolam may increase the respiratory depressant activities of Morphine sulfate.",
            ["Morphine", "Morphine sulfate"],
            ["Midazolam"],
            B_TO_A,
        ),
        # a salt not in the names list: the slot contains the primary name
        (
            "Midazolam may increase the respiratory depressant activities of Morphine tartrate.",
            ["Morphine"],
            ["Midazolam"],
            B_TO_A,
        ),
        # case differences
        (
            "THE METABOLISM OF AXITINIB CAN BE DECREASED WHEN COMBINED WITH VORICONAZOLE.",
            ["voriconazole"],
            ["axitinib"],
            A_TO_B,
        ),
        # " of " inside a name
        (
            (
                "The serum concentration of Tincture of opium "
                "can be increased when it is combined with Ritonavir."
            ),
            ["Ritonavir"],
            ["Tincture of opium"],
            A_TO_B,
        ),
        # unicode casefolding that changes length (ß -> ss)
        (
            "Weißdorn may increase the hypotensive activities of Amlodipine.",
            ["Amlodipine"],
            ["WEISSDORN"],
            B_TO_A,
        ),
        # the partner is not named in any known way: one resolved drug is enough
        (
            "Aspirin may increase the anticoagulant activities of Coumadin-X.",
            ["Aspirin"],
            ["Warfarin"],
            A_TO_B,
        ),
    ],
)
def test_hard_names(sentence: str, a: list[str], b: list[str], direction: str) -> None:
    c = classify(sentence, a, b)
    assert c.matched, c.reason
    assert c.direction == direction


def test_unmatched_reports_reason_and_leaves_fields_empty() -> None:
    c = classify("Axitinib and Voriconazole are best friends.", ["Voriconazole"], ["Axitinib"])
    assert not c.matched and c.reason == NO_TEMPLATE
    assert (c.family, c.subtype, c.direction, c.modality, c.label, c.template) == (None,) * 6
    assert c.masked == "{B} and {A} are best friends."


def test_unknown_property_and_unresolvable_names() -> None:
    c = classify(
        "The colour of Axitinib can be increased when combined with Voriconazole.",
        ["Voriconazole"],
        ["Axitinib"],
    )
    assert (c.matched, c.reason, c.phrase) == (False, UNKNOWN_PHRASE, "colour")
    c = classify(
        "The metabolism of Foo can be decreased when combined with Bar.", ["Voriconazole"], ["Axitinib"]
    )
    assert (c.matched, c.reason) == (False, NAMES_NOT_FOUND)
    c = classify("The metabolism of Same can be decreased when combined with Same.", ["Same"], ["Same"])
    assert (c.matched, c.reason) == (False, AMBIGUOUS_NAMES)


def test_bad_names_raise() -> None:
    with pytest.raises(InputError, match="a_names"):
        classify("x", [], ["b"])
    with pytest.raises(InputError, match="sentence"):
        classify(None, ["a"], ["b"])  # type: ignore[arg-type]


def test_masked_templates_are_cached() -> None:
    clf = Classifier()
    for i in range(50):
        clf.classify(
            f"Drug{i}a may increase the sedative activities of Drug{i}b.", [f"Drug{i}a"], [f"Drug{i}b"]
        )
    info = clf._parse_masked.cache_info()
    assert (info.misses, info.hits) == (1, 49)


def test_name_inside_the_effect_phrase() -> None:
    s = (
        "The risk or severity of serotonin syndrome can be increased when Serotonin is combined with "
        "Tramadol."
    )
    c = classify(s, ["Serotonin"], ["Tramadol"])
    assert (c.subtype, c.direction, c.phrase) == ("Serotonin syndrome", BIDIRECTIONAL, "serotonin syndrome")
    s = "Serotonin may increase the serotonergic activities of Tramadol."
    assert classify(s, ["Tramadol"], ["Serotonin"]).direction == B_TO_A


def test_classifier_pickles_for_workers() -> None:
    clf = pickle.loads(pickle.dumps(Classifier()))
    c = clf.classify(
        "The metabolism of Axitinib can be decreased when combined with Voriconazole.",
        ["Voriconazole"],
        ["Axitinib"],
    )
    assert str(c.label) == "PK Metabolism/Metabolism/A to B/Inhibition"


def test_classify_records_in_order() -> None:
    records = [
        {
            "a": "Voriconazole",
            "b": "Axitinib",
            "sentence": "The metabolism of Axitinib can be decreased when combined with Voriconazole.",
        },
        {
            "a": ["Axitinib"],
            "b": ["Voriconazole", "Vfend"],
            "id": 7,
            "sentence": "The metabolism of Axitinib can be decreased when combined with Vfend.",
        },
        {"a": "X", "b": "Y", "sentence": "Nothing to see."},
    ]
    out = list(classify_records(records))
    assert [o["label"] for o in out] == [
        "PK Metabolism/Metabolism/A to B/Inhibition",
        "PK Metabolism/Metabolism/B to A/Inhibition",
        None,
    ]
    assert out[1]["id"] == 7 and out[2]["matched"] is False and out[2]["reason"] == NO_TEMPLATE
    assert set(out[0]) >= {"family", "subtype", "direction", "modality", "matched"}
    with pytest.raises(InputError, match="record 1"):
        list(classify_records([{"a": "X", "sentence": "s"}]))


NAME_POOL = [
    "Estradiol",
    "valerate",
    "Iron",
    "sucrose",
    "(human)",
    "Factor",
    "VIII",
    "Ñandú",
    "β-carotene",
    "5-FU",
    "C1",
    "esterase",
    "inhibitor,",
    "[11C]",
    "+",
    "Lu-177",
]
SENTENCES = [t for _, t, _ in TEMPLATES]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.sampled_from(SENTENCES),
    st.lists(st.sampled_from(NAME_POOL), min_size=1, max_size=3),
    st.lists(st.sampled_from(NAME_POOL), min_size=1, max_size=3),
)
def test_orientation_property(template: str, a_words: list[str], b_words: list[str]) -> None:
    a, b = " ".join(a_words), " ".join(b_words)
    if a.casefold() == b.casefold():
        return
    sentence = template.replace("#Drug1", a).replace("#Drug2", b)
    ab, ba = classify(sentence, [a], [b]), classify(sentence, [b], [a])
    assert ab.matched and ba.matched, (sentence, ab.reason)
    assert (ab.family, ab.subtype, ab.modality) == (ba.family, ba.subtype, ba.modality)
    assert ba.direction == mirror_direction(ab.direction)
    assert ab.label.mirrored() == ba.label


# ------------------------------------------------------------------------------------------- label_pairs

VORI, AXI, WARF, ASA, E2, E2V, UNKNOWN = (
    "DB00582",
    "DB06626",
    "DB00682",
    "DB00945",
    "DB00783",
    "DB13956",
    "DB99999",
)


def _frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    drugs = pl.DataFrame(
        {
            "drugbank_id": [VORI, AXI, WARF, ASA, E2, E2V],
            "name": ["Voriconazole", "Axitinib", "Warfarin", "Aspirin", "Estradiol", "Estradiol valerate"],
            "synonyms": [["Vfend"], [], ["Coumadin"], ["Acetylsalicylic acid"], None, []],
            "salt_names": [[], [], ["Warfarin sodium"], [], ["Estradiol valerate"], []],
        }
    )
    rows = [
        (
            AXI,
            VORI,
            "Voriconazole",
            "The metabolism of Axitinib can be decreased when combined with Voriconazole.",
        ),
        (
            VORI,
            AXI,
            "Axitinib",
            "The metabolism of Axitinib can be decreased when combined with\n    Voriconazole.",
        ),
        (
            WARF,
            ASA,
            "Aspirin",
            "The risk or severity of bleeding can be increased when Warfarin is combined with Aspirin.",
        ),
        (
            ASA,
            WARF,
            "Warfarin",
            "Acetylsalicylic acid may increase the anticoagulant activities of Warfarin.",
        ),
        (
            E2,
            E2V,
            "Estradiol valerate",
            (
                "The serum concentration of Estradiol valerate "
                "can be increased when it is combined with Estradiol."
            ),
        ),
        (E2V, WARF, "Warfarin", "Estradiol valerate may decrease the anticoagulant activities of Warfarin."),
        (VORI, UNKNOWN, "Unknownium", "Unknownium may increase the sedative activities of Voriconazole."),
        (WARF, AXI, "Axitinib", "Axitinib is a weird friend of Warfarin."),
        (ASA, E2, "Estradiol", "Aspirin may increase the sparkling activities of Estradiol."),
    ]
    interactions = pl.DataFrame(
        rows, schema=["drug_id", "partner_id", "partner_name", "description"], orient="row"
    )
    return drugs, interactions


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return label_pairs(*_frames())


def test_ddi_pairs_schema_and_canonical_order(result) -> None:  # type: ignore[no-untyped-def]
    pairs = result.ddi_pairs
    assert pairs.columns == DDI_PAIRS.names
    assert pairs.schema == pl.from_arrow(DDI_PAIRS.empty_table()).schema
    assert all(a < b for a, b in pairs.select("drug_a", "drug_b").iter_rows())
    assert pairs.select("drug_a", "drug_b").rows() == sorted(
        [(VORI, AXI), (WARF, ASA), (E2, E2V), (WARF, E2V), (E2, ASA)]
    )


def _pair(result, a: str, b: str) -> dict:  # type: ignore[no-untyped-def]
    return result.ddi_pairs.filter((pl.col("drug_a") == a) & (pl.col("drug_b") == b)).to_dicts()[0]


def test_both_listings_merged(result) -> None:  # type: ignore[no-untyped-def]
    row = _pair(result, VORI, AXI)
    assert row["label"] == "PK Metabolism/Metabolism/A to B/Inhibition"
    assert (row["n_listings"], row["listings_agree"]) == (2, True)
    assert (
        row["description"] == "The metabolism of Axitinib can be decreased when combined with Voriconazole."
    )
    assert (row["family"], row["subtype"], row["direction"], row["modality"]) == tuple(
        row["label"].split("/")
    )


def test_label_mirrored_when_record_drug_is_second(result) -> None:  # type: ignore[no-untyped-def]
    # Listed only under Estradiol valerate (DB13956), which is drug_b of the pair with Warfarin (DB00682).
    row = _pair(result, WARF, E2V)
    assert row["label"] == "PD Antagonistic/Anticoagulant/B to A/Decrease"
    assert (row["n_listings"], row["listings_agree"]) == (1, True)
    assert _pair(result, E2, E2V)["label"] == "PK Exposure/Serum concentration/A to B/Increase"


def test_disagreement_reported_and_drug_a_listing_wins(result) -> None:  # type: ignore[no-untyped-def]
    row = _pair(result, WARF, ASA)
    assert row["label"] == "PD Additive/Bleeding/Bidirectional/Increase"  # Warfarin (drug_a) record's listing
    assert (row["n_listings"], row["listings_agree"]) == (2, False)
    dis = result.disagreements.to_dicts()
    assert len(dis) == 1
    assert dis[0]["label_a_record"] == "PD Additive/Bleeding/Bidirectional/Increase"
    assert dis[0]["label_b_record"] == "PD Additive/Anticoagulant/B to A/Increase"
    assert dis[0]["description_b_record"].startswith("Acetylsalicylic acid may increase")


def test_quarantine_and_coverage(result) -> None:  # type: ignore[no-untyped-def]
    q = result.quarantine.to_dicts()
    assert [(r["drug_id"], r["partner_id"], r["reason"]) for r in q] == [
        (VORI, UNKNOWN, UNKNOWN_PARTNER),
        (WARF, AXI, NO_TEMPLATE),
    ]
    assert q[1]["masked_template"] == "{B} is a weird friend of {A}."
    stats = result.stats
    assert (stats["n_elements"], stats["n_labelled"], stats["n_quarantined"]) == (9, 7, 2)
    assert stats["coverage"] == pytest.approx(7 / 9)
    assert stats["unmatched_templates"] == {"{B} is a weird friend of {A}.": 1}
    assert stats["quarantine_reasons"] == {UNKNOWN_PARTNER: 1, NO_TEMPLATE: 1}


def test_stats_counts(result) -> None:  # type: ignore[no-untyped-def]
    stats = result.stats
    assert (stats["n_pairs"], stats["n_disagreements"]) == (5, 1)
    assert stats["family_counts"] == {
        "PD Additive": 2,
        "PD Antagonistic": 1,
        "PK Exposure": 1,
        "PK Metabolism": 1,
    }
    assert stats["subtype_counts"]["PD Additive/Bleeding"] == 1
    assert sum(stats["subtype_counts"].values()) == 5
    # Aspirin (DB00945) "may increase ... of Estradiol" (DB00783): read from Aspirin's record, so mirrored.
    assert stats["direction_counts"] == {"A to B": 2, "B to A": 2, "Bidirectional": 1}
    assert _pair(result, E2, ASA)["label"] == "PD Additive/Other/B to A/Increase"
    assert stats["other_phrases"] == {"PD Additive/Other": {"sparkling": 1}}
    assert stats["other_phrases_over_threshold"] == ["PD Additive/Other: sparkling"]


def test_label_pairs_rejects_bad_frames() -> None:
    drugs, interactions = _frames()
    with pytest.raises(InputError, match="interactions table is missing column.*description"):
        label_pairs(drugs, interactions.drop("description"))
    with pytest.raises(InputError, match="more than once"):
        label_pairs(pl.concat([drugs, drugs.head(1)]), interactions)


def test_label_pairs_chunking_does_not_change_results(result) -> None:  # type: ignore[no-untyped-def]
    again = label_pairs(*_frames(), chunk_rows=2)
    assert again.ddi_pairs.equals(result.ddi_pairs)
    assert again.quarantine.equals(result.quarantine)
