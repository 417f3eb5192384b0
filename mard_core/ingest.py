"""Streaming DrugBank full-database XML -> Parquet tables (drugs, interactions, drug_proteins, pathways).

One pass of an lxml pull parser fed in chunks, reporting only root and ``<drug>`` events (the C parser skips
the rest unseen) and keeping only depth-1 drugs as records (nested ``<drug>`` elements inside pathways are
references); each record is extracted with compiled XPath at its end and cleared, Parquet is written in record
batches, and after every chunk whatever the parser has finished with is freed, ``<drug>`` or not. Memory stays
bounded whatever the file holds: besides the batches, one record (``max_record_bytes``) or one chunk's worth
of other elements, and at most ``MISC_BYTES`` before the root or after it.
"""

from __future__ import annotations

import datetime as dt
import gc
import mmap
import resource
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import IO, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from lxml import etree

from mard_core.errors import InputError, MardError, readable_file
from mard_core.ingest_config import IngestConfig
from mard_core.stage import read_manifest
from schemas import INGEST_TABLES, PROTEIN_KINDS

PARSER_VERSION = "1"
NS = "http://www.drugbank.ca"
DRUG_TAG = f"{{{NS}}}drug"
ROOT_TAG = f"{{{NS}}}drugbank"
# No entity expansion, no network, no DTD: a DrugBank file never needs them.
SAFE_PARSE = {"resolve_entities": False, "no_network": True, "load_dtd": False, "dtd_validation": False}
CHUNK_BYTES = 1 << 16  # fed to the parser at a time; everything finished within a chunk is freed after it
MISC_BYTES = 1 << 20  # allowed before the root element and after its end (DrugBank: a declaration, a newline)
# Address space held back while parsing and released before the writers close: after a MemoryError under an
# address-space limit (ulimit -v), with the parse tree still alive, closing the files and reporting need room.
ERROR_RESERVE_BYTES = 32 << 20


def _zip_member(path: Path, zf: zipfile.ZipFile) -> zipfile.ZipInfo:
    members = [m for m in zf.infolist() if not m.is_dir()]
    for m in members:
        parts = Path(m.filename).parts
        if m.filename.startswith(("/", "\\")) or ".." in parts or ":" in m.filename:
            raise InputError(f"{path}: zip member {m.filename!r} has an unsafe path; refusing the archive")
    xml = [m for m in members if m.filename.lower().endswith(".xml")]
    if not xml:
        raise InputError(f"{path}: zip archive holds no .xml member (found: {[m.filename for m in members]})")
    if len(xml) > 1:
        raise InputError(
            f"{path}: zip archive holds several XML members {[m.filename for m in xml]}; expected one"
        )
    return xml[0]


@contextmanager
def open_source(
    path: Path, max_uncompressed_bytes: int | None = None
) -> Iterator[tuple[IO[bytes], str | None]]:
    """Open a DrugBank ``.xml`` or the ``.zip`` DrugBank ships (read inside the zip, nothing extracted).

    Yields the binary stream and the zip member name (None for a plain file). A zip member whose declared
    size exceeds ``max_uncompressed_bytes`` is refused (the caller also counts what it reads).
    """
    path = readable_file(Path(path))
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                member = _zip_member(path, zf)
                if max_uncompressed_bytes is not None and member.file_size > max_uncompressed_bytes:
                    raise _too_big(path, member.filename, max_uncompressed_bytes, f"{member.file_size:,}")
                with zf.open(member) as stream:
                    yield stream, member.filename
        except zipfile.BadZipFile as exc:
            raise InputError(f"{path}: damaged zip archive: {exc}") from None
    else:
        with open(path, "rb") as stream:
            yield stream, None


def _too_big(path: Path, member: str, limit: int, size: str) -> InputError:
    return InputError(
        f"{path}: zip member {member!r} is {size} bytes uncompressed, over the limit of {limit:,} "
        "(ingest.max_uncompressed_bytes); raise it if this is a genuine release"
    )


def _no_memory(exc: etree.XMLSyntaxError) -> bool:
    """Whether libxml2 failed for want of memory (reported as a syntax error, "unknown error" at line 0)."""
    return exc.code == etree.ErrorTypes.ERR_NO_MEMORY


def read_header(path: Path) -> dict[str, str]:
    """Check the root element (DrugBank namespace, no DOCTYPE) and return its version and exported-on.

    Reads no more than ``MISC_BYTES`` past the start, so a huge prologue cannot exhaust memory.
    """
    with open_source(path) as (stream, _):
        parser = etree.XMLPullParser(events=("start",), **SAFE_PARSE)
        events, first, offset = parser.read_events(), None, 0
        try:
            while (first := next(events, None)) is None and offset < MISC_BYTES:
                chunk = stream.read(1 << 15)
                if not chunk:
                    parser.close()  # raises: a document without a root element is not well-formed
                    break
                offset += len(chunk)
                parser.feed(chunk)
        except etree.XMLSyntaxError as exc:
            if _no_memory(exc):
                raise MemoryError from None
            raise InputError(f"{path}: not a well-formed XML document: {exc.msg}") from None
        if first is None:
            raise InputError(f"{path}: no XML root element in the first {MISC_BYTES:,} bytes")
        root = first[1]
        if root.getroottree().docinfo.doctype:
            raise InputError(
                f"{path}: has a DOCTYPE declaration; DrugBank files have none (refused for safety)"
            )
        if root.tag != ROOT_TAG:
            raise InputError(f"{path}: root element is {root.tag!r}, expected <drugbank> in namespace {NS}")
        return {"version": root.get("version", ""), "exported_on": root.get("exported-on", "")}


def _xp(expr: str) -> etree.XPath:
    return etree.XPath(expr, namespaces={"d": NS}, smart_strings=False)


X = {
    "primary": _xp("d:drugbank-id[@primary='true']/text()"),
    "secondary": _xp("d:drugbank-id[not(@primary='true')]/text()"),
    "groups": _xp("d:groups/d:group/text()"),
    "smiles": _xp("d:calculated-properties/d:property[d:kind='SMILES']/d:value/text()"),
    "inchikey": _xp("d:calculated-properties/d:property[d:kind='InChIKey']/d:value/text()"),
    "atc": _xp("d:atc-codes/d:atc-code/@code"),
    "categories": _xp("d:categories/d:category/d:category/text()"),
    "synonyms": _xp("d:synonyms/d:synonym/text()"),
    "salts": _xp("d:salts/d:salt/d:name/text()"),
    "ddi": _xp("d:drug-interactions/d:drug-interaction"),
    "ddi_id": _xp("d:drug-interactions/d:drug-interaction/d:drugbank-id/text()"),
    "ddi_name": _xp("d:drug-interactions/d:drug-interaction/d:name/text()"),
    "ddi_desc": _xp("d:drug-interactions/d:drug-interaction/d:description/text()"),
    "actions": _xp("d:actions/d:action/text()"),
    "pathways": _xp("d:pathways/d:pathway"),
    "pathway_drugs": _xp("d:drugs/d:drug/d:drugbank-id/text()"),
    "pathway_enzymes": _xp("d:enzymes/d:uniprot-id/text()"),
}
PROTEIN_XP = {kind: _xp(f"d:{kind}s/d:{kind}") for kind in PROTEIN_KINDS}


def _text(el: etree._Element, tag: str) -> str | None:
    """Stripped text of a direct child, None when absent or empty."""
    value = el.findtext(f"{{{NS}}}{tag}")
    if value is None:
        return None
    value = value.strip()
    return value or None


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


class _TableWriter:
    """Buffers columns and writes a Parquet record batch every ``batch_rows`` rows.

    Encoding and compression run on a background thread (pyarrow releases the GIL there), overlapping with
    parsing; one thread per table keeps batches in order.
    """

    def __init__(self, path: Path, schema: pa.Schema, batch_rows: int, compression: str):
        self.schema = schema
        self.batch_rows = batch_rows
        self.cols: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.writer = pq.ParquetWriter(path, schema, compression=compression)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"parquet-{path.stem}")
        self.pending: list[Future[None]] = []
        self.rows = 0

    def add(self, **row: Any) -> None:
        for name, col in self.cols.items():
            col.append(row.get(name))
        self._maybe_flush()

    def extend(self, n: int, **cols: list[Any] | Any) -> None:
        """Add ``n`` rows; a non-list value is repeated for every row."""
        for name, col in self.cols.items():
            value = cols.get(name)
            col.extend(value if isinstance(value, list) else [value] * n)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if len(next(iter(self.cols.values()))) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        n = len(next(iter(self.cols.values())))
        if n:
            batch = pa.RecordBatch.from_pydict(self.cols, schema=self.schema)
            if len(self.pending) >= 2:  # bound memory: at most two batches in flight
                self.pending.pop(0).result()
            self.pending.append(self.pool.submit(self.writer.write_batch, batch))
            self.rows += n
            self.cols = {name: [] for name in self.schema.names}

    def close(self) -> int:
        try:
            self.flush()
            for future in self.pending:
                future.result()
        finally:
            self.pool.shutdown()
            self.writer.close()
        return self.rows


def _interactions(drug: etree._Element) -> tuple[list[str], list[str | None], list[str | None]]:
    ids, names, descs = X["ddi_id"](drug), X["ddi_name"](drug), X["ddi_desc"](drug)
    if len(ids) == len(names) == len(descs):
        return ids, names, descs
    # Some element had an empty child: fall back to per-element extraction to keep rows aligned.
    elements = X["ddi"](drug)
    return (
        [_text(e, "drugbank-id") or "" for e in elements],
        [_text(e, "name") for e in elements],
        [_text(e, "description") for e in elements],
    )


def _proteins(drug_id: str, drug: etree._Element) -> Iterator[dict[str, Any]]:
    for kind, xp in PROTEIN_XP.items():
        for el in xp(drug):
            poly = el.find(f"{{{NS}}}polypeptide")
            position = el.get("position")
            yield {
                "drug_id": drug_id,
                "kind": kind,
                "be_id": _text(el, "id"),
                "name": _text(el, "name"),
                "organism": _text(el, "organism"),
                "actions": [a.strip() for a in X["actions"](el) if a.strip()],
                "known_action": _text(el, "known-action"),
                "position": int(position) if position else None,
                "uniprot_id": poly.get("id") if poly is not None else None,
                "gene_name": _text(poly, "gene-name") if poly is not None else None,
                "inhibition_strength": _text(el, "inhibition-strength"),
                "induction_strength": _text(el, "induction-strength"),
            }


def ingest(
    source: Path, out_dir: Path, cfg: IngestConfig = IngestConfig(), progress: Any = None
) -> dict[str, Any]:
    """Parse ``source`` into Parquet tables under ``out_dir`` and return the manifest fields.

    ``progress``, if given, is called with the number of source bytes read so far (for progress bars).
    Raises InputError (naming the file and, for malformed XML, the byte offset) on bad input, and MardError
    when memory runs out.
    """
    source = Path(source)
    try:
        return _ingest(source, out_dir, cfg, progress)
    except MemoryError:
        pass  # raised below, outside this handler: its traceback still holds the parse tree
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    raise MardError(
        f"{source}: ran out of memory while ingesting (peak RSS {rss_mb:,.0f} MB); "
        "free memory or raise this process's memory limit, then rerun"
    )


def _ingest(source: Path, out_dir: Path, cfg: IngestConfig, progress: Any) -> dict[str, Any]:
    header = read_header(source)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the parser creates millions of acyclic objects; cyclic GC passes would double the run time
    try:
        counts, member, seen_drugs = _parse(source, out_dir, cfg, progress)
    finally:
        if gc_was_enabled:
            gc.enable()
    if counts["drugs"] == 0:
        raise InputError(f"{source}: no <drug> records under the <drugbank> root")
    unknown = (
        pl.scan_parquet(out_dir / "interactions.parquet")
        .filter(~pl.col("partner_id").is_in(sorted(seen_drugs)))
        .group_by("partner_id")
        .len()
        .sort(["len", "partner_id"], descending=[True, False])
        .collect()
    )
    return {
        "drugbank_version": header["version"],
        "exported_on": header["exported_on"],
        "source": {"name": source.name, "member": member, "size": source.stat().st_size},
        "parser_version": PARSER_VERSION,
        "counts": counts,
        "unknown_partner_elements": int(unknown["len"].sum()),
        "unknown_partner_ids": unknown["partner_id"].head(20).to_list(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _parse(
    source: Path, out_dir: Path, cfg: IngestConfig, progress: Any
) -> tuple[dict[str, int], str | None, set[str]]:
    """The streaming pass: every top-level <drug> into the table writers; returns row counts."""
    writers = {
        name: _TableWriter(out_dir / f"{name}.parquet", schema, cfg.batch_rows, cfg.compression)
        for name, schema in INGEST_TABLES.items()
    }
    seen_drugs: set[str] = set()
    seen_pathways: set[str] = set()
    parser = etree.XMLPullParser(events=("start", "end"), tag=(ROOT_TAG, DRUG_TAG), **SAFE_PARSE)
    events = parser.read_events()
    root: etree._Element | None = None
    record: etree._Element | None = None  # the depth-1 <drug> being read
    offset = record_start = 0
    root_end: int | None = None
    limit = cfg.max_uncompressed_bytes
    with open_source(source, limit) as (stream, member):
        reserve = mmap.mmap(-1, ERROR_RESERVE_BYTES)  # never touched: address space, not memory
        try:
            for chunk in chain(iter(lambda: stream.read(CHUNK_BYTES), b""), [b""]):
                if chunk:
                    offset += len(chunk)
                    if member is not None and offset > limit:  # the declared size is checked, but not trusted
                        raise _too_big(source, member, limit, f"at least {offset:,}")
                    parser.feed(chunk)
                else:
                    parser.close()
                for event, elem in events:
                    if root is None:
                        root = elem  # the first event: the root's start (read_header checked it)
                    elif elem is root:
                        root_end = offset
                    elif elem.tag != DRUG_TAG or elem.getparent() is not root:
                        continue  # a nested <drug> reference (pathways) or <drugbank>; not a record
                    elif event == "start":
                        record, record_start = elem, offset
                    else:
                        _add_drug(source, elem, writers, seen_drugs, seen_pathways)
                        elem.clear(keep_tail=True)
                        record = None
                if root is not None:
                    _prune(root)
                if record is not None and offset - record_start > cfg.max_record_bytes:
                    raise InputError(
                        f"{source}: the <drug> record at line {record.sourceline} is over "
                        f"{cfg.max_record_bytes:,} bytes (ingest.max_record_bytes); raise it if it is genuine"
                    )
                if root_end is not None and offset - root_end > MISC_BYTES:
                    raise InputError(f"{source}: over {MISC_BYTES:,} bytes after the </drugbank> end")
                if progress is not None:
                    progress(offset)
        except etree.XMLSyntaxError as exc:
            if _no_memory(exc):
                raise MemoryError from None
            raise InputError(
                f"{source}: malformed or truncated XML near byte {offset:,} (line {exc.lineno}): {exc.msg}"
            ) from None
        finally:
            reserve.close()
            counts = {name: w.close() for name, w in writers.items()}
    return counts, member, seen_drugs


def _prune(root: etree._Element) -> None:
    """Free every element the parser has finished with, except the depth-1 <drug> it may still be in.

    On each level of the path the parser is on, all children but the last (which it may still be in) go; the
    path stops at a depth-1 <drug>: an open record is read whole at its end, a finished one was cleared.
    """
    node = root
    while len(node):
        del node[:-1]
        node = node[0]
        if node.tag == DRUG_TAG and node.getparent() is root:
            return


def _add_drug(
    source: Path,
    drug: etree._Element,
    writers: dict[str, _TableWriter],
    seen_drugs: set[str],
    seen_pathways: set[str],
) -> None:
    primary = X["primary"](drug)
    if len(primary) != 1:
        raise InputError(
            f"{source}: drug {_text(drug, 'name')!r} (line {drug.sourceline}) has {len(primary)} primary "
            "drugbank-id elements, expected 1"
        )
    drug_id = primary[0].strip()
    if drug_id in seen_drugs:
        raise InputError(f"{source}: duplicate primary drugbank-id {drug_id} (line {drug.sourceline})")
    seen_drugs.add(drug_id)
    smiles, inchikey = X["smiles"](drug), X["inchikey"](drug)
    writers["drugs"].add(
        drugbank_id=drug_id,
        secondary_ids=[s.strip() for s in X["secondary"](drug)],
        name=_text(drug, "name"),
        type=drug.get("type"),
        groups=X["groups"](drug),
        description=_text(drug, "description"),
        cas_number=_text(drug, "cas-number"),
        unii=_text(drug, "unii"),
        state=_text(drug, "state"),
        smiles=smiles[0] if smiles else None,
        inchikey=inchikey[0] if inchikey else None,
        atc_codes=X["atc"](drug),
        categories=X["categories"](drug),
        synonyms=X["synonyms"](drug),
        salt_names=X["salts"](drug),
        mechanism_of_action=_text(drug, "mechanism-of-action"),
        created=_date(drug.get("created")),
        updated=_date(drug.get("updated")),
    )
    ids, names, descs = _interactions(drug)
    if ids:
        writers["interactions"].extend(
            len(ids), drug_id=drug_id, partner_id=ids, partner_name=names, description=descs
        )
    for row in _proteins(drug_id, drug):
        writers["drug_proteins"].add(**row)
    for pathway in X["pathways"](drug):
        pid = _text(pathway, "smpdb-id")
        if pid and pid not in seen_pathways:
            seen_pathways.add(pid)
            writers["pathways"].add(
                pathway_id=pid,
                name=_text(pathway, "name"),
                category=_text(pathway, "category"),
                drug_ids=X["pathway_drugs"](pathway),
                enzyme_uniprot_ids=X["pathway_enzymes"](pathway),
            )


def previous_release(root: Path, current: Path) -> Path | None:
    """The ingest output of the latest release exported before ``current``'s release, if one was ingested."""
    manifest = read_manifest(current)
    if manifest is None:
        return None
    candidates = []
    for other in (root / "ingest").glob("*/manifest.json"):
        m = read_manifest(other.parent)
        if (
            m
            and m["source"].get("sha256") != manifest["source"].get("sha256")
            and m["exported_on"] < manifest["exported_on"]
        ):
            candidates.append((m["exported_on"], other.parent.name, other.parent))
    return max(candidates)[2] if candidates else None
