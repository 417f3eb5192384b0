"""Read mechanism labels from DrugBank interaction sentences, and label every unordered drug pair.

:func:`classify` matches a sentence against template families (not exact strings), maps its effect or
property phrase to a taxonomy subtype, and reads the direction from which drug fills which slot. The two
drug names are first replaced by placeholders so that each masked template is parsed once (a dict cache);
sentences the masked form cannot explain go through a slower path that resolves the drugs from each
captured slot by name, synonym or salt name.

:func:`label_pairs` applies it to the ingest tables: one row per unordered pair in canonical order
(smaller DrugBank id = drug_a), both listings merged, disagreements and unmatched sentences reported.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from mard_core.errors import InputError
from mard_core.labeling_config import LabelConfig
from mard_core.taxonomy import (
    A_TO_B,
    B_TO_A,
    BIDIRECTIONAL,
    DIRECTIONAL,
    SYMMETRIC,
    Label,
    Subtype,
    Taxonomy,
    load_taxonomy,
    mirror_direction,
)
from schemas import DDI_PAIRS

LABELER_VERSION = "1"  # bump when classification rules change, so the label stage re-runs


# Placeholders for the two drugs in masked sentences (Unicode private use: never in DrugBank text).
_PA, _PB = "\ue000", "\ue001"
_DISPLAY = {_PA: "{A}", _PB: "{B}"}

NO_TEMPLATE = "no template matched"
UNKNOWN_PHRASE = "phrase maps to no subtype"
NAMES_NOT_FOUND = "drug names not found in the sentence"
AMBIGUOUS_NAMES = "ambiguous drug names"
UNKNOWN_PARTNER = "unknown partner"
UNKNOWN_DRUG = "unknown drug"
SELF_INTERACTION = "self interaction"
EMPTY_DESCRIPTION = "empty description"

_POLARITY = {
    **dict.fromkeys(("increase", "increased", "enhance", "enhanced", "elevated", "rise"), "increase"),
    **dict.fromkeys(
        ("decrease", "decreased", "reduce", "reduced", "reduction", "lower", "lowered"), "decrease"
    ),
}
"""Polarity of each verb the templates accept."""
_PASSIVE = "increased|enhanced|elevated|decreased|reduced|lowered"
_ACTIVE = "increase|enhance|decrease|reduce|lower"
_COMBINED = r"is (?:combined|used in combination) with"
_TAIL = r"(?:,? (?:which could|which may|resulting in|and potentially) [^.]*)?"


@dataclass(frozen=True)
class Template:
    """A template family: slots x (the drug that acts) and y (the drug acted on; y2 repeats it), or s1/s2
    for symmetric sentences, plus the phrase slot (or a fixed phrase) and the polarity verb."""

    id: str
    pattern: re.Pattern[str]
    kind: str  # DIRECTIONAL | SYMMETRIC
    effect_only: bool  # the phrase is an effect: only PD families apply, rare ones fold into "Other"
    phrase: str | None = None


def _template(tid: str, body: str, kind: str, *, effect_only: bool, phrase: str | None = None) -> Template:
    return Template(tid, re.compile(rf"{body}\.?", re.IGNORECASE), kind, effect_only, phrase)


TEMPLATES: tuple[Template, ...] = (
    _template(
        "risk_severity",
        rf"the risk or severity of (?P<phrase>.+?) can be (?P<verb>{_PASSIVE}) "
        rf"when (?P<s1>.+?) {_COMBINED} (?P<s2>.+?)",
        SYMMETRIC,
        effect_only=True,
    ),
    _template(
        "risk_reaction",
        rf"the risk of (?:an? )?(?P<phrase>.+?) to (?P<y>.+?) is (?P<verb>{_PASSIVE}) "
        rf"when (?:it|(?P<y2>.+?)) {_COMBINED} (?P<x>.+?)",
        DIRECTIONAL,
        effect_only=True,
    ),
    _template(
        "diagnostic",
        r"(?P<x>.+?) may (?P<verb>decrease|reduce) (?:the )?effectiveness of (?P<y>.+?) "
        r"as a diagnostic agent",
        DIRECTIONAL,
        effect_only=True,
        phrase="diagnostic effectiveness",
    ),
    _template(
        "activities",
        rf"(?P<x>.+?) (?:may|can) (?P<verb>{_ACTIVE}) the (?P<phrase>.+?) "
        rf"activit(?:y|ies) of (?P<y>.+?)",
        DIRECTIONAL,
        effect_only=True,
    ),
    _template(
        "active_metabolites",
        rf"the (?P<phrase>(?:serum |plasma )?concentrations? of (?:the active metabolites?|.+?, an active "
        rf"metabolite)) of (?P<y>.+?),? can be (?P<verb>{_PASSIVE}) when (?:(?:it|(?P<y2>.+?)) is )?"
        rf"(?:combined|used in combination) with (?P<x>.+?){_TAIL}",
        DIRECTIONAL,
        effect_only=False,
    ),
    _template(
        "property_change",
        rf"the (?P<phrase>.+?) of (?P<y>.+?) can be (?P<verb>{_PASSIVE}) when "
        rf"(?:(?:it|(?P<y2>.+?)) is )?(?:combined|used in combination) with (?P<x>.+?){_TAIL}",
        DIRECTIONAL,
        effect_only=False,
    ),
    _template(
        "cause_change",
        r"(?P<x>.+?) can cause an? (?P<verb>increase|decrease|reduction|rise) in "
        rf"(?:the )?(?P<phrase>.+?) of (?P<y>.+?){_TAIL}",
        DIRECTIONAL,
        effect_only=False,
    ),
    _template(
        "may_change",
        rf"(?P<x>.+?) may (?P<verb>{_ACTIVE}) the (?P<phrase>.+?) of (?P<y>.+?){_TAIL}",
        DIRECTIONAL,
        effect_only=False,
    ),
)
"""Tried in order; the first that yields a label wins (specific families before the generic ones)."""


@dataclass(frozen=True)
class Classification:
    """The label read from one sentence for the ordered query (A, B), or why there is none."""

    matched: bool
    family: str | None = None
    subtype: str | None = None
    direction: str | None = None
    modality: str | None = None
    template: str | None = None
    phrase: str | None = None
    fallback: bool = False  # the phrase folded into its family's "Other" subtype
    masked: str = ""  # the sentence with the drugs' names as {A} / {B} (the normalised sentence if not found)
    reason: str | None = None

    @property
    def label(self) -> Label | None:
        """The label, or None when unmatched."""
        if not self.matched:
            return None
        return Label(self.family, self.subtype, self.direction, self.modality)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        """Plain fields plus ``label`` in slash form (None when unmatched)."""
        label = self.label
        return {**asdict(self), "label": str(label) if label else None}


def normalise(sentence: str) -> str:
    """Collapse runs of whitespace (newlines, indentation) to single spaces and trim."""
    return " ".join(sentence.split())


def _occurrences(hay: str, needle: str) -> Iterator[tuple[int, int]]:
    """Non-overlapping (start, end) of ``needle`` in ``hay`` that do not cut into a word."""
    if not needle:
        return
    n = len(needle)
    start = hay.find(needle)
    while start != -1:
        end = start + n
        if (start == 0 or not (hay[start - 1].isalnum() and needle[0].isalnum())) and (
            end == len(hay) or not (hay[end].isalnum() and needle[-1].isalnum())
        ):
            yield start, end
            start = hay.find(needle, end)
        else:
            start = hay.find(needle, start + 1)


def _mask(text: str, a: str, b: str) -> str | None:
    """``text`` with every occurrence of A's and B's name replaced by a placeholder, longest name first
    (so "Estradiol valerate" is not read as "Estradiol"); None when either name is absent."""
    if _PA in text or _PB in text:
        return None
    folded = text.casefold()
    base = text if len(folded) == len(text) else folded  # indices of folded must line up with base
    fa, fb = a.casefold(), b.casefold()
    (long_name, long_ph), (short_name, short_ph) = (
        ((fa, _PA), (fb, _PB)) if len(fa) >= len(fb) else ((fb, _PB), (fa, _PA))
    )
    spans = [(s, e, long_ph) for s, e in _occurrences(folded, long_name)]
    if not spans:
        return None
    shorter = [
        (s, e, short_ph)
        for s, e in _occurrences(folded, short_name)
        if not any(s < e2 and s2 < e for s2, e2, _ in spans)
    ]
    if not shorter:
        return None
    parts, pos = [], 0
    for start, end, placeholder in sorted(spans + shorter):
        parts += [base[pos:start], placeholder]
        pos = end
    parts.append(base[pos:])
    return "".join(parts)


def _display(masked: str) -> str:
    return masked.replace(_PA, _DISPLAY[_PA]).replace(_PB, _DISPLAY[_PB])


def _slot_score(slot: str, names: tuple[str, ...]) -> int:
    """How well a captured slot names a drug: exact primary > exact synonym > contains primary > contains
    synonym, then the longer name; 0 when none of ``names`` (casefolded, primary first) is in the slot."""
    slot = slot.casefold().strip()
    best = 0
    for i, name in enumerate(names):
        if slot == name:
            tier = 4 if i == 0 else 3
        elif next(_occurrences(slot, name), None) is not None:
            tier = 2 if i == 0 else 1
        else:
            continue
        best = max(best, tier * 10_000 + min(len(name), 9_999))
    return best


def _slots(tpl: Template, m: re.Match[str]) -> tuple[str, str, str | None]:
    """(first, second, repeat-of-second) drug slots: (x, y, y2) or (s1, s2, None)."""
    if tpl.kind == SYMMETRIC:
        return m["s1"], m["s2"], None
    return m["x"], m["y"], m.groupdict().get("y2")


def _placeholder_roles(tpl: Template, m: re.Match[str]) -> str | None:
    """Direction when each drug slot is exactly one placeholder (A and B once each); else None."""
    first, second, repeat = _slots(tpl, m)
    if {first, second} != {_PA, _PB} or repeat not in (None, second):
        return None
    if tpl.phrase is None and (_PA in m["phrase"] or _PB in m["phrase"]):
        return None
    if tpl.kind == SYMMETRIC:
        return BIDIRECTIONAL
    return A_TO_B if first == _PA else B_TO_A


class _RoleError(Exception):
    """Internal: a template matched but its drug slots could not be resolved."""


def _name_roles(a: tuple[str, ...], b: tuple[str, ...]) -> Callable[[Template, re.Match[str]], str | None]:
    """Resolve the drug slots by the names within them; raises _RoleError when neither or both fit."""

    def roles(tpl: Template, m: re.Match[str]) -> str | None:
        first, second, repeat = _slots(tpl, m)
        seconds = (second,) if repeat is None else (second, repeat)
        a_first = _slot_score(first, a) + sum(_slot_score(s, b) for s in seconds)
        b_first = _slot_score(first, b) + sum(_slot_score(s, a) for s in seconds)
        if a_first == b_first:
            raise _RoleError(NAMES_NOT_FOUND if a_first == 0 else AMBIGUOUS_NAMES)
        if tpl.kind == SYMMETRIC:
            return BIDIRECTIONAL
        return A_TO_B if a_first > b_first else B_TO_A

    return roles


class Classifier:
    """Sentence classifier bound to one taxonomy, with a cache of parsed masked templates."""

    def __init__(self, taxonomy: Taxonomy | None = None, cache_size: int = 1 << 16) -> None:
        self.taxonomy = taxonomy or load_taxonomy()
        self.cache_size = cache_size
        self._parse_masked = lru_cache(maxsize=cache_size)(self._parse_masked_uncached)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the cache (so a classifier can be shipped to worker processes)."""
        return {"taxonomy": self.taxonomy, "cache_size": self.cache_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["taxonomy"], state["cache_size"])  # type: ignore[misc]

    def classify(self, sentence: str, a_names: Sequence[str], b_names: Sequence[str]) -> Classification:
        """Label ``sentence`` for the ordered query (A, B); names are primary name first, then synonyms."""
        if not isinstance(sentence, str):
            raise InputError(f"classify: sentence must be a string, got {type(sentence).__name__}")
        return self.classify_names(sentence, _names(a_names, "a_names"), _names(b_names, "b_names"))

    def classify_names(self, sentence: str, a: tuple[str, ...], b: tuple[str, ...]) -> Classification:
        """:meth:`classify` for names already validated by the caller (non-empty tuples of stripped names)."""
        text = normalise(sentence)
        masked = _mask(text, a[0], b[0])
        if masked is not None:
            hit = self._parse_masked(masked)
            if hit is not None:
                return hit
        display = _display(masked) if masked is not None else text
        folded_a = tuple(n.casefold() for n in a)
        folded_b = tuple(n.casefold() for n in b)
        return self._first_match(text, _name_roles(folded_a, folded_b), display)

    def _parse_masked_uncached(self, masked: str) -> Classification | None:
        result = self._first_match(masked, _placeholder_roles, _display(masked))
        return result if result.matched else None

    def _first_match(
        self, text: str, roles: Callable[[Template, re.Match[str]], str | None], display: str
    ) -> Classification:
        reason: str | None = None
        phrase: str | None = None
        for tpl in TEMPLATES:
            m = tpl.pattern.fullmatch(text)
            if m is None:
                continue
            try:
                direction = roles(tpl, m)
            except _RoleError as exc:
                reason = reason or str(exc)
                continue
            if direction is None:
                continue
            tpl_phrase = (tpl.phrase or m["phrase"]).strip()
            polarity = _POLARITY[m["verb"].casefold()]
            sub = self.taxonomy.match_subtype(tpl_phrase, polarity, tpl.kind, pd_only=tpl.effect_only)
            if sub is None:
                reason, phrase = reason or UNKNOWN_PHRASE, phrase or tpl_phrase
                continue
            return self._matched(tpl, sub, polarity, direction, tpl_phrase, display)
        return Classification(False, phrase=phrase, masked=display, reason=reason or NO_TEMPLATE)

    def _matched(
        self, tpl: Template, sub: Subtype, polarity: str, direction: str, phrase: str, display: str
    ) -> Classification:
        modality = self.taxonomy.family(sub.family).modalities[polarity]
        return Classification(
            True, sub.family, sub.name, direction, modality, tpl.id, phrase.casefold(), sub.fallback, display
        )


def _names(value: Any, what: str) -> tuple[str, ...]:
    """A drug's names as a tuple (a bare string is one name); the first is the primary name."""
    names = (value,) if isinstance(value, str) else value
    if (
        not isinstance(names, Sequence)
        or not names
        or not all(isinstance(n, str) and n.strip() for n in names)
    ):
        raise InputError(f"{what}: expected a name or a non-empty list of names, got {value!r:.200}")
    return tuple(n.strip() for n in names)


@lru_cache(maxsize=1)
def default_classifier() -> Classifier:
    """The classifier for the default taxonomy (shared, so its cache is too)."""
    return Classifier()


def classify(sentence: str, a_names: Sequence[str], b_names: Sequence[str]) -> Classification:
    """Label ``sentence`` for the ordered query (A, B) with the default taxonomy."""
    return default_classifier().classify(sentence, a_names, b_names)


def classify_records(
    records: Iterable[dict[str, Any]], classifier: Classifier | None = None
) -> Iterator[dict[str, Any]]:
    """For each ``{"a", "b", "sentence"}`` record (a/b: a name or a list of names, primary first) yield the
    record plus the :class:`Classification` fields and ``label`` (slash form or None); in order."""
    clf = classifier or default_classifier()
    for i, record in enumerate(records, 1):
        if not isinstance(record, dict) or not {"a", "b", "sentence"} <= record.keys():
            raise InputError(
                f"record {i}: expected an object with keys 'a', 'b', 'sentence', got {record!r:.200}"
            )
        if not isinstance(record["sentence"], str):
            raise InputError(f"record {i}: 'sentence' must be a string, got {record['sentence']!r:.200}")
        a, b = _names(record["a"], f"record {i} 'a'"), _names(record["b"], f"record {i} 'b'")
        yield {**record, **clf.classify_names(record["sentence"], a, b).as_dict()}


# ----------------------------------------------------------------------------------------------- pairs

DRUG_COLUMNS = ("drugbank_id", "name", "synonyms", "salt_names")
INTERACTION_COLUMNS = ("drug_id", "partner_id", "partner_name", "description")
QUARANTINE_COLUMNS = {
    "drug_id": pl.String,
    "partner_id": pl.String,
    "description": pl.String,
    "reason": pl.String,
    "masked_template": pl.String,
}
DISAGREEMENT_COLUMNS = {
    "drug_a": pl.String,
    "drug_b": pl.String,
    "label": pl.String,
    "label_a_record": pl.String,
    "description_a_record": pl.String,
    "label_b_record": pl.String,
    "description_b_record": pl.String,
}
_LABEL_PARTS = ("family", "subtype", "direction", "modality")


@dataclass(frozen=True)
class LabelResult:
    """Output of :func:`label_pairs`.

    ddi_pairs: ``schemas.DDI_PAIRS`` columns, one row per unordered pair (drug_a < drug_b).
    quarantine: interaction elements that got no label, with the reason and masked template.
    disagreements: pairs whose two listings give different labels, with both labels and sentences.
    stats: counts (see :func:`label_pairs`).
    """

    ddi_pairs: pl.DataFrame
    quarantine: pl.DataFrame
    disagreements: pl.DataFrame
    stats: dict[str, Any]


def _require_columns(frame: pl.DataFrame, what: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what} table is missing column(s) {', '.join(missing)}")


def _drug_names(drugs: pl.DataFrame) -> dict[str, tuple[str, ...]]:
    """drugbank_id -> (name, *synonyms, *salt_names), de-duplicated, primary first."""
    out: dict[str, tuple[str, ...]] = {}
    for drug_id, name, synonyms, salts in drugs.select(DRUG_COLUMNS).iter_rows():
        names = [n.strip() for n in (name, *(synonyms or ()), *(salts or ())) if n and n.strip()]
        if drug_id in out:
            raise InputError(f"drugs table lists drugbank_id {drug_id} more than once")
        if not names:
            raise InputError(f"drugs table: {drug_id} has no name")
        out[drug_id] = tuple(dict.fromkeys(names))
    return out


class _Collector:
    """Accumulates per-element outcomes as column lists while :func:`label_pairs` streams the rows."""

    def __init__(self) -> None:
        self.labelled: dict[str, list[Any]] = {
            c: [] for c in ("row", "drug_a", "drug_b", "held_by_a", *_LABEL_PARTS)
        }
        self.quarantine: dict[str, list[Any]] = {c: [] for c in QUARANTINE_COLUMNS}
        self.unmatched_templates: Counter[str] = Counter()
        self.other_phrases: Counter[tuple[str, str, str]] = Counter()

    def reject(
        self, drug_id: str, partner_id: str, description: str | None, reason: str, masked: str | None = None
    ) -> None:
        for column, value in zip(
            QUARANTINE_COLUMNS, (drug_id, partner_id, description, reason, masked), strict=True
        ):
            self.quarantine[column].append(value)
        if masked is not None:
            self.unmatched_templates[masked] += 1

    def accept(self, row: int, drug_id: str, partner_id: str, c: Classification) -> None:
        held_by_a = drug_id < partner_id
        direction = c.direction if held_by_a else mirror_direction(c.direction)  # type: ignore[arg-type]
        values = (
            row,
            drug_id if held_by_a else partner_id,
            partner_id if held_by_a else drug_id,
            held_by_a,
            c.family,
            c.subtype,
            direction,
            c.modality,
        )
        for column, value in zip(self.labelled, values, strict=True):
            self.labelled[column].append(value)
        if c.fallback:
            self.other_phrases[(c.family, c.subtype, c.phrase)] += 1  # type: ignore[index]


def label_pairs(
    drugs: pl.DataFrame,
    interactions: pl.DataFrame,
    classifier: Classifier | None = None,
    *,
    chunk_rows: int = 100_000,
) -> LabelResult:
    """Label every unordered drug pair of the ingest tables (``schemas.DRUGS``, ``schemas.INTERACTIONS``).

    Each interaction element is classified with the record's drug as A and the partner as B, then turned
    to canonical order (smaller DrugBank id = drug_a; the label is mirrored when the record's drug is
    drug_b). Listings of the same pair are merged; when they disagree the pair takes the label of the
    listing held by drug_a's record (the first such listing in input order) and the pair is reported in
    ``disagreements``. Elements without a label go to ``quarantine``: unknown drug or partner, self
    interaction, empty description, or the classifier's reason. ``stats`` holds n_elements, n_labelled,
    n_quarantined, coverage (labelled share of all elements), n_pairs, n_disagreements,
    quarantine_reasons, unmatched_templates (masked template -> count), family_counts, subtype_counts,
    direction_counts (over pairs), other_phrases (phrases folded into "Other" subtypes -> count) and
    other_phrases_over_threshold (those reaching the taxonomy's min_share: candidates for own subtypes).
    """
    clf = classifier or default_classifier()
    _require_columns(drugs, "drugs", DRUG_COLUMNS)
    _require_columns(interactions, "interactions", INTERACTION_COLUMNS)
    names = _drug_names(drugs)
    interactions = interactions.select(pl.col(c).cast(pl.String) for c in INTERACTION_COLUMNS)
    out = _Collector()
    offset = 0
    for chunk in interactions.iter_slices(n_rows=chunk_rows):
        for row, (drug_id, partner_id, partner_name, description) in enumerate(chunk.iter_rows(), offset):
            if drug_id not in names:
                out.reject(drug_id, partner_id, description, UNKNOWN_DRUG)
            elif partner_id not in names:
                out.reject(drug_id, partner_id, description, UNKNOWN_PARTNER)
            elif drug_id == partner_id:
                out.reject(drug_id, partner_id, description, SELF_INTERACTION)
            elif not description or not description.strip():
                out.reject(drug_id, partner_id, description, EMPTY_DESCRIPTION)
            else:
                partner_names = names[partner_id]
                if partner_name and partner_name.strip() and partner_name.strip() not in partner_names:
                    partner_names = (*partner_names, partner_name.strip())
                c = clf.classify_names(description, names[drug_id], partner_names)
                if c.matched:
                    out.accept(row, drug_id, partner_id, c)
                else:
                    out.reject(drug_id, partner_id, description, c.reason or NO_TEMPLATE, c.masked)
        offset += chunk.height
    pairs, disagreements = _merge_listings(out.labelled, interactions["description"])
    quarantine = pl.DataFrame(out.quarantine, schema=QUARANTINE_COLUMNS)
    stats = _stats(clf.taxonomy, interactions.height, pairs, disagreements, quarantine, out)
    return LabelResult(pairs, quarantine, disagreements, stats)


def _merge_listings(
    labelled: dict[str, list[Any]], descriptions: pl.Series
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Collapse element labels to one row per pair (``DDI_PAIRS``) and list the disagreeing pairs."""
    schema = {
        "row": pl.Int64,
        "drug_a": pl.String,
        "drug_b": pl.String,
        "held_by_a": pl.Boolean,
        **dict.fromkeys(_LABEL_PARTS, pl.String),
    }
    elements = (
        pl.DataFrame(labelled, schema=schema)
        .with_columns(
            label=pl.concat_str(list(_LABEL_PARTS), separator="/"),
            description=descriptions.gather(pl.Series(labelled["row"], dtype=pl.Int64))
            .str.replace_all(r"\s+", " ")
            .str.strip_chars(),
        )
        .sort(["drug_a", "drug_b", "held_by_a", "row"], descending=[False, False, True, False])
    )
    keys = ["drug_a", "drug_b"]
    pairs = (
        elements.group_by(keys, maintain_order=True)
        .agg(
            pl.col("label", *_LABEL_PARTS, "description").first(),
            pl.col("held_by_a").n_unique().cast(pl.Int8).alias("n_listings"),
            (pl.col("label").n_unique() == 1).alias("listings_agree"),
        )
        .select(DDI_PAIRS.names)
    )
    split = pairs.filter(~pl.col("listings_agree")).select(*keys, "label")
    sides = (
        elements.join(split.select(keys), on=keys, how="semi")
        .group_by([*keys, "held_by_a"], maintain_order=True)
        .agg(pl.col("label", "description").first())
    )

    def side(held_by_a: bool, suffix: str) -> pl.DataFrame:
        return sides.filter(pl.col("held_by_a") == held_by_a).select(
            *keys,
            pl.col("label").alias(f"label_{suffix}"),
            pl.col("description").alias(f"description_{suffix}"),
        )

    disagreements = (
        split.join(side(True, "a_record"), on=keys, how="left")
        .join(side(False, "b_record"), on=keys, how="left")
        .select(list(DISAGREEMENT_COLUMNS))
        .cast(pl.Schema(DISAGREEMENT_COLUMNS))
    )
    return pairs, disagreements


def _counts(frame: pl.DataFrame, column: str | pl.Expr) -> dict[str, int]:
    counted = (
        frame.group_by(column).len().sort(["len", frame.select(column).columns[0]], descending=[True, False])
    )
    return dict(counted.iter_rows())


def _stats(
    taxonomy: Taxonomy,
    n_elements: int,
    pairs: pl.DataFrame,
    disagreements: pl.DataFrame,
    quarantine: pl.DataFrame,
    out: _Collector,
) -> dict[str, Any]:
    n_labelled = len(out.labelled["row"])
    other: dict[str, dict[str, int]] = {}
    for (family, subtype, phrase), n in out.other_phrases.most_common():
        other.setdefault(f"{family}/{subtype}", {})[phrase] = n
    min_count = taxonomy.other_min_share * n_elements
    return {
        "n_elements": n_elements,
        "n_labelled": n_labelled,
        "n_quarantined": quarantine.height,
        "coverage": n_labelled / n_elements if n_elements else 0.0,
        "n_pairs": pairs.height,
        "n_disagreements": disagreements.height,
        "quarantine_reasons": _counts(quarantine, "reason"),
        "unmatched_templates": dict(out.unmatched_templates.most_common()),
        "family_counts": _counts(pairs, "family"),
        "subtype_counts": _counts(
            pairs, pl.concat_str(["family", "subtype"], separator="/").alias("subtype")
        ),
        "direction_counts": _counts(pairs, "direction"),
        "other_phrases": other,
        "other_phrases_over_threshold": sorted(
            f"{key}: {phrase}"
            for key, phrases in other.items()
            for phrase, n in phrases.items()
            if n >= min_count
        ),
    }


def write_labels(ingest_dir: Path, cfg: LabelConfig, out: Path) -> dict[str, Any]:
    """The label stage's output in ``out``: labelled pairs, quarantine, disagreeing listings, statistics;
    returns the headline statistics for the manifest."""
    result = label_pairs(
        pl.read_parquet(ingest_dir / "drugs.parquet"),
        pl.read_parquet(ingest_dir / "interactions.parquet"),
        chunk_rows=cfg.chunk_rows,
    )
    ddi_pairs = pl.from_arrow(result.ddi_pairs.to_arrow().cast(DDI_PAIRS))
    assert isinstance(ddi_pairs, pl.DataFrame)  # a Table converts to a DataFrame
    ddi_pairs.write_parquet(out / "ddi_pairs.parquet")
    result.quarantine.write_parquet(out / "quarantine.parquet")
    result.disagreements.write_parquet(out / "disagreements.parquet")
    (out / "stats.json").write_text(json.dumps(result.stats, indent=2, sort_keys=True, default=str))
    keys = ("n_elements", "n_labelled", "n_quarantined", "coverage", "n_pairs", "n_disagreements")
    return {"stats": {k: result.stats[k] for k in keys}}
