"""The mechanism taxonomy: loading, validation, labels and the mirror rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mard_core.errors import MardError
from mard_core.taxonomy import (
    A_TO_B,
    B_TO_A,
    BIDIRECTIONAL,
    DEFAULT_TAXONOMY_PATH,
    FAMILIES,
    Label,
    LabelError,
    TaxonomyError,
    load_taxonomy,
    mirror,
    mirror_direction,
)

TAX = load_taxonomy()
LABELS = TAX.labels()


def test_loads_seven_families_and_about_147_subtypes() -> None:
    assert [f.name for f in TAX.families] == list(FAMILIES)
    assert 130 <= len(TAX.subtypes) <= 170
    assert load_taxonomy() is TAX  # cached


def test_every_subtype_has_definition_and_compiled_patterns() -> None:
    for sub in TAX.subtypes:
        assert sub.definition and len(sub.definition) > 20, sub.name
        assert sub.patterns and all(p.pattern for p in sub.patterns), sub.name


def test_each_family_has_one_fallback_per_sentence_kind() -> None:
    for fam in TAX.families:
        for kind in {s.kind for s in fam.subtypes}:
            assert sum(s.fallback for s in fam.subtypes if s.kind == kind) == 1, (fam.name, kind)
        assert fam.fallback("directional") is not None
    assert TAX.family("PD Additive").fallback("symmetric").name == "Other risk"


def test_modalities_per_family() -> None:
    assert TAX.family("PK Metabolism").modalities == {"increase": "Induction", "decrease": "Inhibition"}
    assert TAX.family("PD Additive").modalities == {"increase": "Increase"}
    assert TAX.family("PD Antagonistic").modalities == {"decrease": "Decrease"}
    assert TAX.family("PK Exposure").modalities == {"increase": "Increase", "decrease": "Decrease"}


def test_other_threshold_is_stated() -> None:
    assert 0 < TAX.other_min_share < 0.01
    data = yaml.safe_load(DEFAULT_TAXONOMY_PATH.read_text())
    assert "min_share" in data["other_threshold"]["rule"]


def test_label_round_trip_for_every_label() -> None:
    symmetric = {(s.family, s.name) for s in TAX.subtypes if s.symmetric}
    assert {(lb.family, lb.subtype) for lb in LABELS if lb.direction == BIDIRECTIONAL} == symmetric
    for sub in TAX.subtypes:
        if not sub.symmetric:
            assert {lb.direction for lb in LABELS if (lb.family, lb.subtype) == (sub.family, sub.name)} == {
                A_TO_B,
                B_TO_A,
            }
    for label in LABELS:
        assert Label.parse(str(label)) == label
        assert TAX.validate_label(label) is label


def test_label_string_form() -> None:
    label = Label("PK Metabolism", "Metabolism", A_TO_B, "Inhibition")
    assert str(label) == "PK Metabolism/Metabolism/A to B/Inhibition"


@pytest.mark.parametrize(
    "text",
    [
        "PK Metabolism/Metabolism/A to B",
        "a/b/c/d/e",
        "PK Metabolism//A to B/Increase",
        "PK Metabolism/Metabolism/sideways/Inhibition",
        "PK Metabolism/Metabolism/A to B/Stronger",
    ],
)
def test_label_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(LabelError):
        Label.parse(text)


@pytest.mark.parametrize(
    "label",
    [
        Label("PD Additive", "Bleeding", A_TO_B, "Increase"),  # symmetric subtype needs Bidirectional
        Label("PK Metabolism", "Metabolism", BIDIRECTIONAL, "Inhibition"),  # directional subtype
        Label("PK Metabolism", "Metabolism", A_TO_B, "Increase"),  # PK Metabolism takes Inhibition/Induction
        Label("PD Additive", "Hypotensive", A_TO_B, "Decrease"),  # additive only increases
        Label("PD Additive", "No such subtype", A_TO_B, "Increase"),
        Label("PK Teleportation", "Metabolism", A_TO_B, "Increase"),
    ],
)
def test_validate_label_rejects_inconsistent(label: Label) -> None:
    with pytest.raises(LabelError):
        TAX.validate_label(label)


def test_mirror_direction() -> None:
    assert mirror_direction(A_TO_B) == B_TO_A
    assert mirror_direction(B_TO_A) == A_TO_B
    assert mirror_direction(BIDIRECTIONAL) == BIDIRECTIONAL
    with pytest.raises(LabelError):
        mirror_direction("A from B")


def test_mirror_rule() -> None:
    label = Label("PK Metabolism", "Metabolism", A_TO_B, "Inhibition")
    assert mirror(label) == Label("PK Metabolism", "Metabolism", B_TO_A, "Inhibition")
    symmetric = Label("PD Additive", "QTc prolongation", BIDIRECTIONAL, "Increase")
    assert mirror(symmetric) == symmetric


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.sampled_from(LABELS))
def test_mirror_twice_is_identity_and_stays_valid(label: Label) -> None:
    assert mirror(mirror(label)) == label
    assert TAX.validate_label(mirror(label)) == mirror(label)
    assert (mirror(label) == label) == TAX.is_symmetric(label.family, label.subtype)


def test_is_symmetric() -> None:
    assert TAX.is_symmetric("PD Additive", "Bleeding")
    assert not TAX.is_symmetric("PD Additive", "Anticoagulant")
    assert not TAX.is_symmetric("PK Metabolism", "Metabolism")


@pytest.mark.parametrize(
    ("phrase", "polarity", "kind", "pd_only", "expected"),
    [
        ("bleeding and hemorrhage", "increase", "symmetric", True, "Bleeding"),
        ("bleeding and bruising", "increase", "symmetric", True, "Bleeding"),
        ("gastrointestinal bleeding", "increase", "symmetric", True, "Gastrointestinal bleeding"),
        ("thrombocytopenia", "increase", "symmetric", True, "Thrombocytopenia"),
        ("congestive heart failure and hypotension", "increase", "symmetric", True, "Heart failure"),
        ("ventricular arrhythmias", "increase", "symmetric", True, "Ventricular arrhythmia"),
        ("an unheard-of itch", "increase", "symmetric", True, "Other risk"),
        ("orthostatic hypotensive", "increase", "directional", True, "Orthostatic hypotensive"),
        (
            "hypotensive and central nervous system depressant (CNS depressant)",
            "increase",
            "directional",
            True,
            "Hypotensive",
        ),
        ("central neurotoxic", "increase", "directional", True, "Central neurotoxic"),
        ("antihypertensive", "decrease", "directional", True, "Antihypertensive"),
        ("glittering", "decrease", "directional", True, "Other"),
        ("excretion rate", "decrease", "directional", False, "Excretion rate"),
        (
            "serum concentration of the active metabolites",
            "increase",
            "directional",
            False,
            "Active metabolite concentration",
        ),
        ("serum concentration", "increase", "directional", False, "Serum concentration"),
        ("metabolism", "increase", "directional", False, "Metabolism"),
        ("therapeutic efficacy", "decrease", "directional", False, "Therapeutic efficacy"),
    ],
)
def test_match_subtype(phrase: str, polarity: str, kind: str, pd_only: bool, expected: str) -> None:
    sub = TAX.match_subtype(phrase, polarity, kind, pd_only=pd_only)
    assert sub is not None and sub.name == expected


def test_match_subtype_property_without_pattern_is_none() -> None:
    assert TAX.match_subtype("colour", "increase", "directional", pd_only=False) is None
    assert TAX.match_subtype("colour", "increase", "symmetric", pd_only=False) is None
    assert (
        TAX.match_subtype("adverse effects", "decrease", "symmetric", pd_only=True).family
        == "PD Antagonistic"
    )


def _write_variant(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(DEFAULT_TAXONOMY_PATH.read_text())
    mutate(data)
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _subtypes(data: dict, family: str) -> list[dict]:
    return next(f for f in data["families"] if f["name"] == family)["subtypes"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["families"][0].update(name="PK Teleportation"), "unknown family 'PK Teleportation'"),
        (
            lambda d: _subtypes(d, "PK Metabolism").append(dict(_subtypes(d, "PK Metabolism")[0])),
            "duplicate subtype 'Metabolism'",
        ),
        (
            lambda d: _subtypes(d, "PK Excretion")[0].update(patterns=["(unclosed"]),
            "subtype 'Excretion rate': bad regex",
        ),
        (
            lambda d: _subtypes(d, "PK Exposure")[0].pop("definition"),
            "subtype 'Serum concentration' is missing 'definition'",
        ),
        (lambda d: _subtypes(d, "PK Absorption")[-1].pop("fallback"), "exactly one fallback"),
        (lambda d: d["families"].pop(), "missing: ['PD Antagonistic']"),
        (
            lambda d: d["families"][2].update(modalities={"increase": "Increase"}),
            "family 'PK Metabolism': modalities",
        ),
        (lambda d: d.pop("other_threshold"), "other_threshold.min_share"),
    ],
)
def test_validation_errors_name_file_and_entry(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _write_variant(tmp_path, mutate)
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert isinstance(info.value, MardError)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="cannot read taxonomy"):
        load_taxonomy(tmp_path / "absent.yaml")
