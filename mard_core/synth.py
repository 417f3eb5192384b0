"""Synthetic DrugBank 5.1 full-database releases for demos, tests and benchmarks.

Real DrugBank data cannot be bundled, so MARD writes its own release in DrugBank's exact XML format (it
validates against schemas/reference/drugbank.xsd). The model behind it, all as data tables at the top of
this module:

- PROTEINS: the targets, enzymes, carriers and transporters drugs link to (DrugBank BE ids, UniProt ids).
- ARCHETYPES: drug classes. Each synthetic drug draws one and gets its protein links (with actions such as
  substrate / inhibitor / inducer / agonist), categories and ATC code from it.
- ROLES: what a record must show (a protein action or a category) for a drug to play a mechanistic role;
  "inhibitor:CYP3A4" style roles need no entry (an interactant CYP3A4 whose actions include inhibitor).
- TEMPLATES: DrugBank's own interaction sentences (DeepDDI's 86 types, DeepDDI2's 113, and real variants
  beyond both lists), each tagged with its mechanism family; #Drug1 is the perpetrator of a directional one.
- RULES: which pair of roles produces which template. A pair of drugs gets an interaction only when a rule
  says so (plus a small share of generic "adverse effects" noise), so every sentence follows from the two
  records' proteins and categories. Template frequency is Zipf-like by table order.

The real-drug fixture (mard_core/data/real_drugs.xml) is merged in verbatim, with its own real interactions;
synthetic drugs interact with fixture drugs wherever the rules say so, and those interactions are appended
to the fixture records. Interactions are listed under both drugs; about 1% of pairs disagree (one listing
has the generic sentence) and a few descriptions carry a line break and indentation, as in real exports.

``write_release(out, n_drugs, seed)`` writes ``n_drugs`` synthetic drugs plus the fixture's drugs (its
SynthTruth.n_drugs counts both). Output is byte-identical for the same (n_drugs, seed, fixture,
interactions_per_drug, exported_on) and streamed: each record is rendered as text and written on its own, so
memory stays bounded (pair index arrays aside: about 300 MB peak for 17,000 drugs and 3 million elements).
Synthetic records say in their description that they are synthetic; BE ids, MeSH ids and UniProt ids of the
tables are real or plausible, the drugs, names and structures are not.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar
from xml.sax.saxutils import escape

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from lxml import etree

from mard_core.errors import InputError
from mard_core.stage import write_atomic
from schemas import PROTEIN_KINDS

SYNTH_VERSION = "1"
NS = "http://www.drugbank.ca"
ZIP_MEMBER = "full database.xml"
DEFAULT_FIXTURE = Path(__file__).resolve().parent / "data" / "real_drugs.xml"
DEFAULT_INTERACTIONS_PER_DRUG = 200.0
FAMILIES = (
    "PK Absorption", "PK Distribution", "PK Metabolism", "PK Excretion", "PK Exposure",
    "PD Additive", "PD Antagonistic",
)
ZIPF_EXPONENT = 1.0  # template weight = 1 / rank**ZIPF_EXPONENT, rank = position in TEMPLATES
NOISE_SHARE = 0.03  # random pairs with the generic "adverse effects" sentence
DISAGREE_SHARE = 0.01  # mechanism pairs one of whose listings says the generic sentence instead
LINEBREAK_SHARE = 0.005  # listings whose description has a newline and indentation inside

# --------------------------------------------------------------------------------------------------------
# Proteins
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Protein:
    """A DrugBank bio-entity (BE id); ``polypeptides`` are (UniProt id, gene name, name), possibly none."""

    key: str
    kind: str  # target | enzyme | carrier | transporter
    be_id: str
    name: str
    organism: str
    polypeptides: tuple[tuple[str, str, str], ...]


def _prot(key: str, kind: str, be_id: str, name: str, uniprot: str, organism: str = "Humans") -> Protein:
    return Protein(key, kind, be_id, name, organism, ((uniprot, key, name),) if uniprot else ())


ORGANISM_TAXONOMY = {
    "Humans": "9606", "Candida albicans": "5476", "Mycobacterium tuberculosis": "1773",
    "Escherichia coli (strain K12)": "83333", "Enteric bacteria and other eubacteria": "",
}
CELLULAR_LOCATION = {
    "target": "Cell membrane", "enzyme": "Endoplasmic reticulum membrane", "carrier": "Secreted",
    "transporter": "Cell membrane",
}

PROTEINS: dict[str, Protein] = {p.key: p for p in (
    # key (gene), kind, BE id, name, UniProt, organism
    _prot("CYP3A4", "enzyme", "BE0002638", "Cytochrome P450 3A4", "P08684"),
    _prot("CYP3A5", "enzyme", "BE0002362", "Cytochrome P450 3A5", "P20815"),
    _prot("CYP2D6", "enzyme", "BE0002363", "Cytochrome P450 2D6", "P10635"),
    _prot("CYP2C9", "enzyme", "BE0002793", "Cytochrome P450 2C9", "P11712"),
    _prot("CYP2C19", "enzyme", "BE0003536", "Cytochrome P450 2C19", "P33261"),
    _prot("CYP1A2", "enzyme", "BE0002433", "Cytochrome P450 1A2", "P05177"),
    _prot("CYP2C8", "enzyme", "BE0002887", "Cytochrome P450 2C8", "P10632"),
    _prot("ABCB1", "transporter", "BE0001032", "P-glycoprotein 1", "P08183"),
    _prot("ABCG2", "transporter", "BE0001067", "ATP-binding cassette sub-family G member 2", "Q9UNQ0"),
    _prot("SLCO1B1", "transporter", "BE0003659", "Solute carrier organic anion transporter family member 1B1",
          "Q9Y6L6"),
    _prot("SLC22A6", "transporter", "BE0001066", "Solute carrier family 22 member 6", "Q4U2R8"),
    _prot("SLC22A8", "transporter", "BE0001069", "Solute carrier family 22 member 8", "Q8TCC7"),
    _prot("SLC22A2", "transporter", "BE0003647", "Solute carrier family 22 member 2", "O15244"),
    _prot("SLC47A1", "transporter", "BE0003648", "Multidrug and toxin extrusion protein 1", "Q96FL8"),
    _prot("ALB", "carrier", "BE0000530", "Serum albumin", "P02768"),
    _prot("SHBG", "carrier", "BE0000602", "Sex hormone-binding globulin", "P04278"),
    _prot("KCNH2", "target", "BE0000389", "Potassium voltage-gated channel subfamily H member 2", "Q12809"),
    _prot("SLC6A4", "target", "BE0000486", "Sodium-dependent serotonin transporter", "P31645"),
    Protein("GABA-A", "target", "BE0000161", "GABA(A) Receptor", "Humans", (
        ("P14867", "GABRA1", "Gamma-aminobutyric acid receptor subunit alpha-1"),
        ("P47870", "GABRB2", "Gamma-aminobutyric acid receptor subunit beta-2"),
        ("P18507", "GABRG2", "Gamma-aminobutyric acid receptor subunit gamma-2"),
    )),
    _prot("OPRM1", "target", "BE0000116", "Mu-type opioid receptor", "P35372"),
    _prot("OPRD1", "target", "BE0000498", "Delta-type opioid receptor", "P41143"),
    _prot("F2", "target", "BE0000048", "Prothrombin", "P00734"),
    _prot("F10", "target", "BE0000216", "Coagulation factor X", "P00742"),
    _prot("VKORC1", "target", "BE0000856", "Vitamin K epoxide reductase complex subunit 1", "Q9BQB6"),
    _prot("SERPINC1", "target", "BE0000184", "Antithrombin-III", "P01008"),
    _prot("P2RY12", "target", "BE0000337", "P2Y purinoceptor 12", "Q9H244"),
    _prot("PTGS1", "target", "BE0000017", "Prostaglandin G/H synthase 1", "P23219"),
    _prot("PTGS2", "target", "BE0000262", "Prostaglandin G/H synthase 2", "P35354"),
    _prot("ADRB1", "target", "BE0000274", "Beta-1 adrenergic receptor", "P08588"),
    _prot("ADRB2", "target", "BE0000285", "Beta-2 adrenergic receptor", "P07550"),
    _prot("ADRA1A", "target", "BE0000069", "Alpha-1A adrenergic receptor", "P35348"),
    _prot("ADRA1B", "target", "BE0000373", "Alpha-1B adrenergic receptor", "P35368"),
    _prot("ACE", "target", "BE0000144", "Angiotensin-converting enzyme", "P12821"),
    _prot("AGTR1", "target", "BE0000143", "Type-1 angiotensin II receptor", "P30556"),
    _prot("CACNA1C", "target", "BE0000428", "Voltage-dependent L-type calcium channel subunit alpha-1C",
          "Q13936"),
    _prot("SLC12A1", "target", "BE0000435", "Solute carrier family 12 member 1", "Q13621"),
    _prot("SLC12A3", "target", "BE0000509", "Solute carrier family 12 member 3", "P55017"),
    _prot("CA2", "target", "BE0000280", "Carbonic anhydrase 2", "P00918"),
    _prot("NR3C2", "target", "BE0000426", "Mineralocorticoid receptor", "P08235"),
    _prot("HMGCR", "target", "BE0000105", "3-hydroxy-3-methylglutaryl-coenzyme A reductase", "P04035"),
    _prot("PPARA", "target", "BE0000236", "Peroxisome proliferator-activated receptor alpha", "Q07869"),
    _prot("ABCC8", "target", "BE0000467", "ATP-binding cassette sub-family C member 8", "Q09428"),
    _prot("KCNJ11", "target", "BE0000460", "ATP-sensitive inward rectifier potassium channel 11", "Q14654"),
    _prot("INSR", "target", "BE0000279", "Insulin receptor", "P06213"),
    _prot("DPP4", "target", "BE0000168", "Dipeptidyl peptidase 4", "P27487"),
    _prot("CHRM1", "target", "BE0000176", "Muscarinic acetylcholine receptor M1", "P11229"),
    _prot("CHRM3", "target", "BE0000237", "Muscarinic acetylcholine receptor M3", "P20309"),
    _prot("HRH1", "target", "BE0000442", "Histamine H1 receptor", "P35367"),
    _prot("HRH2", "target", "BE0000159", "Histamine H2 receptor", "P25021"),
    _prot("ATP4A", "target", "BE0000392", "Potassium-transporting ATPase alpha chain 1", "P20648"),
    _prot("DRD2", "target", "BE0000756", "D(2) dopamine receptor", "P14416"),
    _prot("DRD3", "target", "BE0000395", "D(3) dopamine receptor", "P35462"),
    _prot("HTR2A", "target", "BE0000706", "5-hydroxytryptamine receptor 2A", "P28223"),
    _prot("HTR1B", "target", "BE0000110", "5-hydroxytryptamine receptor 1B", "P28222"),
    _prot("SCN1A", "target", "BE0000396", "Sodium channel protein type 1 subunit alpha", "P35498"),
    _prot("ESR1", "target", "BE0000025", "Estrogen receptor", "P03372"),
    _prot("ESR2", "target", "BE0000406", "Estrogen receptor beta", "Q92731"),
    _prot("ATP1A1", "target", "BE0000447", "Sodium/potassium-transporting ATPase subunit alpha-1", "P05023"),
    _prot("ADORA2A", "target", "BE0000178", "Adenosine receptor A2a", "P29274"),
    _prot("ADORA1", "target", "BE0000174", "Adenosine receptor A1", "P30542"),
    _prot("MAOA", "target", "BE0000540", "Amine oxidase [flavin-containing] A", "P21397"),
    _prot("MAOB", "target", "BE0000243", "Amine oxidase [flavin-containing] B", "P27338"),
    _prot("DHFR", "target", "BE0000209", "Dihydrofolate reductase", "P00374"),
    _prot("TYMS", "target", "BE0000422", "Thymidylate synthase", "P04818"),
    _prot("KDR", "target", "BE0000450", "Vascular endothelial growth factor receptor 2", "P35968"),
    _prot("FLT1", "target", "BE0000329", "Vascular endothelial growth factor receptor 1", "P17948"),
    _prot("FLT4", "target", "BE0000513", "Vascular endothelial growth factor receptor 3", "P35916"),
    _prot("KIT", "target", "BE0000083", "Mast/stem cell growth factor receptor Kit", "P10721"),
    _prot("PDGFRB", "target", "BE0000398", "Platelet-derived growth factor receptor beta", "P09619"),
    _prot("EGFR", "target", "BE0000767", "Epidermal growth factor receptor", "P00533"),
    _prot("ABL1", "target", "BE0000270", "Tyrosine-protein kinase ABL1", "P00519"),
    _prot("TNF", "target", "BE0000704", "Tumor necrosis factor", "P01375"),
    _prot("MS4A1", "target", "BE0000812", "B-lymphocyte antigen CD20", "P11836"),
    _prot("ERBB2", "target", "BE0000226", "Receptor tyrosine-protein kinase erbB-2", "P04626"),
    _prot("IL6R", "target", "BE0000590", "Interleukin-6 receptor subunit alpha", "P08887"),
    _prot("ERG11", "target", "BE0000189", "Lanosterol 14-alpha demethylase", "P10613", "Candida albicans"),
    _prot("RPOB", "target", "BE0000904", "DNA-directed RNA polymerase subunit beta", "P9WGY9",
          "Mycobacterium tuberculosis"),
    _prot("GYRA", "target", "BE0000333", "DNA gyrase subunit A", "P0AES4", "Escherichia coli (strain K12)"),
    _prot("23S", "target", "BE0000561", "23S ribosomal RNA", "", "Enteric bacteria and other eubacteria"),
    _prot("16S", "target", "BE0000580", "16S ribosomal RNA", "", "Enteric bacteria and other eubacteria"),
    _prot("DNA", "target", "BE0004796", "DNA", ""),
)}

# --------------------------------------------------------------------------------------------------------
# Mechanistic roles, interaction templates and the rules that tie them together
# --------------------------------------------------------------------------------------------------------

# A drug has a named role when its record shows ANY of the (gene, action) protein links or categories.
# Roles written "action:GENE" (e.g. "inhibitor:CYP3A4", "substrate:ABCB1") need no entry here.
ROLES: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "qt_prolonging": ((("KCNH2", "inhibitor"),), ("QTc Prolonging Agents",)),
    "cns_depressant": ((("GABRA1", "positive allosteric modulator"), ("OPRM1", "agonist")),
                       ("Central Nervous System Depressants",)),
    "opioid": ((("OPRM1", "agonist"),), ("Analgesics, Opioid",)),
    "serotonergic": ((("SLC6A4", "inhibitor"), ("HTR1B", "agonist"), ("MAOA", "inhibitor")),
                     ("Serotonin Agents",)),
    "anticoagulant": ((("VKORC1", "inhibitor"), ("F10", "inhibitor"), ("F2", "inhibitor")), ("Anticoagulants",)),
    "antiplatelet": ((("P2RY12", "antagonist"),), ("Platelet Aggregation Inhibitors",)),
    "nsaid": ((("PTGS1", "inhibitor"), ("PTGS2", "inhibitor")), ("Anti-Inflammatory Agents, Non-Steroidal",)),
    "hypotensive": ((("ADRA1A", "antagonist"), ("ACE", "inhibitor"), ("AGTR1", "antagonist"),
                     ("CACNA1C", "inhibitor")), ("Hypotensive Agents",)),
    "antihypertensive": ((), ("Antihypertensive Agents",)),
    "hypoglycemic": ((("INSR", "agonist"), ("ABCC8", "inhibitor"), ("DPP4", "inhibitor")), ("Hypoglycemic Agents",)),
    "nephrotoxic": ((), ("Nephrotoxic agents",)),
    "ototoxic": ((), ("Ototoxic agents",)),
    "hyperkalemic": ((("NR3C2", "antagonist"), ("ACE", "inhibitor"), ("AGTR1", "antagonist")),
                     ("Agents causing hyperkalemia",)),
    "hypokalemic": ((("SLC12A1", "inhibitor"), ("SLC12A3", "inhibitor")), ("Agents causing hypokalemia",)),
    "bradycardic": ((("ADRB1", "antagonist"), ("ATP1A1", "inhibitor")), ("Bradycardia-Causing Agents",)),
    "anticholinergic": ((("CHRM1", "antagonist"), ("CHRM3", "antagonist")), ("Anticholinergic Agents",)),
    "myelosuppressive": ((("DHFR", "inhibitor"), ("TYMS", "inhibitor")), ("Myelosuppressive Agents",)),
    "statin": ((("HMGCR", "inhibitor"),), ()),
    "fibrate": ((("PPARA", "agonist"),), ()),
    "beta_blocker": ((("ADRB1", "antagonist"), ("ADRB2", "antagonist")), ()),
    "beta2_agonist": ((("ADRB2", "agonist"),), ()),
    "opioid_antagonist": ((("OPRM1", "antagonist"),), ()),
    "dopamine_agonist": ((("DRD2", "agonist"),), ()),
    "dopamine_antagonist": ((("DRD2", "antagonist"),), ()),
    "estrogen": ((("ESR1", "agonist"),), ()),
    "antiestrogen": ((("ESR1", "antagonist"),), ()),
    "adenosine_agonist": ((("ADORA2A", "agonist"),), ()),
    "adenosine_antagonist": ((("ADORA2A", "antagonist"),), ()),
    "diagnostic": ((), ("Diagnostic Agents",)),
    "antacid": ((), ("Antacids",)),
    "chelatable": ((), ("Fluoroquinolones", "Tetracyclines")),
    "bile_acid_sequestrant": ((), ("Bile Acid Sequestrants",)),
    "urine_alkalinizer": ((("CA2", "inhibitor"),), ()),
    "albumin_bound": ((("ALB", "binder"),), ()),
    "albumin_displacer": ((("ALB", "inhibitor"),), ()),
    "prodrug": ((), ("Prodrugs",)),
}


@dataclass(frozen=True)
class Template:
    """A DrugBank interaction sentence; #Drug1 is the perpetrator unless ``symmetric``."""

    id: str
    family: str
    symmetric: bool
    source: str  # "DeepDDI type N" (ddi_types_86.csv), "DeepDDI2 Type_N" (ddi_types_113.txt) or "variant"
    text: str


# Ordered by how common each sentence is in DrugBank: template weight is Zipf-like in this order.
TEMPLATES: tuple[Template, ...] = tuple(Template(*row) for row in (
    ("metabolism_decreased", "PK Metabolism", False, "DeepDDI type 6",
     "The metabolism of #Drug2 can be decreased when combined with #Drug1."),
    ("serum_concentration_increased", "PK Exposure", False, "DeepDDI type 10",
     "The serum concentration of #Drug2 can be increased when it is combined with #Drug1."),
    ("therapeutic_efficacy_decreased", "PD Antagonistic", False, "DeepDDI type 13",
     "The therapeutic efficacy of #Drug2 can be decreased when used in combination with #Drug1."),
    ("cns_depressant_activities", "PD Additive", False, "DeepDDI type 54",
     "#Drug1 may increase the central nervous system depressant (CNS depressant) activities of #Drug2."),
    ("qtc_prolongation_risk", "PD Additive", True, "DeepDDI type 32",
     "The risk or severity of QTc prolongation can be increased when #Drug1 is combined with #Drug2."),
    ("metabolism_increased", "PK Metabolism", False, "DeepDDI type 7",
     "The metabolism of #Drug2 can be increased when combined with #Drug1."),
    ("serum_concentration_decreased", "PK Exposure", False, "DeepDDI type 9",
     "The serum concentration of #Drug2 can be decreased when it is combined with #Drug1."),
    ("hypotensive_activities", "PD Additive", False, "DeepDDI type 67",
     "#Drug1 may increase the hypotensive activities of #Drug2."),
    ("excretion_decreased", "PK Excretion", False, "DeepDDI type 15",
     "#Drug1 may decrease the excretion rate of #Drug2 which could result in a higher serum level."),
    ("bleeding_risk", "PD Additive", True, "DeepDDI type 27",
     "The risk or severity of bleeding can be increased when #Drug1 is combined with #Drug2."),
    ("antihypertensive_decreased", "PD Antagonistic", False, "DeepDDI type 35",
     "#Drug1 may decrease the antihypertensive activities of #Drug2."),
    ("hypoglycemic_activities", "PD Additive", False, "DeepDDI type 64",
     "#Drug1 may increase the hypoglycemic activities of #Drug2."),
    ("serotonergic_activities", "PD Additive", False, "DeepDDI type 79",
     "#Drug1 may increase the serotonergic activities of #Drug2."),
    ("cns_depression_risk", "PD Additive", True, "variant",
     "The risk or severity of CNS depression can be increased when #Drug1 is combined with #Drug2."),
    ("qtc_prolonging_activities", "PD Additive", False, "DeepDDI type 76",
     "#Drug1 may increase the QTc-prolonging activities of #Drug2."),
    ("hypotension_risk", "PD Additive", True, "DeepDDI type 31",
     "The risk or severity of hypotension can be increased when #Drug1 is combined with #Drug2."),
    ("nephrotoxic_activities", "PD Additive", False, "DeepDDI type 21",
     "#Drug1 may increase the nephrotoxic activities of #Drug2."),
    ("anticoagulant_activities", "PD Additive", False, "DeepDDI type 46",
     "#Drug1 may increase the anticoagulant activities of #Drug2."),
    ("bleeding_hemorrhage_risk", "PD Additive", True, "variant",
     "The risk or severity of bleeding and hemorrhage can be increased when #Drug1 is combined with #Drug2."),
    ("serotonin_syndrome_risk", "PD Additive", True, "DeepDDI2 Type_28",
     "The risk or severity of serotonin syndrome can be increased when #Drug2 is combined with #Drug1."),
    ("respiratory_depressant_activities", "PD Additive", False, "DeepDDI type 77",
     "#Drug1 may increase the respiratory depressant activities of #Drug2."),
    ("protein_binding_decreased", "PK Distribution", False, "DeepDDI type 8",
     "The protein binding of #Drug2 can be decreased when combined with #Drug1."),
    ("absorption_decrease_resulting", "PK Absorption", False, "DeepDDI type 1",
     ("#Drug1 can cause a decrease in the absorption of #Drug2 resulting in a reduced serum concentration and "
     "potentially a decrease in efficacy.")),
    ("bradycardic_activities", "PD Additive", False, "DeepDDI type 52",
     "#Drug1 may increase the bradycardic activities of #Drug2."),
    ("anticholinergic_activities", "PD Additive", False, "DeepDDI type 45",
     "#Drug1 may increase the anticholinergic activities of #Drug2."),
    ("hyperkalemia_risk", "PD Additive", True, "DeepDDI type 29",
     "The risk or severity of hyperkalemia can be increased when #Drug1 is combined with #Drug2."),
    ("hypokalemic_activities", "PD Additive", False, "DeepDDI type 65",
     "#Drug1 may increase the hypokalemic activities of #Drug2."),
    ("bioavailability_increased", "PK Absorption", False, "DeepDDI type 5",
     "The bioavailability of #Drug2 can be increased when combined with #Drug1."),
    ("bioavailability_decreased", "PK Absorption", False, "DeepDDI type 4",
     "The bioavailability of #Drug2 can be decreased when combined with #Drug1."),
    ("absorption_decreased", "PK Absorption", False, "DeepDDI type 3",
     "The absorption of #Drug2 can be decreased when combined with #Drug1."),
    ("active_metabolites_reduced", "PK Exposure", False, "DeepDDI type 12",
     ("The serum concentration of the active metabolites of #Drug2 can be reduced when #Drug2 is used in "
     "combination with #Drug1 resulting in a loss in efficacy.")),
    ("active_metabolites_increased", "PK Exposure", False, "DeepDDI type 11",
     ("The serum concentration of the active metabolites of #Drug2 can be increased when #Drug2 is used in "
     "combination with #Drug1.")),
    ("excretion_increased", "PK Excretion", False, "DeepDDI type 16",
     ("#Drug1 may increase the excretion rate of #Drug2 which could result in a lower serum level and "
     "potentially a reduction in efficacy.")),
    ("gi_bleeding_risk", "PD Additive", True, "variant",
     "The risk or severity of gastrointestinal bleeding can be increased when #Drug1 is combined with #Drug2."),
    ("myelosuppressive_activities", "PD Additive", False, "DeepDDI type 70",
     "#Drug1 may increase the myelosuppressive activities of #Drug2."),
    ("thrombocytopenia_risk", "PD Additive", True, "variant",
     "The risk or severity of thrombocytopenia can be increased when #Drug1 is combined with #Drug2."),
    ("hypoglycemia_risk", "PD Additive", True, "variant",
     "The risk or severity of hypoglycemia can be increased when #Drug1 is combined with #Drug2."),
    ("myopathy_risk", "PD Additive", True, "DeepDDI2 Type_172",
     ("The risk or severity of myopathy, rhabdomyolysis, and myoglobinuria can be increased when #Drug1 is "
     "combined with #Drug2.")),
    ("ototoxicity_nephrotoxicity_risk", "PD Additive", True, "DeepDDI2 Type_147",
     ("The risk or severity of ototoxicity and nephrotoxicity can be increased when #Drug2 is combined with "
     "#Drug1.")),
    ("bronchodilatory_decreased", "PD Antagonistic", False, "DeepDDI type 37",
     "#Drug1 may decrease the bronchodilatory activities of #Drug2."),
    ("diagnostic_agent_decreased", "PD Antagonistic", False, "DeepDDI type 24",
     "#Drug1 may decrease effectiveness of #Drug2 as a diagnostic agent."),
    # Noise and disagreeing listings only (no rule produces it).
    ("adverse_effects_risk", "PD Additive", True, "DeepDDI type 26",
     "The risk or severity of adverse effects can be increased when #Drug1 is combined with #Drug2."),
))
TEMPLATE_BY_ID = {t.id: t for t in TEMPLATES}
NOISE_TEMPLATE = "adverse_effects_risk"


@dataclass(frozen=True)
class Rule:
    """A drug with all ``perpetrator`` roles meeting one with all ``victim`` roles gets ``template``."""

    template: str
    perpetrator: tuple[str, ...]
    victim: tuple[str, ...]


RULES: tuple[Rule, ...] = tuple(Rule(t, tuple(p.split()), tuple(v.split())) for t, p, v in (
    # template                            perpetrator roles            victim roles
    # PK Metabolism: CYP inhibition / induction
    ("metabolism_decreased",              "inhibitor:CYP3A4",          "substrate:CYP3A4"),
    ("metabolism_decreased",              "inhibitor:CYP2D6",          "substrate:CYP2D6"),
    ("metabolism_decreased",              "inhibitor:CYP2C9",          "substrate:CYP2C9"),
    ("metabolism_decreased",              "inhibitor:CYP2C19",         "substrate:CYP2C19"),
    ("metabolism_decreased",              "inhibitor:CYP1A2",          "substrate:CYP1A2"),
    ("metabolism_increased",              "inducer:CYP3A4",            "substrate:CYP3A4"),
    ("metabolism_increased",              "inducer:CYP2C9",            "substrate:CYP2C9"),
    ("metabolism_increased",              "inducer:CYP2C19",           "substrate:CYP2C19"),
    ("metabolism_increased",              "inducer:CYP1A2",            "substrate:CYP1A2"),
    # PK Exposure: efflux / uptake transporters, prodrug activation
    ("serum_concentration_increased",     "inhibitor:ABCB1",           "substrate:ABCB1"),
    ("serum_concentration_increased",     "inhibitor:SLCO1B1",         "substrate:SLCO1B1"),
    ("serum_concentration_increased",     "inhibitor:ABCG2",           "substrate:ABCG2"),
    ("serum_concentration_decreased",     "inducer:ABCB1",             "substrate:ABCB1"),
    ("active_metabolites_reduced",        "inhibitor:CYP2C19",         "prodrug substrate:CYP2C19"),
    ("active_metabolites_increased",      "inducer:CYP2C19",           "prodrug substrate:CYP2C19"),
    ("active_metabolites_increased",      "inducer:CYP3A4",            "prodrug substrate:CYP3A4"),
    # PK Absorption: chelation, binding resins, intestinal P-gp
    ("absorption_decrease_resulting",     "antacid",                   "chelatable"),
    ("absorption_decreased",              "bile_acid_sequestrant",     "albumin_bound"),
    ("bioavailability_increased",         "inhibitor:ABCB1",           "substrate:ABCB1"),
    ("bioavailability_decreased",         "inducer:ABCB1",             "substrate:ABCB1"),
    # PK Distribution: albumin displacement
    ("protein_binding_decreased",         "albumin_displacer",         "albumin_bound"),
    # PK Excretion: renal anion / cation transport, urine pH
    ("excretion_decreased",               "inhibitor:SLC22A6",         "substrate:SLC22A6"),
    ("excretion_decreased",               "inhibitor:SLC22A8",         "substrate:SLC22A8"),
    ("excretion_decreased",               "inhibitor:SLC22A2",         "substrate:SLC22A2"),
    ("excretion_decreased",               "inhibitor:SLC47A1",         "substrate:SLC47A1"),
    ("excretion_increased",               "urine_alkalinizer",         "substrate:SLC22A6"),
    # PD Additive: two drugs with the same effect
    ("qtc_prolongation_risk",             "qt_prolonging",             "qt_prolonging"),
    ("qtc_prolonging_activities",         "qt_prolonging",             "qt_prolonging"),
    ("cns_depressant_activities",         "cns_depressant",            "cns_depressant"),
    ("cns_depression_risk",               "cns_depressant",            "cns_depressant"),
    ("respiratory_depressant_activities", "cns_depressant",            "opioid"),
    ("serotonergic_activities",           "serotonergic",              "serotonergic"),
    ("serotonin_syndrome_risk",           "serotonergic",              "serotonergic"),
    ("bleeding_risk",                     "anticoagulant",             "anticoagulant"),
    ("bleeding_risk",                     "antiplatelet",              "antiplatelet"),
    ("bleeding_hemorrhage_risk",          "antiplatelet",              "anticoagulant"),
    ("anticoagulant_activities",          "antiplatelet",              "anticoagulant"),
    ("anticoagulant_activities",          "serotonergic",              "anticoagulant"),
    ("gi_bleeding_risk",                  "nsaid",                     "anticoagulant"),
    ("gi_bleeding_risk",                  "nsaid",                     "nsaid"),
    ("thrombocytopenia_risk",             "myelosuppressive",          "anticoagulant"),
    ("hypotension_risk",                  "hypotensive",               "hypotensive"),
    ("hypotensive_activities",            "hypotensive",               "hypotensive"),
    ("hypoglycemic_activities",           "hypoglycemic",              "hypoglycemic"),
    ("hypoglycemia_risk",                 "hypoglycemic",              "hypoglycemic"),
    ("nephrotoxic_activities",            "nephrotoxic",               "nephrotoxic"),
    ("ototoxicity_nephrotoxicity_risk",   "ototoxic",                  "nephrotoxic"),
    ("hyperkalemia_risk",                 "hyperkalemic",              "hyperkalemic"),
    ("hypokalemic_activities",            "hypokalemic",               "hypokalemic"),
    ("bradycardic_activities",            "bradycardic",               "bradycardic"),
    ("anticholinergic_activities",        "anticholinergic",           "anticholinergic"),
    ("myelosuppressive_activities",       "myelosuppressive",          "myelosuppressive"),
    ("myopathy_risk",                     "fibrate",                   "statin"),
    # PD Antagonistic: opposing actions on the same system
    ("therapeutic_efficacy_decreased",    "opioid_antagonist",         "opioid"),
    ("therapeutic_efficacy_decreased",    "dopamine_antagonist",       "dopamine_agonist"),
    ("therapeutic_efficacy_decreased",    "antiestrogen",              "estrogen"),
    ("therapeutic_efficacy_decreased",    "inducer:CYP3A4",            "estrogen"),
    ("antihypertensive_decreased",        "nsaid",                     "antihypertensive"),
    ("bronchodilatory_decreased",         "beta_blocker",              "beta2_agonist"),
    ("diagnostic_agent_decreased",        "adenosine_antagonist",      "diagnostic adenosine_agonist"),
))


def drug_roles(protein_actions: Iterable[tuple[str, str]], categories: Iterable[str]) -> frozenset[str]:
    """Roles a record supports, from its (gene name, action) protein links and its category names."""
    links, cats = set(protein_actions), set(categories)
    named = {
        role for role, (prots, role_cats) in ROLES.items()
        if any(p in links for p in prots) or any(c in cats for c in role_cats)
    }
    return frozenset(named | {f"{action}:{gene}" for gene, action in links})


def rules_for(template_id: str) -> tuple[Rule, ...]:
    """The rules that produce ``template_id``."""
    return tuple(r for r in RULES if r.template == template_id)


def explains(rule: Rule, perpetrator_roles: frozenset[str], victim_roles: frozenset[str]) -> bool:
    """Whether ``rule`` produces an interaction from a drug with these roles towards one with those."""
    return set(rule.perpetrator) <= perpetrator_roles and set(rule.victim) <= victim_roles

# --------------------------------------------------------------------------------------------------------
# Drug classes
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A protein link an archetype gives with probability ``p``; ``strength`` alternatives are "|"-separated."""

    protein: str
    action: str
    p: float = 1.0
    strength: str = ""


@dataclass(frozen=True)
class Archetype:
    """A drug class: name patterns ({x} = generated syllables), ATC level-5 groups, categories, protein links."""

    key: str
    label: str
    weight: float
    stems: tuple[str, ...]
    atc: tuple[str, ...]
    categories: tuple[tuple[str, float], ...]
    links: tuple[Link, ...]
    one_of: tuple[Link, ...] = ()  # exactly one of these is added
    biotech: bool = False
    promiscuity: float = 1.0  # relative chance of being drawn into an interaction


def _arch(key: str, label: str, weight: float, stems: str, atc: str, categories: str,
          links: Sequence[Link], one_of: Sequence[Link] = (), biotech: bool = False,
          promiscuity: float = 1.0) -> Archetype:
    """Compact constructor: ``stems``/``atc`` space-separated, ``categories`` ";"-separated with "@p"."""
    cats = []
    for item in filter(None, (c.strip() for c in categories.split(";"))):
        name, _, p = item.partition("@")
        cats.append((name.strip(), float(p) if p else 1.0))
    return Archetype(key, label, weight, tuple(stems.split()), tuple(atc.split()), tuple(cats), tuple(links),
                     tuple(one_of), biotech, promiscuity)


L = Link
ARCHETYPES: tuple[Archetype, ...] = (
    _arch("azole_antifungal", "triazole antifungal", 1.5, "{x}conazole", "J02AC",
          "Antifungal Agents; Triazoles; QTc Prolonging Agents@0.7",
          [L("ERG11", "inhibitor"), L("CYP3A4", "substrate", 0.8), L("CYP3A4", "inhibitor", 0.95, "strong|moderate"),
           L("CYP2C9", "inhibitor", 0.6, "moderate|weak"), L("CYP2C19", "inhibitor", 0.5, "strong|moderate"),
           L("CYP2C19", "substrate", 0.4), L("ABCB1", "inhibitor", 0.3)]),
    _arch("macrolide", "macrolide antibacterial", 1.2, "{x}thromycin {x}mycin", "J01FA",
          "Anti-Bacterial Agents; Macrolides; QTc Prolonging Agents@0.8",
          [L("23S", "inhibitor"), L("CYP3A4", "substrate", 0.9), L("CYP3A4", "inhibitor", 0.8, "strong|moderate"),
           L("ABCB1", "inhibitor", 0.7), L("SLCO1B1", "inhibitor", 0.4)]),
    _arch("fluoroquinolone", "fluoroquinolone antibacterial", 1.2, "{x}floxacin", "J01MA",
          "Anti-Bacterial Agents; Fluoroquinolones; QTc Prolonging Agents@0.9",
          [L("GYRA", "inhibitor"), L("CYP1A2", "inhibitor", 0.6, "strong|moderate"), L("SLC22A6", "substrate", 0.5),
           L("SLC22A8", "substrate", 0.4)]),
    _arch("tetracycline", "tetracycline antibacterial", 0.6, "{x}cycline", "J01AA",
          "Anti-Bacterial Agents; Tetracyclines", [L("16S", "inhibitor"), L("CYP3A4", "substrate", 0.3)]),
    _arch("aminoglycoside", "aminoglycoside antibacterial", 0.6, "{x}micin {x}kacin", "J01GB",
          "Anti-Bacterial Agents; Aminoglycosides; Nephrotoxic agents; Ototoxic agents",
          [L("16S", "inhibitor"), L("SLC22A2", "substrate", 0.5)]),
    _arch("rifamycin", "rifamycin antimycobacterial", 0.5, "{x}fampin {x}butin", "J04AB",
          "Antibiotics, Antitubercular",
          [L("RPOB", "inhibitor"), L("CYP3A4", "inducer", 0.95, "strong|moderate"), L("CYP2C9", "inducer", 0.7),
           L("CYP2C19", "inducer", 0.7), L("CYP1A2", "inducer", 0.5), L("ABCB1", "inducer", 0.8),
           L("SLCO1B1", "inhibitor", 0.5)]),
    _arch("enzyme_inducing_anticonvulsant", "anticonvulsant", 0.8, "{x}bamazepine {x}toin {x}barbital",
          "N03AF N03AB", "Anticonvulsants; Central Nervous System Depressants",
          [L("SCN1A", "inhibitor"), L("CYP3A4", "inducer", 0.9, "strong|moderate"), L("CYP3A4", "substrate", 0.6),
           L("CYP2C9", "inducer", 0.5), L("CYP2C9", "substrate", 0.4), L("CYP2C19", "inducer", 0.4),
           L("CYP1A2", "inducer", 0.4), L("ABCB1", "inducer", 0.3)]),
    _arch("benzodiazepine", "benzodiazepine", 1.5, "{x}zolam {x}azepam", "N05BA N05CD",
          "Benzodiazepines; Central Nervous System Depressants; Hypnotics and Sedatives",
          [L("GABA-A", "positive allosteric modulator"), L("CYP3A4", "substrate", 0.9),
           L("CYP2C19", "substrate", 0.4), L("ALB", "binder", 0.5)]),
    _arch("opioid", "opioid analgesic", 1.5, "{x}orphine {x}fentanil {x}codone {x}tadol", "N02AB N02AA",
          "Analgesics, Opioid; Narcotics; Central Nervous System Depressants; Serotonin Agents@0.2",
          [L("OPRM1", "agonist"), L("OPRD1", "agonist", 0.4), L("CYP3A4", "substrate", 0.7),
           L("CYP2D6", "substrate", 0.5), L("ABCB1", "substrate", 0.4), L("SLC6A4", "inhibitor", 0.15)]),
    _arch("opioid_antagonist", "opioid antagonist", 0.3, "{x}trexone {x}loxone", "V03AB",
          "Narcotic Antagonists", [L("OPRM1", "antagonist"), L("OPRD1", "antagonist", 0.5)]),
    _arch("ssri", "selective serotonin reuptake inhibitor", 1.5, "{x}oxetine {x}talopram", "N06AB",
          "Serotonin Uptake Inhibitors; Antidepressive Agents, Second-Generation; Serotonin Agents; "
          "QTc Prolonging Agents@0.3",
          [L("SLC6A4", "inhibitor"), L("CYP2D6", "substrate", 0.7), L("CYP2D6", "inhibitor", 0.5, "strong|moderate"),
           L("CYP2C19", "substrate", 0.5), L("CYP3A4", "substrate", 0.5), L("KCNH2", "inhibitor", 0.15),
           L("ALB", "binder", 0.5)]),
    _arch("triptan", "serotonin 5-HT1 agonist", 0.5, "{x}triptan", "N02CC",
          "Serotonin 5-HT1 Receptor Agonists; Serotonin Agents; Vasoconstrictor Agents",
          [L("HTR1B", "agonist"), L("CYP3A4", "substrate", 0.3), L("MAOA", "substrate", 0.5)]),
    _arch("mao_inhibitor", "monoamine oxidase inhibitor", 0.2, "{x}giline", "N04BD",
          "Monoamine Oxidase Inhibitors; Serotonin Agents; Antiparkinson Agents",
          [L("MAOB", "inhibitor"), L("MAOA", "inhibitor", 0.6), L("CYP1A2", "substrate", 0.5)]),
    _arch("antipsychotic", "atypical antipsychotic", 1.2, "{x}peridone {x}apine {x}peridol", "N05AX N05AH",
          "Antipsychotic Agents; Dopamine Antagonists; Central Nervous System Depressants; "
          "QTc Prolonging Agents@0.7; Anticholinergic Agents@0.3",
          [L("DRD2", "antagonist"), L("HTR2A", "antagonist", 0.8), L("HRH1", "antagonist", 0.5),
           L("KCNH2", "inhibitor", 0.3), L("CYP2D6", "substrate", 0.6), L("CYP3A4", "substrate", 0.6),
           L("CYP1A2", "substrate", 0.3)]),
    _arch("dopamine_agonist", "dopamine agonist", 0.4, "{x}pexole {x}inirole {x}goline", "N04BC",
          "Dopamine Agonists; Antiparkinson Agents",
          [L("DRD2", "agonist"), L("DRD3", "agonist", 0.6), L("CYP1A2", "substrate", 0.4),
           L("SLC22A2", "substrate", 0.4)]),
    _arch("vitamin_k_antagonist", "vitamin K antagonist", 0.3, "{x}farin {x}coumon", "B01AA",
          "Anticoagulants; Coumarins",
          [L("VKORC1", "inhibitor"), L("CYP2C9", "substrate", 0.95), L("CYP3A4", "substrate", 0.5),
           L("CYP1A2", "substrate", 0.4), L("ALB", "binder", 0.9)]),
    _arch("factor_xa_inhibitor", "direct factor Xa inhibitor", 0.5, "{x}xaban", "B01AF",
          "Anticoagulants; Factor Xa Inhibitors",
          [L("F10", "inhibitor"), L("CYP3A4", "substrate", 0.7), L("ABCB1", "substrate", 0.8)]),
    _arch("thrombin_inhibitor", "direct thrombin inhibitor", 0.3, "{x}gatran {x}rudin", "B01AE",
          "Anticoagulants; Antithrombins", [L("F2", "inhibitor"), L("ABCB1", "substrate", 0.7)]),
    _arch("heparin", "heparin-like anticoagulant", 0.3, "{x}parin", "B01AB", "Anticoagulants; Heparin",
          [L("SERPINC1", "potentiator")], biotech=True),
    _arch("p2y12_antagonist", "P2Y12 antiplatelet agent", 0.5, "{x}grel {x}grelor", "B01AC",
          "Platelet Aggregation Inhibitors; Prodrugs@0.5",
          [L("P2RY12", "antagonist"), L("CYP2C19", "substrate", 0.7), L("CYP3A4", "substrate", 0.8),
           L("ABCB1", "substrate", 0.4)]),
    _arch("nsaid", "non-steroidal anti-inflammatory drug", 1.5, "{x}profen {x}fenac {x}oxicam",
          "M01AE M01AB M01AC", "Anti-Inflammatory Agents, Non-Steroidal; Nephrotoxic agents@0.4",
          [L("PTGS1", "inhibitor"), L("PTGS2", "inhibitor"), L("CYP2C9", "substrate", 0.8), L("ALB", "binder", 0.8),
           L("ALB", "inhibitor", 0.3), L("SLC22A6", "inhibitor", 0.5), L("SLC22A8", "inhibitor", 0.4)]),
    _arch("beta_blocker", "beta-adrenergic blocker", 1.2, "{x}olol", "C07AB",
          "Adrenergic beta-Antagonists; Antihypertensive Agents; Hypotensive Agents; Bradycardia-Causing Agents",
          [L("ADRB1", "antagonist"), L("ADRB2", "antagonist", 0.5), L("CYP2D6", "substrate", 0.6),
           L("SLC22A2", "substrate", 0.3)]),
    _arch("alpha1_blocker", "alpha-1 adrenergic blocker", 0.5, "{x}azosin", "C02CA",
          "Adrenergic alpha-1 Receptor Antagonists; Antihypertensive Agents; Hypotensive Agents",
          [L("ADRA1A", "antagonist"), L("ADRA1B", "antagonist", 0.7), L("CYP3A4", "substrate", 0.8)]),
    _arch("ace_inhibitor", "ACE inhibitor", 0.8, "{x}pril", "C09AA",
          "Angiotensin-Converting Enzyme Inhibitors; Antihypertensive Agents; Hypotensive Agents; "
          "Agents causing hyperkalemia", [L("ACE", "inhibitor"), L("SLC22A6", "substrate", 0.4)]),
    _arch("arb", "angiotensin II receptor blocker", 0.8, "{x}sartan", "C09CA",
          "Angiotensin II Type 1 Receptor Blockers; Antihypertensive Agents; Hypotensive Agents; "
          "Agents causing hyperkalemia",
          [L("AGTR1", "antagonist"), L("CYP2C9", "substrate", 0.5), L("SLCO1B1", "substrate", 0.5),
           L("ALB", "binder", 0.7)]),
    _arch("dihydropyridine", "dihydropyridine calcium channel blocker", 0.8, "{x}dipine", "C08CA",
          "Calcium Channel Blockers; Antihypertensive Agents; Hypotensive Agents",
          [L("CACNA1C", "inhibitor"), L("CYP3A4", "substrate", 0.95), L("CYP3A4", "inhibitor", 0.2, "weak"),
           L("ABCB1", "inhibitor", 0.2)]),
    _arch("loop_diuretic", "loop diuretic", 0.5, "{x}semide {x}tanide", "C03CA",
          "Diuretics; Sodium Potassium Chloride Symporter Inhibitors; Antihypertensive Agents; Hypotensive Agents; "
          "Ototoxic agents@0.5; Agents causing hypokalemia",
          [L("SLC12A1", "inhibitor"), L("SLC22A6", "substrate", 0.8), L("SLC22A8", "substrate", 0.6),
           L("ALB", "binder", 0.8)]),
    _arch("thiazide", "thiazide diuretic", 0.5, "{x}thiazide", "C03AA",
          "Diuretics; Sodium Chloride Symporter Inhibitors; Antihypertensive Agents; Hypotensive Agents; "
          "Agents causing hypokalemia", [L("SLC12A3", "inhibitor"), L("SLC22A6", "substrate", 0.6)]),
    _arch("carbonic_anhydrase_inhibitor", "carbonic anhydrase inhibitor", 0.25, "{x}zolamide", "S01EC",
          "Carbonic Anhydrase Inhibitors; Diuretics", [L("CA2", "inhibitor")]),
    _arch("potassium_sparing", "mineralocorticoid receptor antagonist", 0.3, "{x}renone {x}ctone", "C03DA",
          "Mineralocorticoid Receptor Antagonists; Diuretics; Antihypertensive Agents; Hypotensive Agents; "
          "Agents causing hyperkalemia", [L("NR3C2", "antagonist"), L("CYP3A4", "substrate", 0.5)]),
    _arch("statin", "HMG-CoA reductase inhibitor", 0.8, "{x}vastatin", "C10AA",
          "Hydroxymethylglutaryl-CoA Reductase Inhibitors; Anticholesteremic Agents",
          [L("HMGCR", "inhibitor"), L("CYP3A4", "substrate", 0.6), L("CYP2C9", "substrate", 0.3),
           L("SLCO1B1", "substrate", 0.9), L("ABCB1", "substrate", 0.3), L("ABCG2", "substrate", 0.3)]),
    _arch("fibrate", "fibrate", 0.3, "{x}fibrate {x}fibrozil", "C10AB", "Hypolipidemic Agents; Fibric Acids",
          [L("PPARA", "agonist"), L("CYP2C9", "inhibitor", 0.4, "weak"), L("SLCO1B1", "inhibitor", 0.5),
           L("ALB", "binder", 0.8), L("ALB", "inhibitor", 0.3)]),
    _arch("bile_acid_sequestrant", "bile acid sequestrant", 0.15, "Cole{x}am {x}velam", "C10AC",
          "Bile Acid Sequestrants; Anticholesteremic Agents", [], promiscuity=2.0),
    _arch("sulfonylurea", "sulfonylurea", 0.6, "Gli{x}ide Gly{x}uride", "A10BB",
          "Hypoglycemic Agents; Sulfonylurea Compounds",
          [L("ABCC8", "inhibitor"), L("KCNJ11", "inhibitor", 0.8), L("CYP2C9", "substrate", 0.9),
           L("ALB", "binder", 0.9), L("ALB", "inhibitor", 0.2)]),
    _arch("biguanide", "biguanide", 0.2, "{x}formin", "A10BA", "Hypoglycemic Agents; Biguanides",
          [L("SLC22A2", "substrate", 0.95), L("SLC47A1", "substrate", 0.7)]),
    _arch("dpp4_inhibitor", "DPP-4 inhibitor", 0.4, "{x}gliptin", "A10BH",
          "Hypoglycemic Agents; Dipeptidyl-Peptidase IV Inhibitors",
          [L("DPP4", "inhibitor"), L("CYP3A4", "substrate", 0.4), L("SLC22A8", "substrate", 0.3)]),
    _arch("insulin", "insulin analogue", 0.5, "Insulin_{x}", "A10AB", "Hypoglycemic Agents; Insulins",
          [L("INSR", "agonist")], biotech=True),
    _arch("beta2_agonist", "beta-2 adrenergic agonist", 0.5, "{x}terol", "R03AC",
          "Adrenergic beta-2 Receptor Agonists; Bronchodilator Agents",
          [L("ADRB2", "agonist"), L("CYP3A4", "substrate", 0.4)]),
    _arch("antimuscarinic", "antimuscarinic agent", 0.5, "{x}tropium {x}fenacin", "G04BD R03BB",
          "Muscarinic Antagonists; Anticholinergic Agents",
          [L("CHRM3", "antagonist"), L("CHRM1", "antagonist", 0.6), L("CYP3A4", "substrate", 0.5),
           L("CYP2D6", "substrate", 0.4)]),
    _arch("antihistamine", "sedating antihistamine", 0.5, "{x}hydramine {x}tadine", "R06AA",
          "Histamine H1 Antagonists; Central Nervous System Depressants@0.6; Anticholinergic Agents@0.5",
          [L("HRH1", "inverse agonist"), L("CHRM1", "antagonist", 0.4), L("CYP2D6", "substrate", 0.5),
           L("CYP2D6", "inhibitor", 0.3, "moderate|weak"), L("CYP3A4", "substrate", 0.4)]),
    _arch("proton_pump_inhibitor", "proton pump inhibitor", 0.6, "{x}prazole", "A02BC",
          "Proton Pump Inhibitors; Anti-Ulcer Agents",
          [L("ATP4A", "inhibitor"), L("CYP2C19", "substrate", 0.95), L("CYP2C19", "inhibitor", 0.6, "moderate|weak"),
           L("CYP3A4", "substrate", 0.8), L("CYP1A2", "inducer", 0.3, "weak")]),
    _arch("h2_blocker", "histamine H2 antagonist", 0.3, "{x}tidine", "A02BA",
          "Histamine H2 Antagonists; Anti-Ulcer Agents",
          [L("HRH2", "antagonist"), L("SLC22A2", "inhibitor", 0.6), L("SLC47A1", "inhibitor", 0.4),
           L("CYP1A2", "inhibitor", 0.3, "moderate|weak"), L("CYP3A4", "inhibitor", 0.3, "weak")]),
    _arch("antacid", "antacid", 0.3, "{x}aldrate {x}magate", "A02AD", "Antacids", [], promiscuity=2.0),
    _arch("kinase_inhibitor", "tyrosine kinase inhibitor", 1.8, "{x}tinib", "L01EK L01EB L01EA",
          "Protein Kinase Inhibitors; Antineoplastic Agents; QTc Prolonging Agents@0.3; Myelosuppressive Agents@0.3",
          [L("KIT", "inhibitor", 0.4), L("PDGFRB", "inhibitor", 0.4), L("CYP3A4", "substrate", 0.95),
           L("CYP3A4", "inhibitor", 0.3, "moderate|weak"), L("CYP1A2", "substrate", 0.3), L("CYP2C19", "substrate", 0.2),
           L("ABCB1", "substrate", 0.6), L("ABCB1", "inhibitor", 0.4), L("ABCG2", "substrate", 0.4),
           L("ABCG2", "inhibitor", 0.3), L("KCNH2", "inhibitor", 0.2)],
          one_of=[L("KDR", "inhibitor"), L("EGFR", "inhibitor"), L("ABL1", "inhibitor"), L("FLT1", "inhibitor")]),
    _arch("antimetabolite", "antimetabolite antineoplastic", 0.5, "{x}trexate {x}citabine", "L01BA L01BC",
          "Antimetabolites, Antineoplastic; Myelosuppressive Agents; Nephrotoxic agents@0.4; "
          "Immunosuppressive Agents@0.3",
          [L("SLC22A6", "substrate", 0.5), L("SLC22A8", "substrate", 0.5), L("ABCG2", "substrate", 0.3)],
          one_of=[L("DHFR", "inhibitor"), L("TYMS", "inhibitor")]),
    _arch("alkylating_agent", "alkylating antineoplastic", 0.4, "{x}mustine {x}platin", "L01AA L01XA",
          "Antineoplastic Agents, Alkylating; Myelosuppressive Agents; Nephrotoxic agents@0.6; Ototoxic agents@0.3",
          [L("DNA", "cross-linking/alkylation"), L("SLC22A2", "substrate", 0.5)]),
    _arch("monoclonal_antibody", "monoclonal antibody", 1.2, "{x}mab {x}zumab {x}umab", "L01FX L04AB",
          "Antibodies, Monoclonal; Immunosuppressive Agents@0.4; Myelosuppressive Agents@0.2", [],
          one_of=[L("TNF", "inhibitor"), L("EGFR", "antagonist"), L("MS4A1", "binder"), L("ERBB2", "antagonist"),
                  L("IL6R", "antagonist")], biotech=True, promiscuity=0.3),
    _arch("estrogen", "estrogen", 0.5, "Estr{x}ol {x}estrol", "G03CA", "Estrogens; Contraceptive Agents@0.4",
          [L("ESR1", "agonist"), L("ESR2", "agonist", 0.6), L("CYP3A4", "substrate", 0.9), L("CYP1A2", "substrate", 0.4),
           L("SHBG", "binder", 0.5), L("ALB", "binder", 0.5)]),
    _arch("serm", "selective estrogen receptor modulator", 0.25, "{x}oxifene {x}moxifen", "G03XC L02BA",
          "Selective Estrogen Receptor Modulators; Estrogen Antagonists",
          [L("ESR1", "antagonist"), L("CYP3A4", "substrate", 0.8), L("CYP2D6", "substrate", 0.6)]),
    _arch("cardiac_glycoside", "cardiac glycoside", 0.15, "Dig{x}in {x}toxin", "C01AA",
          "Cardiac Glycosides; Cardiotonic Agents", [L("ATP1A1", "inhibitor"), L("ABCB1", "substrate", 0.95),
                                                     L("CYP3A4", "substrate", 0.3)]),
    _arch("class3_antiarrhythmic", "class III antiarrhythmic", 0.3, "{x}darone {x}etilide", "C01BD",
          "Anti-Arrhythmia Agents; QTc Prolonging Agents; Bradycardia-Causing Agents@0.6",
          [L("KCNH2", "inhibitor"), L("ADRB1", "antagonist", 0.3), L("CYP3A4", "substrate", 0.7),
           L("CYP3A4", "inhibitor", 0.5, "moderate|weak"), L("CYP2D6", "inhibitor", 0.4, "weak"),
           L("CYP2C9", "inhibitor", 0.3, "moderate"), L("ABCB1", "inhibitor", 0.6), L("SLC22A2", "substrate", 0.3)]),
    _arch("methylxanthine", "methylxanthine", 0.25, "{x}phylline", "R03DA",
          "Xanthines; Bronchodilator Agents; Purinergic P1 Receptor Antagonists",
          [L("ADORA2A", "antagonist"), L("ADORA1", "antagonist", 0.8), L("CYP1A2", "substrate", 0.95)]),
    _arch("stress_imaging_agent", "pharmacologic stress agent", 0.15, "{x}denoson", "C01EB",
          "Diagnostic Agents; Adenosine A2 Receptor Agonists", [L("ADORA2A", "agonist")]),
    _arch("experimental_compound", "experimental small molecule", 1.5, "{x}ine {x}ol {x}amide", "",
          "Organic Chemicals",
          [L("CYP3A4", "substrate", 0.2), L("ALB", "binder", 0.1)],
          one_of=[L("CA2", "inhibitor"), L("DHFR", "binder"), L("PTGS2", "binder"), L("ESR2", "binder"),
                  L("MAOB", "binder"), L("DRD3", "ligand")], promiscuity=0.2),
)

# ATC level names for every code prefix the archetypes and the fixture use.
ATC_NAMES: dict[str, str] = {
    "A": "ALIMENTARY TRACT AND METABOLISM", "A02": "DRUGS FOR ACID RELATED DISORDERS", "A02A": "ANTACIDS",
    "A02AD": "Combinations and complexes of aluminium, calcium and magnesium compounds",
    "A02B": "DRUGS FOR PEPTIC ULCER AND GASTRO-OESOPHAGEAL REFLUX DISEASE (GORD)",
    "A02BA": "H2-receptor antagonists", "A02BC": "Proton pump inhibitors", "A10": "DRUGS USED IN DIABETES",
    "A10A": "INSULINS AND ANALOGUES", "A10AB": "Insulins and analogues for injection, fast-acting",
    "A10B": "BLOOD GLUCOSE LOWERING DRUGS, EXCL. INSULINS", "A10BA": "Biguanides", "A10BB": "Sulfonylureas",
    "A10BH": "Dipeptidyl peptidase 4 (DPP-4) inhibitors",
    "B": "BLOOD AND BLOOD FORMING ORGANS", "B01": "ANTITHROMBOTIC AGENTS", "B01A": "ANTITHROMBOTIC AGENTS",
    "B01AA": "Vitamin K antagonists", "B01AB": "Heparin group",
    "B01AC": "Platelet aggregation inhibitors excl. heparin", "B01AE": "Direct thrombin inhibitors",
    "B01AF": "Direct factor Xa inhibitors",
    "C": "CARDIOVASCULAR SYSTEM", "C01": "CARDIAC THERAPY", "C01A": "CARDIAC GLYCOSIDES",
    "C01AA": "Digitalis glycosides", "C01B": "ANTIARRHYTHMICS, CLASS I AND III",
    "C01BD": "Antiarrhythmics, class III", "C01E": "OTHER CARDIAC PREPARATIONS",
    "C01EB": "Other cardiac preparations", "C02": "ANTIHYPERTENSIVES",
    "C02C": "ANTIADRENERGIC AGENTS, PERIPHERALLY ACTING", "C02CA": "Alpha-adrenoreceptor antagonists",
    "C03": "DIURETICS", "C03A": "LOW-CEILING DIURETICS, THIAZIDES", "C03AA": "Thiazides, plain",
    "C03C": "HIGH-CEILING DIURETICS", "C03CA": "Sulfonamides, plain", "C03D": "POTASSIUM-SPARING AGENTS",
    "C03DA": "Aldosterone antagonists", "C07": "BETA BLOCKING AGENTS", "C07A": "BETA BLOCKING AGENTS",
    "C07AB": "Beta blocking agents, selective", "C08": "CALCIUM CHANNEL BLOCKERS",
    "C08C": "SELECTIVE CALCIUM CHANNEL BLOCKERS WITH MAINLY VASCULAR EFFECTS",
    "C08CA": "Dihydropyridine derivatives", "C09": "AGENTS ACTING ON THE RENIN-ANGIOTENSIN SYSTEM",
    "C09A": "ACE INHIBITORS, PLAIN", "C09AA": "ACE inhibitors, plain",
    "C09C": "ANGIOTENSIN II RECEPTOR BLOCKERS (ARBs), PLAIN",
    "C09CA": "Angiotensin II receptor blockers (ARBs), plain", "C10": "LIPID MODIFYING AGENTS",
    "C10A": "LIPID MODIFYING AGENTS, PLAIN", "C10AA": "HMG CoA reductase inhibitors", "C10AB": "Fibrates",
    "C10AC": "Bile acid sequestrants",
    "D": "DERMATOLOGICALS", "D01": "ANTIFUNGALS FOR DERMATOLOGICAL USE", "D01A": "ANTIFUNGALS FOR TOPICAL USE",
    "D01AC": "Imidazole and triazole derivatives",
    "G": "GENITO URINARY SYSTEM AND SEX HORMONES", "G03": "SEX HORMONES AND MODULATORS OF THE GENITAL SYSTEM",
    "G03C": "ESTROGENS", "G03CA": "Natural and semisynthetic estrogens, plain",
    "G03X": "OTHER SEX HORMONES AND MODULATORS OF THE GENITAL SYSTEM",
    "G03XC": "Selective estrogen receptor modulators", "G04": "UROLOGICALS", "G04B": "UROLOGICALS",
    "G04BD": "Drugs for urinary frequency and incontinence",
    "J": "ANTIINFECTIVES FOR SYSTEMIC USE", "J01": "ANTIBACTERIALS FOR SYSTEMIC USE", "J01A": "TETRACYCLINES",
    "J01AA": "Tetracyclines", "J01F": "MACROLIDES, LINCOSAMIDES AND STREPTOGRAMINS", "J01FA": "Macrolides",
    "J01G": "AMINOGLYCOSIDE ANTIBACTERIALS", "J01GB": "Other aminoglycosides",
    "J01M": "QUINOLONE ANTIBACTERIALS", "J01MA": "Fluoroquinolones", "J02": "ANTIMYCOTICS FOR SYSTEMIC USE",
    "J02A": "ANTIMYCOTICS FOR SYSTEMIC USE", "J02AB": "Imidazole derivatives", "J02AC": "Triazole derivatives",
    "J04": "ANTIMYCOBACTERIALS", "J04A": "DRUGS FOR TREATMENT OF TUBERCULOSIS", "J04AB": "Antibiotics",
    "L": "ANTINEOPLASTIC AND IMMUNOMODULATING AGENTS", "L01": "ANTINEOPLASTIC AGENTS",
    "L01A": "ALKYLATING AGENTS", "L01AA": "Nitrogen mustard analogues", "L01B": "ANTIMETABOLITES",
    "L01BA": "Folic acid analogues", "L01BC": "Pyrimidine analogues", "L01E": "PROTEIN KINASE INHIBITORS",
    "L01EA": "BCR-ABL tyrosine kinase inhibitors",
    "L01EB": "Epidermal growth factor receptor (EGFR) tyrosine kinase inhibitors",
    "L01EK": "Vascular endothelial growth factor receptor (VEGFR) tyrosine kinase inhibitors",
    "L01F": "MONOCLONAL ANTIBODIES AND ANTIBODY DRUG CONJUGATES",
    "L01FX": "Other monoclonal antibodies and antibody drug conjugates", "L01X": "OTHER ANTINEOPLASTIC AGENTS",
    "L01XA": "Platinum compounds", "L02": "ENDOCRINE THERAPY", "L02B": "HORMONE ANTAGONISTS AND RELATED AGENTS",
    "L02BA": "Anti-estrogens", "L04": "IMMUNOSUPPRESSANTS", "L04A": "IMMUNOSUPPRESSANTS",
    "L04AB": "Tumor necrosis factor alpha (TNF-alpha) inhibitors",
    "M": "MUSCULO-SKELETAL SYSTEM", "M01": "ANTIINFLAMMATORY AND ANTIRHEUMATIC PRODUCTS",
    "M01A": "ANTIINFLAMMATORY AND ANTIRHEUMATIC PRODUCTS, NON-STEROIDS",
    "M01AB": "Acetic acid derivatives and related substances", "M01AC": "Oxicams",
    "M01AE": "Propionic acid derivatives",
    "N": "NERVOUS SYSTEM", "N02": "ANALGESICS", "N02A": "OPIOIDS", "N02AA": "Natural opium alkaloids",
    "N02AB": "Phenylpiperidine derivatives", "N02B": "OTHER ANALGESICS AND ANTIPYRETICS",
    "N02BA": "Salicylic acid and derivatives", "N02C": "ANTIMIGRAINE PREPARATIONS",
    "N02CC": "Selective serotonin (5HT1) agonists", "N03": "ANTIEPILEPTICS", "N03A": "ANTIEPILEPTICS",
    "N03AB": "Hydantoin derivatives", "N03AF": "Carboxamide derivatives", "N04": "ANTI-PARKINSON DRUGS",
    "N04B": "DOPAMINERGIC AGENTS", "N04BC": "Dopamine agonists", "N04BD": "Monoamine oxidase B inhibitors",
    "N05": "PSYCHOLEPTICS", "N05A": "ANTIPSYCHOTICS",
    "N05AH": "Diazepines, oxazepines, thiazepines and oxepines", "N05AX": "Other antipsychotics",
    "N05B": "ANXIOLYTICS", "N05BA": "Benzodiazepine derivatives", "N05C": "HYPNOTICS AND SEDATIVES",
    "N05CD": "Benzodiazepine derivatives", "N06": "PSYCHOANALEPTICS", "N06A": "ANTIDEPRESSANTS",
    "N06AB": "Selective serotonin reuptake inhibitors",
    "R": "RESPIRATORY SYSTEM", "R03": "DRUGS FOR OBSTRUCTIVE AIRWAY DISEASES", "R03A": "ADRENERGICS, INHALANTS",
    "R03AC": "Selective beta-2-adrenoreceptor agonists",
    "R03B": "OTHER DRUGS FOR OBSTRUCTIVE AIRWAY DISEASES, INHALANTS", "R03BB": "Anticholinergics",
    "R03D": "OTHER SYSTEMIC DRUGS FOR OBSTRUCTIVE AIRWAY DISEASES", "R03DA": "Xanthines",
    "R06": "ANTIHISTAMINES FOR SYSTEMIC USE", "R06A": "ANTIHISTAMINES FOR SYSTEMIC USE",
    "R06AA": "Aminoalkyl ethers",
    "S": "SENSORY ORGANS", "S01": "OPHTHALMOLOGICALS", "S01E": "ANTIGLAUCOMA PREPARATIONS AND MIOTICS",
    "S01EC": "Carbonic anhydrase inhibitors",
    "V": "VARIOUS", "V03": "ALL OTHER THERAPEUTIC PRODUCTS", "V03A": "ALL OTHER THERAPEUTIC PRODUCTS",
    "V03AB": "Antidotes",
}

# MeSH descriptor ids of MeSH-derived categories; DrugBank's own categories have an empty mesh-id.
CATEGORY_MESH: dict[str, str] = {
    "Antifungal Agents": "D000935", "Triazoles": "D014230", "Anti-Bacterial Agents": "D000900",
    "Macrolides": "D018942", "Fluoroquinolones": "D024841", "Tetracyclines": "D013752",
    "Aminoglycosides": "D000617", "Antibiotics, Antitubercular": "D000995", "Anticonvulsants": "D000927",
    "Central Nervous System Depressants": "D002492", "Benzodiazepines": "D001569",
    "Hypnotics and Sedatives": "D006993", "Analgesics, Opioid": "D000701", "Narcotics": "D009294",
    "Narcotic Antagonists": "D009292", "Serotonin Uptake Inhibitors": "D017367",
    "Antidepressive Agents, Second-Generation": "D018687", "Serotonin Agents": "D017366",
    "Serotonin 5-HT1 Receptor Agonists": "D058825", "Vasoconstrictor Agents": "D014662",
    "Monoamine Oxidase Inhibitors": "D008996", "Antiparkinson Agents": "D000978",
    "Antipsychotic Agents": "D014150", "Dopamine Antagonists": "D018492", "Dopamine Agonists": "D018491",
    "Anticoagulants": "D000925", "Coumarins": "D003374", "Factor Xa Inhibitors": "D065427",
    "Antithrombins": "D000991", "Heparin": "D006493", "Platelet Aggregation Inhibitors": "D010975",
    "Prodrugs": "D011355", "Anti-Inflammatory Agents, Non-Steroidal": "D000894",
    "Adrenergic beta-Antagonists": "D000319", "Antihypertensive Agents": "D000959",
    "Adrenergic alpha-1 Receptor Antagonists": "D058668",
    "Angiotensin-Converting Enzyme Inhibitors": "D000806",
    "Angiotensin II Type 1 Receptor Blockers": "D047228", "Calcium Channel Blockers": "D002121",
    "Diuretics": "D004232", "Sodium Potassium Chloride Symporter Inhibitors": "D049993",
    "Sodium Chloride Symporter Inhibitors": "D049971", "Carbonic Anhydrase Inhibitors": "D002257",
    "Mineralocorticoid Receptor Antagonists": "D000451",
    "Hydroxymethylglutaryl-CoA Reductase Inhibitors": "D019161", "Anticholesteremic Agents": "D000924",
    "Hypolipidemic Agents": "D000960", "Fibric Acids": "D005326", "Hypoglycemic Agents": "D007004",
    "Sulfonylurea Compounds": "D013453", "Biguanides": "D001645",
    "Dipeptidyl-Peptidase IV Inhibitors": "D054873", "Insulins": "D061385",
    "Adrenergic beta-2 Receptor Agonists": "D058666", "Bronchodilator Agents": "D001993",
    "Muscarinic Antagonists": "D018727", "Histamine H1 Antagonists": "D006634",
    "Proton Pump Inhibitors": "D054328", "Anti-Ulcer Agents": "D000897", "Histamine H2 Antagonists": "D006635",
    "Antacids": "D000863", "Protein Kinase Inhibitors": "D047428", "Antineoplastic Agents": "D000970",
    "Antimetabolites, Antineoplastic": "D000964", "Immunosuppressive Agents": "D007166",
    "Antineoplastic Agents, Alkylating": "D018906", "Antibodies, Monoclonal": "D000911",
    "Estrogens": "D004967", "Contraceptive Agents": "D003270",
    "Selective Estrogen Receptor Modulators": "D020845", "Estrogen Antagonists": "D004965",
    "Cardiac Glycosides": "D002301", "Cardiotonic Agents": "D002316", "Anti-Arrhythmia Agents": "D000889",
    "Xanthines": "D014970", "Purinergic P1 Receptor Antagonists": "D058914",
    "Adenosine A2 Receptor Agonists": "D058917", "Organic Chemicals": "D009930",
}

# --------------------------------------------------------------------------------------------------------
# Names and structures
# --------------------------------------------------------------------------------------------------------

SYLLABLES = (
    "ba", "be", "bi", "ca", "ce", "co", "da", "de", "di", "do", "fa", "fe", "fi", "ga", "ge", "la", "le", "li",
    "lo", "lu", "ma", "me", "mi", "mo", "na", "ne", "ni", "no", "pa", "pe", "pi", "ra", "re", "ri", "ro", "sa",
    "se", "si", "ta", "te", "ti", "to", "tu", "va", "ve", "vi", "xa", "za", "ze", "zo", "cor", "dal", "fen",
    "lor", "mar", "nor", "pra", "quin", "ril", "sal", "tal", "tor", "van", "vel", "zal", "bro", "cla", "dre",
    "gli", "tri", "ox", "am", "el", "ir", "ul", "or",
)
ESTERS = ("valerate", "acetate", "propionate", "cypionate", "succinate", "dipropionate")
SALTS = {  # salt suffix: (average, monoisotopic) mass added to the base
    "hydrochloride": (36.461, 35.976678), "sodium": (21.982, 21.981945), "mesylate": (96.106, 95.987764),
    "hydrobromide": (80.912, 79.926160), "maleate": (116.072, 116.010959),
}
NAME_MODIFIERS = ("isophane", "zinc", "protamine", "pegylated")
NAME_SPECIES = ("human", "bovine", "porcine", "recombinant")
GREEK = ("α-", "β-", "γ-")
ACCENTED = {"e": "é", "o": "ö", "i": "ï", "a": "à"}

ATOM_MASS = {  # element: (average, monoisotopic)
    "C": (12.011, 12.0), "H": (1.008, 1.007825), "N": (14.007, 14.003074), "O": (15.999, 15.994915),
    "F": (18.998, 18.998403), "S": (32.06, 31.972071), "Cl": (35.45, 34.968853), "Br": (79.904, 78.918338),
}


def _formula(text: str) -> dict[str, int]:
    return {el: int(n or 1) for el, n in re.findall(r"([A-Z][a-z]?)(\d*)", text)}


# SMILES building blocks with their atoms when bonded on both sides (chain links) or one side (ends).
# A molecule is start + links + end; each ring closes inside its block, so any chain is valid SMILES.
# The first element tells whether the block starts/ends with a heteroatom (two never meet).
SMILES_LINKS: tuple[tuple[str, dict[str, int], bool, bool], ...] = tuple(
    (s, _formula(f), a == "h", b == "h") for s, f, a, b in (
        ("C", "CH2", "c", "c"), ("CC", "C2H4", "c", "c"), ("C(=O)", "CO", "c", "c"), ("C(=O)N", "CONH", "c", "h"),
        ("N", "NH", "h", "h"), ("O", "O", "h", "h"), ("S(=O)(=O)", "SO2", "h", "h"), ("c1ccc(cc1)", "C6H4", "c", "c"),
        ("c1cc(ccn1)", "C5H3N", "c", "c"), ("c1ccc(s1)", "C4H2S", "c", "c"), ("C1CCN(CC1)", "C5H9N", "c", "h"),
        ("C(C)", "C2H4", "c", "c"), ("C(F)(F)", "CF2", "c", "c"), ("c1cc(F)c(cc1)", "C6H3F", "c", "c"),
    )
)
SMILES_ENDS: tuple[tuple[str, dict[str, int], bool], ...] = tuple(
    (s, _formula(f), a == "h") for s, f, a in (
        ("F", "F", "h"), ("Cl", "Cl", "h"), ("Br", "Br", "h"), ("O", "OH", "h"), ("N", "NH2", "h"), ("C", "CH3", "c"),
        ("C(F)(F)F", "CF3", "c"), ("C#N", "CN", "c"), ("C(=O)O", "CO2H", "c"), ("C(=O)N", "CONH2", "c"),
        ("c1ccccc1", "C6H5", "c"), ("N1CCOCC1", "C4H8NO", "h"), ("OC", "OCH3", "h"), ("c1ccncc1", "C5H4N", "c"),
    )
)
SMILES_STARTS = tuple(link for link in SMILES_LINKS if link[0] in (
    "C", "CC", "c1ccc(cc1)", "c1cc(ccn1)", "C1CCN(CC1)", "N", "O", "C(C)", "c1cc(F)c(cc1)"))


@dataclass(frozen=True)
class Molecule:
    smiles: str
    formula: str
    average_mass: float
    monoisotopic_mass: float
    inchikey: str


def _molecule(rng: random.Random) -> Molecule:
    """A random valid SMILES chain with its molecular formula, masses and an InChIKey-shaped hash."""
    start = rng.choice(SMILES_STARTS)
    parts, atoms, hetero_end = [start[0]], Counter(start[1]), start[3]
    atoms["H"] += 1  # the start block's first atom has no bond to a predecessor
    for _ in range(rng.randint(3, 9)):
        link = rng.choice(SMILES_LINKS)
        if hetero_end and link[2]:
            parts.append("C")
            atoms.update({"C": 1, "H": 2})
        parts.append(link[0])
        atoms.update(link[1])
        hetero_end = link[3]
    end = rng.choice(SMILES_ENDS)
    if hetero_end and end[2]:
        parts.append("C")
        atoms.update({"C": 1, "H": 2})
    parts.append(end[0])
    atoms.update(end[1])
    smiles = "".join(parts)
    order = ["C", "H"] + sorted(el for el in atoms if el not in ("C", "H"))
    formula = "".join(f"{el}{atoms[el] if atoms[el] > 1 else ''}" for el in order if atoms[el])
    average = sum(ATOM_MASS[el][0] * n for el, n in atoms.items())
    mono = sum(ATOM_MASS[el][1] * n for el, n in atoms.items())
    return Molecule(smiles, formula, round(average, 4), round(mono, 6), _inchikey_shape(smiles))


def _letters(data: bytes, n: int) -> str:
    return "".join(chr(65 + b % 26) for b in data[:n])


def _inchikey_shape(smiles: str) -> str:
    digest = hashlib.sha256(smiles.encode()).digest()
    return f"{_letters(digest, 14)}-{_letters(digest[14:], 8)}SA-N"


def _cas(rng: random.Random) -> str:
    body = str(rng.randint(10000, 9999999))
    check = sum(i * int(d) for i, d in enumerate(reversed(body), 1)) % 10
    return f"{body[:-2]}-{body[-2:]}-{check}"


def _unii(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(10))


class _Names:
    """Generates drug names unique case-insensitively (also against the fixture's names)."""

    def __init__(self, rng: random.Random, taken: set[str]):
        self.rng, self.taken = rng, taken

    def claim(self, name: str) -> bool:
        if name.casefold() in self.taken:
            return False
        self.taken.add(name.casefold())
        return True

    def core(self, stem: str) -> str:
        for attempt in range(1000):
            n_syllables = 1 + (attempt > 20) + (attempt > 200) + (self.rng.random() < 0.5)
            x = "".join(self.rng.choice(SYLLABLES) for _ in range(n_syllables))
            name = stem.replace("_", " ").format(x=x)
            name = name[0].upper() + name[1:]
            if name.casefold() not in self.taken:
                return name
        raise InputError(f"cannot find a free drug name for stem {stem!r}: the name space is exhausted")

    def make(self, stem: str, case: str, base: str | None) -> str:
        """A new name of hard ``case``: plain | ester (of ``base``) | salt | unicode | punctuation."""
        rng = self.rng
        for _ in range(100):
            if case == "ester" and base is not None:
                name = f"{base} {rng.choice(ESTERS)}"
            elif case == "salt":
                name = f"{self.core(stem)} {rng.choice(sorted(SALTS))}"
            elif case == "unicode":
                core = self.core(stem)
                vowels = [i for i, ch in enumerate(core) if ch in ACCENTED and i > 0]
                if vowels and rng.random() < 0.5:
                    i = rng.choice(vowels)
                    name = core[:i] + ACCENTED[core[i]] + core[i + 1:]
                else:
                    name = rng.choice(GREEK) + core
            elif case == "punctuation":
                name = f"{self.core(stem)}, {rng.choice(NAME_MODIFIERS)} ({rng.choice(NAME_SPECIES)})"
            else:
                name = self.core(stem)
            if self.claim(name):
                return name
        raise InputError(f"cannot find a free drug name for stem {stem!r} ({case})")


# --------------------------------------------------------------------------------------------------------
# Drugs: the fixture's records and synthetic ones
# --------------------------------------------------------------------------------------------------------

GROUP_SETS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("approved",), 40), (("approved", "investigational"), 18), (("investigational",), 15), (("experimental",), 17),
    (("approved", "withdrawn"), 3), (("approved", "vet_approved"), 3), (("experimental", "investigational"), 2),
    (("approved", "nutraceutical"), 1), (("approved", "illicit"), 1),
)
PK_CATEGORY_NAMES = {  # transporter gene: DrugBank's category prefix
    "ABCB1": "P-glycoprotein", "ABCG2": "BCRP/ABCG2", "SLCO1B1": "OATP1B1/SLCO1B1", "SLC22A6": "OAT1/SLC22A6",
    "SLC22A8": "OAT3/SLC22A8", "SLC22A2": "OCT2/SLC22A2", "SLC47A1": "MATE1/SLC47A1",
}
HARD_CASES = ("ester", "salt", "unicode", "punctuation")
HARD_CASE_SHARE = {"ester": 0.02, "salt": 0.02, "unicode": 0.015, "punctuation": 0.01}
FIXTURE_WEIGHT = 3.0  # well-known drugs are drawn into more interactions
FIRST_CREATED = dt.date(2005, 6, 13)


@dataclass(frozen=True)
class _LinkOut:
    protein: Protein
    actions: tuple[str, ...]
    known_action: str
    inhibition_strength: str
    induction_strength: str


@dataclass
class _Drug:
    """One top-level record: a verbatim fixture record (``head``/``tail`` around its interactions) or synthetic."""

    id: str
    name: str
    roles: frozenset[str]
    weight: float
    head: str = ""
    tail: str = ""
    arch: Archetype | None = None
    attrs: dict[str, Any] | None = None
    pathways: list[int] | None = None


@dataclass(frozen=True)
class _Fixture:
    drugs: list[_Drug]
    ids: set[str]  # every drugbank id used (primary, secondary, salt)
    names: set[str]  # casefolded
    listings: list[tuple[str, str, str]]  # (owner id, partner id, description)
    n_proteins: int
    pathway_ids: set[str]


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def record_evidence(drug: etree._Element) -> tuple[set[tuple[str, str]], set[str]]:
    """(gene name, action) pairs of a record's targets/enzymes/carriers/transporters, and its category names."""
    links: set[tuple[str, str]] = set()
    for kind in PROTEIN_KINDS:
        for el in drug.iterfind(f"{_q(kind + 's')}/{_q(kind)}"):
            actions = [(a.text or "").strip() for a in el.iterfind(f"{_q('actions')}/{_q('action')}")]
            genes = [(g.text or "").strip() for g in el.iterfind(f"{_q('polypeptide')}/{_q('gene-name')}")]
            links.update((g, a) for g in genes for a in actions if g and a)
    cats = {(c.text or "").strip() for c in drug.iterfind(f"{_q('categories')}/{_q('category')}/{_q('category')}")}
    return links, cats


def _load_fixture(path: Path) -> _Fixture:
    try:
        root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise InputError(f"{path}: cannot read the real-drug fixture: {exc}") from None
    if root.tag != _q("drugbank"):
        raise InputError(f"{path}: root element is {root.tag!r}, expected <drugbank> in namespace {NS}")
    drugs, ids, names, listings, n_proteins, pathway_ids = [], set(), set(), [], 0, set()
    for el in root.iterfind(_q("drug")):
        primary = [i.text.strip() for i in el.iterfind(_q("drugbank-id")) if i.get("primary") == "true" and i.text]
        name = (el.findtext(_q("name")) or "").strip()
        if len(primary) != 1 or not name:
            raise InputError(f"{path}: record on line {el.sourceline} needs one primary drugbank-id and a name")
        drug_id = primary[0]
        record_ids = {(i.text or "").strip() for i in el.iterfind(_q("drugbank-id"))} | {
            (i.text or "").strip() for i in el.iterfind(f"{_q('salts')}/{_q('salt')}/{_q('drugbank-id')}")}
        if drug_id in ids or name.casefold() in names:
            raise InputError(f"{path}: duplicate drug {drug_id} / {name!r}")
        ids |= record_ids
        names.add(name.casefold())
        for ddi in el.iterfind(f"{_q('drug-interactions')}/{_q('drug-interaction')}"):
            listings.append((drug_id, (ddi.findtext(_q("drugbank-id")) or "").strip(),
                             ddi.findtext(_q("description")) or ""))
        n_proteins += sum(len(el.findall(f"{_q(k + 's')}/{_q(k)}")) for k in PROTEIN_KINDS)
        pathway_ids |= {(p.text or "").strip() for p in el.iterfind(f"{_q('pathways')}/{_q('pathway')}/{_q('smpdb-id')}")}
        links, cats = record_evidence(el)
        head, tail = _split_record(path, drug_id, etree.tostring(el, encoding="unicode", with_tail=False))
        drugs.append(_Drug(drug_id, name, drug_roles(links, cats), FIXTURE_WEIGHT, head, tail))
    if not drugs:
        raise InputError(f"{path}: the fixture has no <drug> records")
    primary_ids = {d.id for d in drugs}
    for owner, partner, _ in listings:
        if partner not in primary_ids:
            raise InputError(f"{path}: drug {owner} lists interaction partner {partner!r}, not a record of the fixture")
    return _Fixture(drugs, ids, names, listings, n_proteins, pathway_ids)


def _split_record(path: Path, drug_id: str, text: str) -> tuple[str, str]:
    """Cut a serialised fixture record where appended interactions go (before </drug-interactions>)."""
    text = text.replace(f' xmlns="{NS}"', "", 1)
    if "<drug-interactions/>" in text:
        i = text.index("<drug-interactions/>")
        return text[:i] + "<drug-interactions>\n", "    </drug-interactions>" + text[i + len("<drug-interactions/>"):]
    if "</drug-interactions>" not in text:
        raise InputError(f"{path}: record {drug_id} has no <drug-interactions> element")
    i = text.index("</drug-interactions>")
    return text[:i].rstrip(" "), "    " + text[i:]


def _draw_links(arch: Archetype, rng: random.Random) -> list[_LinkOut]:
    picks = ([rng.choice(arch.one_of)] if arch.one_of else []) + [lk for lk in arch.links if rng.random() < lk.p]
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
        out.append(_LinkOut(protein, tuple(entry["actions"]), known, entry["inhibitor"], entry["inducer"]))
    return out


def _pk_categories(links: Sequence[_LinkOut]) -> set[str]:
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


def _synthetic_drug(drug_id: str, case: str, base: str | None, arch: Archetype, names: _Names, ids: _IdPool,
                    rng: random.Random, exported: dt.date) -> _Drug:
    """One synthetic record's content; ``case`` is the hard name case (an ester names ``base``)."""
    name = names.make(rng.choice(arch.stems), case, base)
    links = _draw_links(arch, rng)
    cats = {c for c, p in arch.categories if rng.random() < p} | _pk_categories(links)
    molecule = None if arch.biotech else _molecule(rng)
    groups = ("experimental",) if arch.key == "experimental_compound" else rng.choices(
        [g for g, _ in GROUP_SETS], [w for _, w in GROUP_SETS])[0]
    atc = []
    if arch.atc:
        atc.append(rng.choice(arch.atc) + f"{rng.randint(50, 99)}")
        if len(arch.atc) > 1 and rng.random() < 0.15:
            atc.append(rng.choice([a for a in arch.atc if not atc[0].startswith(a)]) + f"{rng.randint(50, 99)}")
    span = (exported - FIRST_CREATED).days
    created = FIRST_CREATED + dt.timedelta(days=rng.randint(0, span * 9 // 10))
    updated = created + dt.timedelta(days=rng.randint(0, (exported - created).days))
    secondary = []
    for prefix, p in (("APRD", 0.35), ("BTD", 0.6 if arch.biotech else 0.0), ("BIOD", 0.3 if arch.biotech else 0.0),
                      ("EXPT", 0.1), ("DBSALT", 0.03)):
        if rng.random() < p:
            secondary.append(ids.take(prefix))
    salts = []
    if molecule is not None and case == "plain" and rng.random() < 0.15:
        suffix = rng.choice(sorted(SALTS))
        if names.claim(f"{name} {suffix}"):
            avg, mono = SALTS[suffix]
            salts.append((ids.take("DBSALT"), f"{name} {suffix}", _unii(rng), _cas(rng),
                          _inchikey_shape(molecule.smiles + suffix), round(molecule.average_mass + avg, 4),
                          round(molecule.monoisotopic_mass + mono, 6)))
    attrs = {
        "type": "biotech" if arch.biotech else "small molecule", "created": created.isoformat(),
        "updated": updated.isoformat(), "secondary": secondary, "groups": groups, "links": links,
        "categories": sorted(cats), "atc": atc, "molecule": molecule, "salts": salts,
        "cas": _cas(rng), "unii": _unii(rng), "half_life": f"{rng.randint(1, 48)} hours",
        "protein_binding": f"{rng.randint(10, 99)}%", "logp": round(rng.uniform(-2.0, 6.5), 2),
        "synonym": name[:-1] if name.endswith("e") and rng.random() < 0.4 else "",
        "pubchem": str(rng.randint(100000, 170000000)) if molecule and rng.random() < 0.8 else "",
        "chembl": f"CHEMBL{rng.randint(1000, 5000000)}" if rng.random() < 0.6 else "",
    }
    weight = arch.promiscuity * rng.lognormvariate(0.0, 0.75)
    evidence = [(gene, a) for lk in links for _, gene, _ in lk.protein.polypeptides for a in lk.actions]
    return _Drug(drug_id, name, drug_roles(evidence, cats), weight, arch=arch, attrs=attrs, pathways=[])


class _IdPool:
    """Hands out DrugBank-shaped ids (APRD00001, DBSALT000001, ...) not used by the fixture or earlier drugs."""

    WIDTH: ClassVar[dict[str, int]] = {"DB": 5, "APRD": 5, "BTD": 5, "BIOD": 5, "EXPT": 5, "DBSALT": 6}

    def __init__(self, used: set[str]):
        self.used = set(used)
        self.next = dict.fromkeys(self.WIDTH, 1)

    def take(self, prefix: str) -> str:
        while True:
            n = self.next[prefix]
            self.next[prefix] = n + 1
            candidate = f"{prefix}{n:0{self.WIDTH[prefix]}d}"
            if n >= 10 ** self.WIDTH[prefix]:
                raise InputError(f"too many drugs: the {prefix} id space is exhausted")
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate


@dataclass(frozen=True)
class _Pathway:
    smpdb_id: str
    name: str
    category: str
    members: tuple[int, ...]  # drug indices
    enzymes: tuple[str, ...]  # UniProt ids


def _pathways(drugs: list[_Drug], rng: random.Random) -> list[_Pathway]:
    """Action pathways (with up to two same-class drugs) and metabolism pathways for some synthetic drugs."""
    out: list[_Pathway] = []
    by_arch: dict[str, list[int]] = {}
    for i, drug in enumerate(drugs):
        if drug.arch is None:
            continue
        links = drug.attrs["links"]
        peers = by_arch.setdefault(drug.arch.key, [])
        if rng.random() < 0.2:
            members = (i, *rng.sample(peers, min(len(peers), rng.randint(0, 2))))
            enzymes = tuple(dict.fromkeys(lk.protein.polypeptides[0][0] for lk in links
                                          if lk.protein.kind == "target" and lk.protein.polypeptides))
            out.append(_Pathway(f"SMP{100001 + len(out):07d}", f"{drug.name} Action Pathway", "drug_action",
                                members, enzymes))
        metabolic = tuple(lk.protein.polypeptides[0][0] for lk in links if lk.protein.kind == "enzyme")
        if metabolic and rng.random() < 0.1:
            out.append(_Pathway(f"SMP{100001 + len(out):07d}", f"{drug.name} Metabolism Pathway", "drug_metabolism",
                                (i,), metabolic))
        peers.append(i)
    for k, pathway in enumerate(out):
        for i in pathway.members:
            drugs[i].pathways.append(k)
    return out

# --------------------------------------------------------------------------------------------------------
# Rendering (text, streamed; element order and nesting follow drugbank.xsd)
# --------------------------------------------------------------------------------------------------------

_EMPTY_REFERENCES = "<references>\n{i}  <articles/>\n{i}  <textbooks/>\n{i}  <links/>\n{i}  <attachments/>\n{i}</references>"


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
        f"{i}  <transmembrane-regions/>\n{i}  <signal-regions/>\n{i}  <theoretical-pi/>\n{i}  <molecular-weight/>\n"
        f"{i}  <chromosome-location/>\n"
        f'{i}  <organism ncbi-taxonomy-id="{ORGANISM_TAXONOMY.get(organism, "")}">{_x(organism)}</organism>\n'
        f"{i}  <external-identifiers>\n{i}    <external-identifier>\n{i}      <resource>UniProtKB</resource>\n"
        f"{i}      <identifier>{uniprot}</identifier>\n{i}    </external-identifier>\n{i}  </external-identifiers>\n"
        f'{i}  <synonyms/>\n{i}  <amino-acid-sequence format="FASTA"/>\n{i}  <gene-sequence format="FASTA"/>\n'
        f"{i}  <pfams/>\n{i}  <go-classifiers/>\n{i}</polypeptide>\n"
    )


POLYPEPTIDE_XML: dict[str, str] = {
    key: "".join(_polypeptide_xml(p, *pp) for pp in p.polypeptides) for key, p in PROTEINS.items()
}


def _interactant_xml(kind: str, position: int, link: _LinkOut) -> str:
    """One <target>/<enzyme>/<carrier>/<transporter> element (6-space indented)."""
    i, p = " " * 6, link.protein
    actions = ("<actions>\n" + "".join(f"{i}    <action>{_x(a)}</action>\n" for a in link.actions) + f"{i}  </actions>"
               if link.actions else "<actions/>")
    strengths = ""
    if kind == "enzyme":
        strengths = (f"{i}  <inhibition-strength>{link.inhibition_strength}</inhibition-strength>\n"
                     f"{i}  <induction-strength>{link.induction_strength}</induction-strength>\n")
    return (
        f'{i}<{kind} position="{position}">\n{i}  <id>{p.be_id}</id>\n{i}  <name>{_x(p.name)}</name>\n'
        f"{i}  <organism>{_x(p.organism)}</organism>\n{i}  {actions}\n"
        f"{i}  {_EMPTY_REFERENCES.format(i=i + '  ')}\n{i}  <known-action>{link.known_action}</known-action>\n"
        f"{POLYPEPTIDE_XML[p.key]}{strengths}{i}</{kind}>\n"
    )


def _list_xml(tag: str, items: Sequence[str]) -> str:
    return f"    <{tag}>\n{''.join(items)}    </{tag}>\n" if items else f"    <{tag}/>\n"


def _atc_xml(code: str) -> str:
    levels = [code[:5], code[:4], code[:3], code[:1]]
    inner = "".join(f'        <level code="{c}">{_x(ATC_NAMES[c])}</level>\n' for c in levels)
    return f'      <atc-code code="{code}">\n{inner}      </atc-code>\n'


def _pathway_xml(pathway: _Pathway, drugs: list[_Drug]) -> str:
    i = " " * 6
    members = "".join(
        f"{i}    <drug>\n{i}      <drugbank-id>{drugs[k].id}</drugbank-id>\n{i}      <name>{_x(drugs[k].name)}</name>\n"
        f"{i}    </drug>\n" for k in pathway.members)
    enzymes = ("<enzymes>\n" + "".join(f"{i}    <uniprot-id>{u}</uniprot-id>\n" for u in pathway.enzymes)
               + f"{i}  </enzymes>") if pathway.enzymes else "<enzymes/>"
    return (f"{i}<pathway>\n{i}  <smpdb-id>{pathway.smpdb_id}</smpdb-id>\n{i}  <name>{_x(pathway.name)}</name>\n"
            f"{i}  <category>{pathway.category}</category>\n{i}  <drugs>\n{members}{i}  </drugs>\n"
            f"{i}  {enzymes}\n{i}</pathway>\n")


def _prose(drug: _Drug) -> dict[str, str]:
    """Description, mechanism and metabolism sentences of a synthetic record."""
    arch, links, name = drug.arch, drug.attrs["links"], drug.name
    targets = [lk for lk in links if lk.protein.kind == "target"]
    substrates = [lk.protein.key for lk in links if lk.protein.kind == "enzyme" and "substrate" in lk.actions]
    mechanism = "; ".join(f"{a} of {lk.protein.name}" for lk in targets for a in lk.actions)
    return {
        "description": f"{name} is a {arch.label}. This record is synthetic: MARD generated it for its demo release.",
        "indication": f"Indicated where a {arch.label} is appropriate.",
        "mechanism": f"{name} acts as an {mechanism}." if mechanism else "",
        "metabolism": f"{name} is metabolized by {', '.join(substrates)}." if substrates else "",
    }


def _synthetic_parts(drug: _Drug, pathway_xml: list[str]) -> tuple[str, str]:
    """The record text before and after its <drug-interactions> children."""
    a, prose = drug.attrs, _prose(drug)
    mol: Molecule | None = a["molecule"]
    ids = "".join(f"    <drugbank-id>{s}</drugbank-id>\n" for s in a["secondary"])
    masses = (f"    <average-mass>{mol.average_mass}</average-mass>\n"
              f"    <monoisotopic-mass>{mol.monoisotopic_mass}</monoisotopic-mass>\n") if mol else ""
    salts = [
        f"      <salt>\n        <drugbank-id>{sid}</drugbank-id>\n        <name>{_x(sname)}</name>\n"
        f"        <unii>{unii}</unii>\n        <cas-number>{cas}</cas-number>\n        <inchikey>{key}</inchikey>\n"
        f"        <average-mass>{avg}</average-mass>\n        <monoisotopic-mass>{mono}</monoisotopic-mass>\n"
        f"      </salt>\n" for sid, sname, unii, cas, key, avg, mono in a["salts"]]
    synonyms = [f'      <synonym language="" coder="INN">{_x(a["synonym"])}</synonym>\n'] if a["synonym"] else []
    categories = [f"      <category>\n        <category>{_x(c)}</category>\n"
                  f"        <mesh-id>{CATEGORY_MESH.get(c, '')}</mesh-id>\n      </category>\n"
                  for c in a["categories"]]
    props = []
    if mol:
        for kind, value, source in (("logP", a["logp"], "ALOGPS"), ("SMILES", mol.smiles, "ChemAxon"),
                                    ("InChIKey", mol.inchikey, "ChemAxon"),
                                    ("Molecular Weight", mol.average_mass, "ChemAxon"),
                                    ("Molecular Formula", mol.formula, "ChemAxon")):
            props.append(f"      <property>\n        <kind>{kind}</kind>\n        <value>{value}</value>\n"
                         f"        <source>{source}</source>\n      </property>\n")
    external = [f"      <external-identifier>\n        <resource>{res}</resource>\n"
                f"        <identifier>{val}</identifier>\n      </external-identifier>\n"
                for res, val in (("PubChem Compound", a["pubchem"]), ("ChEMBL", a["chembl"])) if val]
    by_kind: dict[str, list[_LinkOut]] = {k: [] for k in PROTEIN_KINDS}
    for lk in a["links"]:
        by_kind[lk.protein.kind].append(lk)
    proteins = "".join(_list_xml(k + "s", [_interactant_xml(k, n, lk) for n, lk in enumerate(v, 1)])
                       for k, v in by_kind.items())
    state = "liquid" if a["type"] == "biotech" else "solid"
    head = (
        f'<drug type="{a["type"]}" created="{a["created"]}" updated="{a["updated"]}">\n'
        f'    <drugbank-id primary="true">{drug.id}</drugbank-id>\n{ids}    <name>{_x(drug.name)}</name>\n'
        f"    <description>{_x(prose['description'])}</description>\n    <cas-number>{a['cas']}</cas-number>\n"
        f"    <unii>{a['unii']}</unii>\n{masses}    <state>{state}</state>\n"
        + _list_xml("groups", [f"      <group>{g}</group>\n" for g in a["groups"]])
        + f"    <general-references>\n      <articles/>\n      <textbooks/>\n      <links/>\n      <attachments/>\n"
        f"    </general-references>\n    <synthesis-reference/>\n"
        f"    <indication>{_x(prose['indication'])}</indication>\n    <pharmacodynamics/>\n"
        f"    <mechanism-of-action>{_x(prose['mechanism'])}</mechanism-of-action>\n    <toxicity/>\n"
        f"    <metabolism>{_x(prose['metabolism'])}</metabolism>\n    <absorption/>\n"
        f"    <half-life>{a['half_life']}</half-life>\n    <protein-binding>{a['protein_binding']}</protein-binding>\n"
        f"    <route-of-elimination/>\n    <volume-of-distribution/>\n    <clearance/>\n"
        + _list_xml("salts", salts) + _list_xml("synonyms", synonyms)
        + "    <products/>\n    <international-brands/>\n    <mixtures/>\n    <packagers/>\n    <manufacturers/>\n"
        "    <prices/>\n" + _list_xml("categories", categories)
        + "    <affected-organisms>\n      <affected-organism>Humans and other mammals</affected-organism>\n"
        "    </affected-organisms>\n    <dosages/>\n" + _list_xml("atc-codes", [_atc_xml(c) for c in a["atc"]])
        + "    <ahfs-codes/>\n    <pdb-entries/>\n    <patents/>\n    <food-interactions/>\n    <drug-interactions>\n"
    )
    tail = (
        "    </drug-interactions>\n"
        + (_list_xml("calculated-properties", props) if mol else "")
        + "    <experimental-properties/>\n" + _list_xml("external-identifiers", external)
        + "    <external-links/>\n" + _list_xml("pathways", [pathway_xml[k] for k in drug.pathways])
        + f"    <reactions/>\n    <snp-effects/>\n    <snp-adverse-drug-reactions/>\n{proteins}  </drug>"
    )
    return head, tail

# --------------------------------------------------------------------------------------------------------
# Interactions
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pairs:
    """Generated pairs in (lower index, higher index) order; #Drug1 = ``first``."""

    first: np.ndarray
    second: np.ndarray
    template: np.ndarray  # index into TEMPLATES
    disagree_side: np.ndarray  # -1, or 0/1: the listing under the lower/higher index says the generic sentence
    linebreak: np.ndarray  # (m, 2) bool: the listing under the lower/higher index has a line break


def _plan_pairs(drugs: list[_Drug], fixture_mask: np.ndarray, n_target: float, gen: np.random.Generator) -> _Pairs:
    n = len(drugs)
    weights = np.array([d.weight for d in drugs], dtype=np.float64)
    members: dict[str, list[int]] = {}
    for i, drug in enumerate(drugs):
        for role in drug.roles:
            members.setdefault(role, []).append(i)

    def pool(roles: tuple[str, ...]) -> np.ndarray:
        sets = [np.asarray(members.get(r, ()), dtype=np.int64) for r in roles]
        out = sets[0]
        for other in sets[1:]:
            out = np.intersect1d(out, other)
        return out

    def draw(candidates: np.ndarray, k: int) -> np.ndarray:
        w = weights[candidates]
        return gen.choice(candidates, size=k, p=w / w.sum())

    rank = {t.id: r for r, t in enumerate(TEMPLATES, 1)}
    live = [(rule, pool(rule.perpetrator), pool(rule.victim)) for rule in RULES]
    live = [(rule, p, v) for rule, p, v in live if p.size and v.size]
    t_weight = {rule.template: rank[rule.template] ** -ZIPF_EXPONENT for rule, _, _ in live}
    total = sum(t_weight.values())
    t_candidates = Counter()
    for rule, p, v in live:
        t_candidates[rule.template] += p.size * v.size
    t_index = {t.id: k for k, t in enumerate(TEMPLATES)}
    firsts, seconds, templates = [], [], []
    for rule, p, v in live:
        candidates = p.size * v.size
        share = t_weight[rule.template] / total * candidates / t_candidates[rule.template]
        k = min(max(1, round(n_target * (1 - NOISE_SHARE) * share)), 3 * candidates) if n_target > 0 else 0
        a, b = draw(p, k), draw(v, k)
        if TEMPLATE_BY_ID[rule.template].symmetric:
            swap = gen.random(k) < 0.5
            a, b = np.where(swap, b, a), np.where(swap, a, b)
        firsts.append(a)
        seconds.append(b)
        templates.append(np.full(k, t_index[rule.template], dtype=np.int16))

    def dedupe(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = (a != b) & ~(fixture_mask[a] & fixture_mask[b])
        a, b, t = a[keep], b[keep], t[keep]
        _, first_seen = np.unique(np.minimum(a, b) * n + np.maximum(a, b), return_index=True)
        return a[first_seen], b[first_seen], t[first_seen]

    a, b, t = dedupe(np.concatenate(firsts), np.concatenate(seconds), np.concatenate(templates))
    k = round(len(a) * NOISE_SHARE / (1 - NOISE_SHARE))  # noise is a share of the realised pairs
    everyone = np.arange(n, dtype=np.int64)
    a, b, t = dedupe(np.concatenate([a, draw(everyone, k)]), np.concatenate([b, draw(everyone, k)]),
                     np.concatenate([t, np.full(k, t_index[NOISE_TEMPLATE], dtype=np.int16)]))
    a, b = a.astype(np.int32), b.astype(np.int32)
    m = len(a)
    disagree = (gen.random(m) < DISAGREE_SHARE) & (t != t_index[NOISE_TEMPLATE])
    side = np.where(disagree, gen.integers(0, 2, m), -1).astype(np.int8)
    return _Pairs(a, b, t, side, gen.random((m, 2)) < LINEBREAK_SHARE)


def _with_linebreak(text: str) -> str:
    """Break a description at its middle space with a newline and indentation, as some real exports do."""
    i = text.find(" ", len(text) // 2)
    return text if i < 0 else f"{text[:i]}\n          {text[i + 1:]}"


def _interaction_xml(partner_id: str, partner_xname: str, description: str) -> str:
    return (f"      <drug-interaction>\n        <drugbank-id>{partner_id}</drugbank-id>\n"
            f"        <name>{partner_xname}</name>\n        <description>{description}</description>\n"
            f"      </drug-interaction>\n")


def match_template(sentence: str, name_1: str, name_2: str) -> tuple[Template, str, str] | None:
    """The template ``sentence`` instantiates with these two drug names, and the names as #Drug1, #Drug2."""
    text = " ".join(sentence.split())
    for template in TEMPLATES:
        for d1, d2 in ((name_1, name_2), (name_2, name_1)):
            if template.text.replace("#Drug1", d1).replace("#Drug2", d2) == text:
                return template, d1, d2
    return None

# --------------------------------------------------------------------------------------------------------
# The release
# --------------------------------------------------------------------------------------------------------

TRUTH_SCHEMA = pa.schema([
    pa.field("drug_a", pa.string(), nullable=False),  # drug_a < drug_b
    pa.field("drug_b", pa.string(), nullable=False),
    pa.field("perpetrator", pa.string()),  # the drug named as #Drug1 of a directional template; null if symmetric
    pa.field("template_id", pa.string()),  # TEMPLATES id; null for a fixture sentence no template matches
    pa.field("family", pa.string()),
    pa.field("sentence", pa.string()),  # whitespace-normalised, names unescaped
    pa.field("listings_agree", pa.bool_()),
])


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
    fx = _load_fixture(Path(fixture)) if fixture is not None else None
    rng = random.Random(seed)
    drugs = _build_drugs(n_drugs, fx, rng, exported)
    if len(drugs) < 2:
        raise InputError(f"a release needs at least 2 drugs, got {len(drugs)} (n_drugs={n_drugs} plus the fixture)")
    pathways = _pathways(drugs, rng)
    fixture_mask = np.array([d.arch is None for d in drugs])
    pairs = _plan_pairs(drugs, fixture_mask, len(drugs) * interactions_per_drug / 2, np.random.default_rng(seed))
    xml_bytes = _write_xml(out, drugs, pairs, [_pathway_xml(p, drugs) for p in pathways], exported)
    fixture_pairs = _fixture_pairs(fx, drugs) if fx else []
    if truth_path is not None:
        _write_truth(Path(truth_path), drugs, pairs, fixture_pairs)
    counts = Counter({TEMPLATES[k].id: int(c) for k, c in enumerate(np.bincount(pairs.template,
                                                                                minlength=len(TEMPLATES))) if c})
    counts.update(row[3] or "unmatched" for row in fixture_pairs)
    families = Counter()
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


def _build_drugs(n_synthetic: int, fx: _Fixture | None, rng: random.Random, exported: dt.date) -> list[_Drug]:
    """Fixture and synthetic drugs in primary-id order; synthetic ids skip every id the fixture uses."""
    names = _Names(rng, set(fx.names) if fx else set())
    ids = _IdPool(fx.ids if fx else set())
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
        drug = _synthetic_drug(ids.take("DB"), case, base, arch, names, ids, rng, exported)
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


def _write_xml(out: Path, drugs: list[_Drug], pairs: _Pairs, pathway_xml: list[str], exported: dt.date) -> int:
    """Stream the records to ``out`` (zip or plain, atomically); returns the XML size in bytes."""
    n, m = len(drugs), len(pairs.first)
    lo, hi = np.minimum(pairs.first, pairs.second), np.maximum(pairs.first, pairs.second)
    owner = np.concatenate([lo, hi])
    partner = np.concatenate([hi, lo])
    pair = np.concatenate([np.arange(m, dtype=np.int32)] * 2)
    side = np.concatenate([np.zeros(m, np.int8), np.ones(m, np.int8)])
    order = np.lexsort((partner, owner))
    owner, partner, pair, side = owner[order], partner[order], pair[order], side[order]
    bounds = np.searchsorted(owner, np.arange(n + 1)).tolist()
    ids = [d.id for d in drugs]
    xnames = [_x(d.name) for d in drugs]
    texts = [t.text for t in TEMPLATES]
    noise = TEMPLATE_BY_ID[NOISE_TEMPLATE].text
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
            for j, f, g, t, alt, brk in zip(
                partner[s:e].tolist(), pairs.first[ps].tolist(), pairs.second[ps].tolist(),
                pairs.template[ps].tolist(), (pairs.disagree_side[ps] == sides).tolist(),
                pairs.linebreak[ps, sides].tolist(),
            ):
                text = (noise if alt else texts[t]).replace("#Drug1", xnames[f]).replace("#Drug2", xnames[g])
                listings.append(_interaction_xml(ids[j], xnames[j], _with_linebreak(text) if brk else text))
            head, tail = (drug.head, drug.tail) if drug.arch is None else _synthetic_parts(drug, pathway_xml)
            size += sink(f"  {head}{''.join(listings)}{tail}\n")
        size += sink("</drugbank>\n")
    return size


class _atomic_output:
    """Context manager giving a write(str) -> bytes function into a temp file that replaces ``out`` on success."""

    def __init__(self, out: Path, exported: dt.date):
        self.out, self.exported = out, exported
        self.tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        self._files: list[IO[bytes]] = []

    def __enter__(self) -> Any:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        raw = open(self.tmp, "wb")
        self._files.append(raw)
        target: IO[bytes] = raw
        if self.out.suffix == ".zip":
            zf = zipfile.ZipFile(raw, "w")
            info = zipfile.ZipInfo(ZIP_MEMBER, date_time=(self.exported.year, self.exported.month,
                                                          self.exported.day, 0, 0, 0))
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

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            for f in self._files:
                f.close()
        finally:
            if exc_type is None:
                os.replace(self.tmp, self.out)
            else:
                self.tmp.unlink(missing_ok=True)


def _fixture_pairs(fx: _Fixture, drugs: list[_Drug]) -> list[tuple[str, str, str | None, str | None, str | None,
                                                                   str, bool]]:
    """Truth rows of the fixture's own pairs: the sentence of the lower id's listing, matched to a template."""
    name = {d.id: d.name for d in drugs}
    listed: dict[tuple[str, str], dict[str, str]] = {}
    for owner, partner, description in fx.listings:
        listed.setdefault(tuple(sorted((owner, partner))), {})[owner] = " ".join(description.split())
    rows = []
    for (a, b), by_owner in sorted(listed.items()):
        sentence = by_owner.get(a, by_owner.get(b))
        match = match_template(sentence, name[a], name[b])
        template, perpetrator = (match[0], None if match[0].symmetric else
                                 (a if match[1] == name[a] else b)) if match else (None, None)
        rows.append((a, b, perpetrator, template.id if template else None, template.family if template else None,
                     sentence, len(set(by_owner.values())) == 1))
    return rows


def _write_truth(path: Path, drugs: list[_Drug], pairs: _Pairs, fixture_rows: list[tuple]) -> None:
    """One Parquet row per pair (TRUTH_SCHEMA), fixture pairs first, written in batches."""
    ids = [d.id for d in drugs]
    names = [d.name for d in drugs]

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, TRUTH_SCHEMA) as writer:
            if fixture_rows:
                writer.write_table(pa.Table.from_pylist(
                    [dict(zip(TRUTH_SCHEMA.names, row)) for row in fixture_rows], schema=TRUTH_SCHEMA))
            for rows in _truth_batches(ids, names, pairs):
                writer.write_table(pa.Table.from_pydict(rows, schema=TRUTH_SCHEMA))

    write_atomic(path, write)


def _truth_batches(ids: list[str], names: list[str], pairs: _Pairs, size: int = 200_000) -> Iterator[dict]:
    for s in range(0, len(pairs.first), size):
        rows: dict[str, list] = {k: [] for k in TRUTH_SCHEMA.names}
        for f, g, t, side in zip(pairs.first[s:s + size].tolist(), pairs.second[s:s + size].tolist(),
                                 pairs.template[s:s + size].tolist(), pairs.disagree_side[s:s + size].tolist()):
            template = TEMPLATES[t]
            rows["drug_a"].append(ids[min(f, g)])
            rows["drug_b"].append(ids[max(f, g)])
            rows["perpetrator"].append(None if template.symmetric else ids[f])
            rows["template_id"].append(template.id)
            rows["family"].append(template.family)
            rows["sentence"].append(template.text.replace("#Drug1", names[f]).replace("#Drug2", names[g]))
            rows["listings_agree"].append(side < 0)
        yield rows
