"""Tests of the data-quality gate core (mard_core.quality) and the ingest suite files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mard_core.errors import InputError, MardError
from mard_core.quality import (
    SUITE_DIR,
    QualityConfigError,
    SuiteResult,
    build_suite,
    ingest_params,
    load_suite,
    row_count_params,
    run_suite,
    table_row_counts,
    validate_tables,
)
from mard_core.quality_config import QualityConfig
from mard_core.validation import parse_config
from schemas import INGEST_TABLES

IDS = ["DB00001", "DB00002", "DB00003", "DB00004"]


def _rows() -> dict[str, list[dict[str, Any]]]:
    """A small, clean ingest table set (as rows, so tests can mutate them)."""
    pairs = [(a, b) for a in IDS for b in IDS if a != b]  # 12 listings, each pair under both drugs
    return {
        "drugs": [{"drugbank_id": i, "name": f"drug {i[-1]}"} for i in IDS],
        "interactions": [
            {
                "drug_id": a,
                "partner_id": b,
                "partner_name": f"drug {b[-1]}",
                "description": f"{a} may affect {b}.",
            }
            for a, b in pairs
        ],
        "drug_proteins": [
            {"drug_id": i, "kind": kind, "be_id": f"BE000000{n}", "position": 1}
            for n, (i, kind) in enumerate(
                zip(IDS, ("target", "enzyme", "carrier", "transporter"), strict=True)
            )
        ],
        "pathways": [
            {"pathway_id": f"SMP000000{n}", "name": f"pathway {n}", "drug_ids": IDS[:2]} for n in range(3)
        ],
    }


def _table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=INGEST_TABLES[name])


def _write(tmp_path: Path, rows: dict[str, list[dict[str, Any]]]) -> dict[str, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, table_rows in rows.items():
        paths[name] = tmp_path / f"{name}.parquet"
        pq.write_table(_table(name, table_rows), paths[name])
    return paths


def _params(**overrides: Any) -> dict[str, Any]:
    counts = {name: len(r) for name, r in _rows().items()}
    params = {
        "drug_ids": set(IDS),
        "protein_kinds": ("target", "enzyme", "carrier", "transporter"),
        "partner_resolvable_mostly": 0.99,
        **row_count_params(counts, None, 0.5),
    }
    return {**params, **overrides}


def test_clean_ingest_tables_pass_and_write_results_and_data_docs(tmp_path: Path) -> None:
    paths = _write(tmp_path / "in", _rows())
    params = ingest_params(paths, None, QualityConfig())
    assert params["drug_ids"] == IDS
    out = tmp_path / "gate"
    report = validate_tables(paths, params, out)
    assert report.success, report.summary_markdown()
    assert report.row_counts == {"drugs": 4, "interactions": 12, "drug_proteins": 4, "pathways": 3}
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(report.to_dict()))
    assert saved["data_docs"] == "data_docs/index.html" and saved["success"] is True
    index = (out / "data_docs" / "index.html").read_text()
    for suite in paths:
        assert suite in index
    assert sorted(p.name for p in out.iterdir()) == ["data_docs", "results.json"]  # no staging leftovers


def test_results_keep_suite_file_order_and_resolve_params() -> None:
    result = run_suite("interactions", _table("interactions", _rows()["interactions"]), _params())
    assert [e.expectation for e in result.expectations] == [e["type"] for e in load_suite("interactions")]
    partner = result.expectations[5]
    assert partner.target == "partner_id" and partner.kwargs["mostly"] == 0.99
    assert partner.kwargs["value_set"] == IDS  # short sets are shown in full, long ones summarised


def _mutate_bad_id(rows: dict[str, list[dict[str, Any]]]) -> str:
    rows["drugs"][1]["drugbank_id"] = "DBX0002"
    return "drugs"


def _mutate_duplicate_id(rows: dict[str, list[dict[str, Any]]]) -> str:
    rows["drugs"][3]["drugbank_id"] = "DB00001"
    return "drugs"


def _mutate_null_description(rows: dict[str, list[dict[str, Any]]]) -> str:
    rows["interactions"][0]["description"] = None
    return "interactions"


def _mutate_protein_kind(rows: dict[str, list[dict[str, Any]]]) -> str:
    rows["drug_proteins"][2]["kind"] = "receptor"
    return "drug_proteins"


def _mutate_unknown_partner(rows: dict[str, list[dict[str, Any]]]) -> str:
    rows["interactions"][4]["partner_id"] = "DB99999"  # 1 of 12 = 8% > the tolerated 1%
    return "interactions"


def _mutate_duplicate_pathway(rows: dict[str, list[dict[str, Any]]]) -> str:
    rows["pathways"][2]["pathway_id"] = rows["pathways"][0]["pathway_id"]
    return "pathways"


def _mutate_position(rows: dict[str, list[dict[str, Any]]]) -> str:
    rows["drug_proteins"][0]["position"] = 0
    return "drug_proteins"


@pytest.mark.parametrize(
    ("mutate", "expectation", "column", "example"),
    [
        (_mutate_bad_id, "expect_column_values_to_match_regex", "drugbank_id", "DBX0002"),
        (_mutate_duplicate_id, "expect_column_values_to_be_unique", "drugbank_id", "DB00001"),
        (_mutate_null_description, "expect_column_values_to_not_be_null", "description", None),
        (_mutate_protein_kind, "expect_column_values_to_be_in_set", "kind", "receptor"),
        (_mutate_unknown_partner, "expect_column_values_to_be_in_set", "partner_id", "DB99999"),
        (_mutate_duplicate_pathway, "expect_column_values_to_be_unique", "pathway_id", "SMP0000000"),
        (_mutate_position, "expect_column_values_to_be_between", "position", 0),
    ],
)
def test_each_defect_fails_exactly_the_expectation_that_names_it(
    mutate: Any, expectation: str, column: str, example: Any
) -> None:
    rows = _rows()
    table = mutate(rows)
    result = run_suite(table, _table(table, rows[table]), _params())
    assert not result.success
    assert [(f.expectation, f.target) for f in result.failures] == [(expectation, column)]
    assert result.failures[0].unexpected_examples == [example]
    assert result.failures[0].unexpected_count >= 1


def test_unknown_partners_below_the_tolerated_share_are_counted_not_failed() -> None:
    rows = _rows()
    _mutate_unknown_partner(rows)
    result = run_suite(
        "interactions", _table("interactions", rows["interactions"]), _params(partner_resolvable_mostly=0.9)
    )
    assert result.success
    partner = result.expectations[5]
    assert partner.unexpected_count == 1 and partner.unexpected_examples == ["DB99999"]


def test_row_count_outside_the_range_from_the_previous_release_fails() -> None:
    rows = _rows()
    counts = {name: len(r) for name, r in rows.items()}
    params = _params(**row_count_params(counts, {"drugs": 100, "interactions": 12}, 0.5))
    drugs = run_suite("drugs", _table("drugs", rows["drugs"]), params)
    assert [(f.expectation, f.observed_value) for f in drugs.failures] == [
        ("expect_table_row_count_to_be_between", 4)
    ]
    assert drugs.failures[0].kwargs == {"min_value": 50, "max_value": 150}
    assert run_suite("interactions", _table("interactions", rows["interactions"]), params).success


def test_row_count_params() -> None:
    params = row_count_params(
        {"drugs": 7, "interactions": 9, "pathways": 1}, {"drugs": 100, "pathways": 0}, 0.5
    )
    assert params == {
        "drugs_min_rows": 50,
        "drugs_max_rows": 150,
        "interactions_min_rows": 1,
        "interactions_max_rows": None,  # no previous count: loose
        "pathways_min_rows": 1,
        "pathways_max_rows": None,  # previous count 0: loose
    }
    assert row_count_params({"t": 1}, {"t": 10}, 0.1) == {"t_min_rows": 9, "t_max_rows": 11}  # exact bounds
    assert row_count_params({"t": 1}, {"t": 3}, 1.0) == {"t_min_rows": 1, "t_max_rows": 6}
    assert row_count_params({"t": 1}, None, 0.5) == {"t_min_rows": 1, "t_max_rows": None}
    with pytest.raises(QualityConfigError, match="max_row_change"):
        row_count_params({"t": 1}, None, -0.1)


def test_validate_tables_reports_failures_in_json_and_markdown(tmp_path: Path) -> None:
    rows = _rows()
    _mutate_null_description(rows)
    _mutate_protein_kind(rows)
    paths = _write(tmp_path, rows)
    report = validate_tables(
        paths, ingest_params(paths, None, QualityConfig()), tmp_path / "gate", docs=False
    )
    assert not report.success
    assert {t for t, r in report.suites.items() if not r.success} == {"interactions", "drug_proteins"}
    saved = json.loads((tmp_path / "gate" / "results.json").read_text())
    assert saved["success"] is False and saved["data_docs"] is None
    failing = [e for e in saved["suites"]["interactions"]["expectations"] if not e["success"]]
    assert [(e["expectation"], e["kwargs"]["column"], e["unexpected_examples"]) for e in failing] == [
        ("expect_column_values_to_not_be_null", "description", [None])
    ]
    markdown = report.summary_markdown()
    assert markdown.startswith("**Data quality: FAILED**: 2 of 4 suites passed, 2 failing expectation(s).")
    fail_rows = [line for line in markdown.splitlines() if "**FAIL**" in line]
    assert len(fail_rows) == 2
    assert (
        "| expect_column_values_to_not_be_null | description |  | **FAIL** | 1 unexpected (8.33%) |"
        in fail_rows[0]
    )
    assert (
        "| expect_column_values_to_be_in_set | kind | "
        '`value_set=["target", "enzyme", "carrier", "transporter"]` |' in fail_rows[1]
    )
    assert fail_rows[1].endswith("| `receptor` |")
    assert "| expect_table_row_count_to_be_between | (table) | `min_value=1` | pass | 12 |" in markdown
    assert not (tmp_path / "gate" / "data_docs").exists()


def test_rerun_replaces_data_docs_and_suite_mapping_names_the_suite(tmp_path: Path) -> None:
    rows = _rows()
    paths = _write(tmp_path, {"drugs": rows["drugs"]})
    out = tmp_path / "gate"
    validate_tables(paths, _params(), out)
    report = validate_tables({"drugs_copy": paths["drugs"]}, _params(), out, suites={"drugs_copy": "drugs"})
    assert report.success and report.suites["drugs_copy"].suite == "drugs"
    assert sorted(p.name for p in out.iterdir()) == ["data_docs", "results.json"]
    assert "drugs_copy" in json.loads((out / "results.json").read_text())["suites"]
    with pytest.raises(QualityConfigError, match="not passed: \\['nope'\\]"):
        validate_tables(paths, _params(), out, suites={"nope": "drugs"})


def test_run_suite_writes_data_docs_for_one_table(tmp_path: Path) -> None:
    result = run_suite(
        "pathways", _table("pathways", _rows()["pathways"]), _params(), docs_dir=tmp_path / "docs"
    )
    assert isinstance(result, SuiteResult) and result.success
    assert "pathways" in (tmp_path / "docs" / "index.html").read_text()


def test_missing_column_is_a_failed_expectation_with_the_error() -> None:
    table = _table("interactions", _rows()["interactions"]).drop_columns(["description"])
    result = run_suite("interactions", table, _params())
    (failure,) = result.failures
    assert failure.target == "description" and failure.error and "description" in failure.error


def test_unknown_param_names_the_file_and_the_parameter() -> None:
    params = _params()
    del params["drug_ids"]
    with pytest.raises(QualityConfigError) as err:
        build_suite("interactions", params)
    message = str(err.value)
    assert str(SUITE_DIR / "interactions.json") in message and "'drug_ids'" in message
    assert isinstance(err.value, MardError)


def _suite_file(tmp_path: Path, content: str) -> Path:
    (tmp_path / "bad.json").write_text(content)
    return tmp_path


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("[", "not valid JSON"),
        ("[]", "non-empty JSON list"),
        ('{"type": "x"}', "non-empty JSON list"),
        ('[{"type": "expect_column_values_to_not_be_null"}]', "'type', 'kwargs'"),
        (
            '[{"type": "ExpectColumnValuesToNotBeNull", "kwargs": {"column": "a"}}]',
            "unknown expectation type",
        ),
        (
            '[{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "x": 1}]',
            "'type', 'kwargs'",
        ),
    ],
)
def test_malformed_suite_files_are_rejected_naming_the_file(tmp_path: Path, content: str, match: str) -> None:
    with pytest.raises(QualityConfigError, match=match) as err:
        load_suite("bad", suite_dir=_suite_file(tmp_path, content))
    assert str(tmp_path / "bad.json") in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ('{"column": "a", "value_set": {"$param": "s", "extra": 1}}', "exactly"),
        ('{"column": "a", "value_set": {"$param": "s"}, "mostly": 2}', "invalid kwargs"),
    ],
)
def test_bad_params_and_kwargs_are_rejected(tmp_path: Path, kwargs: str, match: str) -> None:
    suite_dir = _suite_file(
        tmp_path, f'[{{"type": "expect_column_values_to_be_in_set", "kwargs": {kwargs}}}]'
    )
    with pytest.raises(QualityConfigError, match=match) as err:
        build_suite("bad", {"s": {"a"}}, suite_dir=suite_dir)
    assert "bad.json: expectation #0 (expect_column_values_to_be_in_set)" in str(err.value)


def test_a_new_gate_is_a_suite_file_plus_params(tmp_path: Path) -> None:
    (tmp_path / "pairs.json").write_text(
        json.dumps(
            [
                {
                    "type": "expect_column_pair_values_a_to_be_greater_than_b",
                    "kwargs": {"column_A": "drug_b", "column_B": "drug_a"},
                },
                {
                    "type": "expect_compound_columns_to_be_unique",
                    "kwargs": {"column_list": ["drug_a", "drug_b"]},
                },
                {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": "direction", "value_set": {"$param": "dirs"}},
                },
            ]
        )
    )
    table = pa.table(
        {
            "drug_a": ["DB00001", "DB00003", "DB00001"],
            "drug_b": ["DB00002", "DB00002", "DB00004"],
            "direction": ["A to B", "B to A", "Bidirectional"],
        }
    )
    result = run_suite("pairs", table, {"dirs": ("A to B", "B to A", "Bidirectional")}, suite_dir=tmp_path)
    assert [(f.expectation, f.target, f.unexpected_examples) for f in result.failures] == [
        ("expect_column_pair_values_a_to_be_greater_than_b", "drug_b, drug_a", [["DB00002", "DB00003"]])
    ]


def test_missing_suite_and_table_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(QualityConfigError, match="no such quality suite file") as err:
        load_suite("drugz")
    assert "drugz.json" in str(err.value) and "'drugs'" in str(err.value)
    with pytest.raises(InputError, match="missing.parquet: table file not found"):
        run_suite("drugs", tmp_path / "missing.parquet", _params())
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="junk.parquet: not a readable Parquet file"):
        table_row_counts({"drugs": tmp_path / "junk.parquet"})
    with pytest.raises(QualityConfigError, match="'drugs' table"):
        ingest_params({}, None, QualityConfig())
    pq.write_table(pa.table({"id": ["DB00001"]}), tmp_path / "drugs.parquet")
    with pytest.raises(InputError, match="drugs.parquet: the drugs table has no 'drugbank_id' column"):
        ingest_params({"drugs": tmp_path / "drugs.parquet"}, None, QualityConfig())


def test_shipped_suites_load_and_use_protein_kinds_from_the_schema() -> None:
    for path in sorted(SUITE_DIR.glob("*.json")):
        assert load_suite(path.stem)
    from schemas import PROTEIN_KINDS

    kinds = build_suite("drug_proteins", _params(protein_kinds=PROTEIN_KINDS))[3]
    assert kinds.column == "kind" and set(kinds.value_set) == set(PROTEIN_KINDS)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_row_change": -1.0}, "quality: max_row_change: must be >= 0.0, got -1.0"),
        ({"max_row_change": float("inf")}, "quality: max_row_change: must be a finite number, got inf"),
        ({"partner_resolvable_mostly": 0.0}, "quality: partner_resolvable_mostly: must be > 0.0, got 0.0"),
    ],
)
def test_quality_config_rejects_bad_values(options: dict[str, float], message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_config(QualityConfig, options, "quality")
    assert str(info.value) == message
