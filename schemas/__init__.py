"""Arrow schemas of every table MARD writes, in one place.

Each stage writes Parquet with exactly these schemas; tests and data-quality gates read them from here.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

SCHEMA_DIR = Path(__file__).resolve().parent

_str_list = pa.list_(pa.string())

DRUGS = pa.schema(
    [
        pa.field("drugbank_id", pa.string(), nullable=False),
        pa.field("secondary_ids", _str_list),
        pa.field("name", pa.string(), nullable=False),
        pa.field("type", pa.string()),
        pa.field("groups", _str_list),
        pa.field("description", pa.string()),
        pa.field("cas_number", pa.string()),
        pa.field("unii", pa.string()),
        pa.field("state", pa.string()),
        pa.field("smiles", pa.string()),
        pa.field("inchikey", pa.string()),
        pa.field("atc_codes", _str_list),
        pa.field("categories", _str_list),
        pa.field("synonyms", _str_list),
        pa.field("salt_names", _str_list),
        pa.field("mechanism_of_action", pa.string()),
        pa.field("created", pa.date32()),
        pa.field("updated", pa.date32()),
    ]
)

INTERACTIONS = pa.schema(
    [
        pa.field("drug_id", pa.string(), nullable=False),
        pa.field("partner_id", pa.string(), nullable=False),
        pa.field("partner_name", pa.string()),
        pa.field("description", pa.string()),
    ]
)

DRUG_PROTEINS = pa.schema(
    [
        pa.field("drug_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # target | enzyme | carrier | transporter
        pa.field("be_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("organism", pa.string()),
        pa.field("actions", _str_list),
        pa.field("known_action", pa.string()),
        pa.field("position", pa.int32()),
        pa.field("uniprot_id", pa.string()),
        pa.field("gene_name", pa.string()),
        pa.field("inhibition_strength", pa.string()),
        pa.field("induction_strength", pa.string()),
    ]
)

PATHWAYS = pa.schema(
    [
        pa.field("pathway_id", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("category", pa.string()),
        pa.field("drug_ids", _str_list),
        pa.field("enzyme_uniprot_ids", _str_list),
    ]
)

INGEST_TABLES: dict[str, pa.Schema] = {
    "drugs": DRUGS,
    "interactions": INTERACTIONS,
    "drug_proteins": DRUG_PROTEINS,
    "pathways": PATHWAYS,
}

PROTEIN_KINDS = ("target", "enzyme", "carrier", "transporter")

LABEL_FIELDS = ("family", "subtype", "direction", "modality")

DDI_PAIRS = pa.schema(
    [
        pa.field("drug_a", pa.string(), nullable=False),  # canonical order: drug_a < drug_b
        pa.field("drug_b", pa.string(), nullable=False),
        pa.field(
            "label", pa.string(), nullable=False
        ),  # Family/Subtype/Direction/Modality, (drug_a, drug_b) order
        pa.field("family", pa.string(), nullable=False),
        pa.field("subtype", pa.string(), nullable=False),
        pa.field("direction", pa.string(), nullable=False),  # "A to B" | "B to A" | "Bidirectional"
        pa.field("modality", pa.string(), nullable=False),
        pa.field("description", pa.string()),  # the sentence the label was read from
        pa.field("n_listings", pa.int8()),  # 1 or 2: how many drug records list the pair
        pa.field("listings_agree", pa.bool_()),
    ]
)

SPLIT = pa.schema([DDI_PAIRS.field(n) for n in ("drug_a", "drug_b", "label", *LABEL_FIELDS)])

STEP = pa.struct([("index", pa.int32()), ("text", pa.string()), ("citations", _str_list)])

# One teacher completion for an ordered query (drug_a = "A", drug_b = "B"; not necessarily canonical order).
TRAJECTORIES = pa.schema(
    [
        pa.field("drug_a", pa.string(), nullable=False),
        pa.field("drug_b", pa.string(), nullable=False),
        pa.field("split", pa.string()),  # strategy, e.g. "cold_drug"
        pa.field("part", pa.string()),  # train | valid | test
        pa.field("teacher", pa.string(), nullable=False),
        pa.field("sample", pa.int32()),
        pa.field("prompt_hash", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("evidence_ids", _str_list),
        pa.field("text", pa.string()),
        pa.field("steps", pa.list_(STEP)),
        pa.field("answer", pa.string()),  # parsed label or null
        pa.field("confidence", pa.float64()),
        pa.field("gold", pa.string(), nullable=False),  # gold label in the query orientation
        pa.field("correct", pa.bool_()),
        pa.field("parse_errors", _str_list),
        pa.field("prompt_tokens", pa.int32()),
        pa.field("completion_tokens", pa.int32()),
        pa.field("latency_s", pa.float64()),
    ]
)
