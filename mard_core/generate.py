"""Teacher trajectory generation at scale: stratified pair sampling, sharded Ray tasks, resumable Parquet
output.

The work for one part of one split is cut into shards of ``shard_size`` pairs; each (teacher, shard) is one
task (a Ray task, or an in-process call with ``executor="local"``) that loads its teacher once, generates, and
writes ``out_dir/shards/<part>/<teacher>/<shard:05d>.parquet`` (schema ``schemas.TRAJECTORIES``) through a
temporary file and ``os.replace``. Each shard file records a hash of its work (teacher spec, prompts, gold
labels, seed): a re-run skips shards whose file holds the same hash and redoes the others, so a crash at any
point loses at most the shards in flight and never leaves a half-written file. Failed tasks are retried
``max_retries`` times, then reported. Each directory has one purpose, recorded in ``purpose.json``: a
``train`` directory only takes the train part, an ``eval`` directory only valid/test, so evaluation
trajectories cannot reach training data.

Teachers: model backends through ``mard_core.teachers.make_backend`` (hf, vllm, openai; vLLM runs as a server
in its own venv, the task just holds the backend object) and the knowledge-grounded teacher
(``{"backend": "knowledge"}``), which explains the gold label on the train part and infers it elsewhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mard_core.errors import InputError, MardError, read_yaml
from mard_core.generate_config import GenerateConfig, TeachersConfig, TeacherSpec
from mard_core.metrics.labels import present_in_random_order
from mard_core.prompts import TEMPLATE_VERSION, DrugRef, parse_completion, prompt_hash, render_prompt
from mard_core.retrieval import Evidence, RetrievalIndex
from mard_core.splits import PARTS, canonical_pairs
from mard_core.stage import write_atomic, write_json_atomic
from mard_core.teachers.base import fill_placeholders, make_backend
from mard_core.teachers.knowledge import KNOWLEDGE_VERSION, KnowledgeTeacher
from mard_core.validation import parse_config
from schemas import TRAJECTORIES

PURPOSE_PARTS: dict[str, tuple[str, ...]] = {"train": ("train",), "eval": ("valid", "test")}
PURPOSE_FILE = "purpose.json"
MANIFEST = "manifest.json"
GENERATE_VERSION = (
    "2"  # bump when sampling, trajectory rows or the stage layout change (2: teachers.yaml kept)
)
STRATUM = ("family", "subtype", "direction")
_HASH_KEY = b"mard.work_hash"
_SECONDS_KEY = b"mard.generation_s"  # how long the shard took to generate, for throughput over reused shards
_SHARD_FILE = re.compile(r"(\d{5})\.parquet")
_MAX_ERROR_CHARS = 500
TEACHERS_FILE = "teachers.yaml"  # the teachers file a teachers stage ran, kept in its output (PRM rollouts)


# --- configuration files ------------------------------------------------------------------------------------


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    src = Path(path)
    data = read_yaml(src, "teachers file")
    if not isinstance(data, dict):
        raise InputError(f"{src}: expected a mapping with a 'teachers' list")
    return data


def load_generate_config(
    path: str | os.PathLike[str], placeholders: Mapping[str, str] | None = None
) -> GenerateConfig:
    """``GenerateConfig`` from a teachers YAML file: its ``teachers:`` list and optional ``generate:`` knobs;
    ``{name}`` placeholders in the teachers' strings come from ``placeholders``."""
    data = _read_yaml(path)
    entries = data.get("teachers")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: 'teachers' must be a non-empty list")
    section = data.get("generate") or {}
    if not isinstance(section, dict) or "teachers" in section:
        raise InputError(f"{path}: 'generate' must be a mapping of GenerateConfig knobs (without 'teachers')")
    teachers = fill_placeholders(entries, placeholders or {}, f"{path}: teachers")
    return parse_config(GenerateConfig, {**section, "teachers": teachers}, str(path))


def load_teachers(
    path: str | os.PathLike[str], placeholders: Mapping[str, str] | None = None
) -> tuple[TeacherSpec, ...]:
    """The ``teachers:`` list of a teachers YAML file (see :func:`load_generate_config`)."""
    return load_generate_config(path, placeholders).teachers


# --- pair sampling ------------------------------------------------------------------------------------------


def train_pair_counts(train: pl.DataFrame) -> dict[str, int]:
    """How many training pairs each drug appears in."""
    counts = pl.concat(
        [train.select(pl.col("drug_a").alias("drug")), train.select(pl.col("drug_b").alias("drug"))]
    )
    return dict(counts.group_by("drug").len().iter_rows())


def sample_pairs(
    train: pl.DataFrame, cfg: GenerateConfig, train_counts: Mapping[str, int] | None = None
) -> pl.DataFrame:
    """A seeded sample of training pairs: ``per_stratum`` per (family, subtype, direction), a guaranteed share
    of rare pairs, at most ``max_pairs``, each presented in a seeded random A/B order.

    Rows: the split columns plus ``query_a``, ``query_b``, ``gold`` (label in query orientation), ``swapped``,
    ``rarer_count`` (training pairs of the rarer drug) and ``rare``. The result depends only on the set of
    pairs, the counts and the config, not on row order. When the cap binds, strata keep their first pairs in
    round-robin order (every stratum's first pair before any second one).
    """
    df, _ = canonical_pairs(train, "train pairs")
    if df.height == 0:
        raise InputError("sample_pairs: the train part has no pairs")
    counts = train_pair_counts(df) if train_counts is None else train_counts
    rarer = [min(counts.get(a, 0), counts.get(b, 0)) for a, b in zip(df["drug_a"], df["drug_b"], strict=True)]
    shuffle = np.random.default_rng(cfg.seed).permutation(df.height)
    df = df.with_columns(pl.Series("_shuffle", shuffle), pl.Series("rarer_count", rarer, dtype=pl.Int64))
    df = df.with_columns(
        (pl.col("rarer_count") <= cfg.rare_max_count).alias("rare"),
        (pl.col("_shuffle").rank("ordinal").over(STRATUM) - 1).alias("_rank"),
    )
    by_priority = ["_rank", "_shuffle"]
    quota = min(cfg.max_pairs, math.ceil(cfg.rare_share * cfg.max_pairs)) if cfg.include_rare else 0
    rare = df.filter(pl.col("rare")).sort(by_priority).head(quota)
    rest = (
        df.filter(pl.col("_rank") < cfg.per_stratum)
        .join(rare.select("drug_a", "drug_b"), on=["drug_a", "drug_b"], how="anti")
        .sort(by_priority)
        .head(cfg.max_pairs - rare.height)
    )
    sample = pl.concat([rare, rest]).sort("drug_a", "drug_b").drop("_shuffle", "_rank")
    return present_in_random_order(sample, cfg.seed)


# --- work items and shards ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkItem:
    """One ordered query with its prompt: what every teacher sees (the gold label only reaches the knowledge
    teacher, and only on the train part)."""

    a: DrugRef
    b: DrugRef
    a_names: tuple[str, ...]
    b_names: tuple[str, ...]
    gold: str
    evidence: tuple[Evidence, ...]
    prompt: str

    @property
    def evidence_ids(self) -> list[str]:
        return [e.id for e in self.evidence]


@dataclass(frozen=True)
class ShardJob:
    """One (teacher, shard) task."""

    teacher: TeacherSpec
    shard: int
    path: Path
    items: tuple[WorkItem, ...]
    part: str
    split: str
    seed: int
    work_hash: str


@dataclass(frozen=True)
class ShardResult:
    teacher: str
    shard: int
    rows: int


def drug_names(drugs: pl.DataFrame) -> dict[str, tuple[str, ...]]:
    """Drug id -> (name, *synonyms) of a drugs table."""
    synonyms = drugs["synonyms"].to_list() if "synonyms" in drugs.columns else [None] * drugs.height
    return {d: (n, *(s or [])) for d, n, s in zip(drugs["drugbank_id"], drugs["name"], synonyms, strict=True)}


def build_items(pairs: pl.DataFrame, index: RetrievalIndex, drugs: pl.DataFrame) -> list[WorkItem]:
    """Prompts for the ordered queries (``query_a``, ``query_b``, ``gold``) of ``pairs``, in row order."""
    missing = [c for c in ("query_a", "query_b", "gold") if c not in pairs.columns]
    if missing:
        raise InputError(
            f"generation pairs: missing columns {missing} (present pairs with sample_pairs or "
            "metrics.present_in_random_order)"
        )
    if "drugbank_id" not in drugs.columns or "name" not in drugs.columns:
        raise InputError(f"drugs table: needs drugbank_id and name columns, has {drugs.columns}")
    names = drug_names(drugs)
    items = []
    for qa, qb, gold in pairs.select("query_a", "query_b", "gold").iter_rows():
        unknown = [d for d in (qa, qb) if d not in names]
        if unknown:
            raise InputError(f"generation pairs: drug {unknown[0]!r} is not in the drugs table")
        a, b = DrugRef(qa, names[qa][0]), DrugRef(qb, names[qb][0])
        evidence = tuple(index.retrieve(qa, qb))
        prompt = render_prompt(a, b, evidence)
        items.append(WorkItem(a, b, names[qa], names[qb], gold, evidence, prompt))
    return items


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _shard_seed(seed: int, teacher: str, shard: int) -> int:
    return int(_digest([seed, teacher, shard])[:8], 16)


def _work_hash(teacher: TeacherSpec, items: Sequence[WorkItem], part: str, split: str, seed: int) -> str:
    return _digest(
        {
            "teacher": asdict(teacher),
            "template": TEMPLATE_VERSION,
            "part": part,
            "split": split,
            "seed": seed,
            "knowledge": KNOWLEDGE_VERSION if teacher.is_knowledge else None,
            "items": [(i.a.drugbank_id, i.b.drugbank_id, i.gold, prompt_hash(i.prompt)) for i in items],
        }
    )


def shard_complete(path: Path, work_hash: str) -> bool:
    """True when ``path`` is a finished shard of exactly this work."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return False
    return meta.get(_HASH_KEY) == work_hash.encode()


def _row(
    job: ShardJob,
    item: WorkItem,
    sample: int,
    text: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    latency: float,
) -> dict[str, Any]:
    parsed = parse_completion(text, item.a_names, item.b_names, item.evidence_ids)
    answer = parsed.answer.label if parsed.answer else None
    return {
        "drug_a": item.a.drugbank_id,
        "drug_b": item.b.drugbank_id,
        "split": job.split,
        "part": job.part,
        "teacher": job.teacher.name,
        "sample": sample,
        "prompt_hash": prompt_hash(item.prompt),
        "prompt": item.prompt,
        "evidence_ids": item.evidence_ids,
        "text": text,
        "steps": [{"index": s.index, "text": s.text, "citations": s.citations} for s in parsed.steps],
        "answer": answer,
        "confidence": parsed.answer.confidence if parsed.answer else None,
        "gold": item.gold,
        "correct": answer == item.gold,
        "parse_errors": parsed.errors,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "latency_s": latency,
    }


def _knowledge_rows(job: ShardJob) -> list[dict[str, Any]]:
    """Gold chains on the train part (when the config allows), rule-inferred chains elsewhere; no tokenizer,
    so token counts are null."""
    cfg = job.teacher.knowledge_config()
    teacher = KnowledgeTeacher(cfg)
    rows = []
    for item in job.items:
        start = time.perf_counter()
        gold = item.gold if cfg.use_gold and job.part == "train" else None
        text = teacher.write(item.a, item.b, item.evidence, gold)
        rows.append(_row(job, item, 0, text, None, None, time.perf_counter() - start))
    return rows


def _model_rows(job: ShardJob) -> list[dict[str, Any]]:
    """All prompts of the shard in one ``generate`` call on a backend loaded once for the task."""
    with make_backend(job.teacher.backend) as backend:
        outputs = backend.generate([i.prompt for i in job.items], job.teacher.params(job.seed))
    return [
        _row(job, item, k, c.text, c.prompt_tokens, c.completion_tokens, c.latency_s)
        for item, completions in zip(job.items, outputs, strict=True)
        for k, c in enumerate(completions)
    ]


def write_shard(path: Path, rows: Sequence[Mapping[str, Any]], work_hash: str, seconds: float) -> None:
    """Write rows (schema ``TRAJECTORIES``) through a temporary file; the work hash and the generation time go
    into the metadata."""
    meta = {_HASH_KEY: work_hash.encode(), _SECONDS_KEY: f"{seconds:.6f}".encode()}
    table = pa.Table.from_pylist(list(rows), schema=TRAJECTORIES.with_metadata(meta))
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def shard_timing(path: Path) -> tuple[int, float | None]:
    """Rows of a finished shard and the seconds its generation took (None if not recorded)."""
    meta = pq.read_metadata(path)
    seconds = (meta.metadata or {}).get(_SECONDS_KEY)
    return meta.num_rows, float(seconds) if seconds else None


def run_shard(job: ShardJob) -> ShardResult:
    """Generate one shard and write it; the unit a Ray task (or the local executor) runs."""
    start = time.perf_counter()
    rows = _knowledge_rows(job) if job.teacher.is_knowledge else _model_rows(job)
    seconds = time.perf_counter() - start
    write_shard(job.path, rows, job.work_hash, seconds)
    return ShardResult(job.teacher.name, job.shard, len(rows))


# --- executors ----------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    results: list[ShardResult] = field(default_factory=list)
    failures: dict[tuple[str, int], str] = field(default_factory=dict)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]


def _run_local(jobs: Sequence[ShardJob], cfg: GenerateConfig) -> _Outcome:
    outcome = _Outcome()
    for job in jobs:
        for attempt in range(cfg.max_retries + 1):
            try:
                outcome.results.append(run_shard(job))
                break
            except Exception as exc:  # noqa: BLE001 - any task failure is retried, then reported
                if attempt == cfg.max_retries:
                    outcome.failures[(job.teacher.name, job.shard)] = _error_text(exc)
    return outcome


def _run_ray(jobs: Sequence[ShardJob], cfg: GenerateConfig) -> _Outcome:
    import ray

    started = not ray.is_initialized()
    if started:
        if os.environ.get("RAY_ADDRESS"):  # a cluster (production): its resources are the cluster's
            ray.init(log_to_driver=False, configure_logging=False)
        else:
            ray.init(
                num_cpus=cfg.ray_num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    remote = ray.remote(max_retries=0)(run_shard)

    def submit(job: ShardJob) -> Any:
        return remote.options(num_cpus=1, num_gpus=job.teacher.gpus(cfg.num_gpus_per_teacher)).remote(job)

    outcome = _Outcome()
    try:
        pending = {submit(job): (job, 0) for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job, attempt = pending.pop(done[0])
            try:
                outcome.results.append(ray.get(done[0]))
            except Exception as exc:  # noqa: BLE001 - a failed task is retried, then reported
                if attempt < cfg.max_retries:
                    pending[submit(job)] = (job, attempt + 1)
                else:
                    outcome.failures[(job.teacher.name, job.shard)] = _error_text(exc)
    finally:
        if started:
            ray.shutdown()
    return outcome


# --- the driver ---------------------------------------------------------------------------------------------


def check_purpose(out_dir: Path, purpose: str, part: str) -> None:
    """Refuse a part the directory's purpose does not allow, or a directory kept for another purpose."""
    if purpose not in PURPOSE_PARTS:
        raise InputError(f"generation purpose {purpose!r} is not one of {list(PURPOSE_PARTS)}")
    if part not in PARTS:
        raise InputError(f"generation part {part!r} is not one of {list(PARTS)}")
    if part not in PURPOSE_PARTS[purpose]:
        raise InputError(
            f"{out_dir}: a {purpose!r} directory takes only the parts {list(PURPOSE_PARTS[purpose])}; "
            f"refusing to write {part!r} trajectories there (evaluation pairs never enter training)"
        )
    marker = out_dir / PURPOSE_FILE
    if marker.exists():
        recorded = json.loads(marker.read_text()).get("purpose")
        if recorded != purpose:
            raise InputError(
                f"{out_dir}: directory is kept for purpose {recorded!r} ({marker}), not {purpose!r}"
            )
    else:
        write_json_atomic(marker, {"purpose": purpose})


def _plan(
    teacher: TeacherSpec, items: Sequence[WorkItem], root: Path, cfg: GenerateConfig, part: str, split: str
) -> list[ShardJob]:
    """The teacher's shard jobs; clears leftover temporary files and shards beyond the current count."""
    folder = root / teacher.name
    folder.mkdir(parents=True, exist_ok=True)
    n_shards = math.ceil(len(items) / cfg.shard_size)
    for stale in folder.iterdir():
        m = _SHARD_FILE.fullmatch(stale.name)
        if stale.name.endswith(".tmp") or (m and int(m.group(1)) >= n_shards):
            stale.unlink()
    jobs = []
    for shard in range(n_shards):
        chunk = tuple(items[shard * cfg.shard_size : (shard + 1) * cfg.shard_size])
        seed = _shard_seed(cfg.seed, teacher.name, shard)
        work = _work_hash(teacher, chunk, part, split, seed)
        jobs.append(ShardJob(teacher, shard, folder / f"{shard:05d}.parquet", chunk, part, split, seed, work))
    return jobs


def _mean(column: pl.Series) -> float:
    """The mean of a boolean or numeric column with values (polars types ``Series.mean`` for any dtype)."""
    value = column.mean()
    assert isinstance(value, float)
    return value


def _empty_trajectories() -> pl.DataFrame:
    frame = pl.from_arrow(TRAJECTORIES.empty_table())
    assert isinstance(frame, pl.DataFrame)  # a Table converts to a DataFrame (polars types it as either)
    return frame


def _teacher_stats(
    jobs: Sequence[ShardJob], outcome: _Outcome, skipped: set[tuple[str, int]]
) -> dict[str, Any]:
    name = jobs[0].teacher.name
    failed = [
        {"shard": j.shard, "error": outcome.failures[(name, j.shard)]}
        for j in jobs
        if (name, j.shard) in outcome.failures
    ]
    done = [j.path for j in jobs if (name, j.shard) not in outcome.failures]
    cols = ["correct", "parse_errors", "prompt_tokens", "completion_tokens"]
    table = pl.read_parquet(done, columns=cols) if done else _empty_trajectories().select(cols)
    timed = [(rows, seconds) for rows, seconds in map(shard_timing, done) if seconds is not None]
    task_s = sum(seconds for _, seconds in timed)
    n = table.height
    return {
        "trajectories": n,
        "new_trajectories": sum(r.rows for r in outcome.results if r.teacher == name),
        "shards": len(jobs),
        "skipped_shards": sum((name, j.shard) in skipped for j in jobs),
        "failed_shards": failed,
        "task_s": round(task_s, 3),
        "trajectories_per_s": round(sum(rows for rows, _ in timed) / task_s, 2) if task_s > 0 else None,
        "prompt_tokens": int(table["prompt_tokens"].sum()) if n else 0,
        "completion_tokens": int(table["completion_tokens"].sum()) if n else 0,
        "accuracy": round(_mean(table["correct"]), 4) if n else None,
        "parse_error_rate": round(_mean(table["parse_errors"].list.len() > 0), 4) if n else None,
        "shard_files": [p.name for p in done],
    }


def generate_shards(
    out_dir: str | os.PathLike[str],
    pairs: pl.DataFrame,
    index_dir: str | os.PathLike[str],
    drugs: pl.DataFrame,
    teachers: Sequence[TeacherSpec],
    cfg: GenerateConfig,
    part: str = "train",
    split: str = "cold_drug",
    purpose: str = "train",
) -> dict[str, Any]:
    """Generate (or resume) every teacher's shards for the ordered queries of ``pairs`` and return per-teacher
    stats (trajectories, generation throughput over every shard, reused ones included, token totals, accuracy
    vs gold, parse-error rate, failed shards).

    Output: ``out_dir/shards/<part>/<teacher>/<shard:05d>.parquet`` plus ``manifest.json``."""
    out = Path(out_dir)
    if pairs.height == 0:
        raise InputError(f"generate_shards: no {part} pairs to generate for")
    names = [t.name for t in teachers]
    if not names or len(set(names)) != len(names):
        raise InputError(f"generate_shards: teachers must be given once each, got {names}")
    check_purpose(out, purpose, part)
    start = time.perf_counter()
    items = build_items(pairs, RetrievalIndex.load(index_dir), drugs)
    root = out / "shards" / part
    plans = {t.name: _plan(t, items, root, cfg, part, split) for t in teachers}
    skipped = {
        (j.teacher.name, j.shard)
        for jobs in plans.values()
        for j in jobs
        if shard_complete(j.path, j.work_hash)
    }
    todo = [j for jobs in plans.values() for j in jobs if (j.teacher.name, j.shard) not in skipped]
    outcome = (_run_ray if cfg.executor == "ray" else _run_local)(todo, cfg) if todo else _Outcome()
    stats = {name: _teacher_stats(jobs, outcome, skipped) for name, jobs in plans.items()}
    report = {
        "out_dir": str(out),
        "part": part,
        "split": split,
        "purpose": purpose,
        "pairs": len(items),
        "shard_size": cfg.shard_size,
        "executor": cfg.executor,
        "wall_s": round(time.perf_counter() - start, 3),
        "teachers": stats,
    }
    manifest_path = root / MANIFEST
    earlier = json.loads(manifest_path.read_text())["teachers"] if manifest_path.is_file() else {}
    write_json_atomic(
        manifest_path, {**report, "teachers": {**earlier, **stats}}
    )  # teachers of other calls stay listed
    return report


def read_trajectories(out_dir: str | os.PathLike[str], part: str = "train") -> pl.DataFrame:
    """The complete shards of one part (every teacher its manifest lists) as one frame; rows of another part
    are refused."""
    root = Path(out_dir) / "shards" / part
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise InputError(f"{root}: no {MANIFEST}; run generate_shards for part {part!r} first")
    manifest = json.loads(manifest_path.read_text())
    files = [root / name / f for name, stats in manifest["teachers"].items() for f in stats["shard_files"]]
    if not files:
        return _empty_trajectories()
    df = pl.read_parquet(files)
    wrong = df.filter(pl.col("part") != part)
    if wrong.height:
        raise InputError(f"{root}: {wrong.height} rows belong to part {wrong['part'][0]!r}, not {part!r}")
    return df


def corpus_texts(
    train: pl.DataFrame, index: RetrievalIndex, drugs: pl.DataFrame, n_pairs: int, seed: int
) -> list[str]:
    """Prompts and gold completions of a seeded sample of training pairs: the text a demo tokenizer is trained
    on, so that prompts, chains and answers tokenize compactly."""
    cfg = GenerateConfig(max_pairs=n_pairs, per_stratum=max(1, n_pairs), seed=seed)
    items = build_items(sample_pairs(train, cfg), index, drugs)
    teacher = KnowledgeTeacher()
    texts = []
    for item in items:
        texts += [item.prompt, teacher.write(item.a, item.b, list(item.evidence), item.gold)]
    return texts


def write_trajectories(
    ingest_dir: Path, splits_dir: Path, index_dir: Path, models_dir: Path, cfg: TeachersConfig, work: Path
) -> dict[str, Any]:
    """The teachers stage's output in ``work``: the teachers file that ran, the seeded train and valid samples
    and every teacher's trajectory shards (finished shards are kept and reused); returns per-teacher stats."""
    gen = load_generate_config(cfg.path, {"models": str(models_dir)})
    shutil.copyfile(cfg.path, work / TEACHERS_FILE)  # what ran, for the PRM stage's rollouts
    drugs = pl.read_parquet(ingest_dir / "drugs.parquet")
    train = pl.read_parquet(splits_dir / cfg.split / "train.parquet")
    counts = train_pair_counts(train)
    samples = {
        "train": sample_pairs(train, gen, counts),
        "valid": sample_pairs(
            pl.read_parquet(splits_dir / cfg.split / "valid.parquet"),
            dataclasses.replace(gen, max_pairs=cfg.valid_pairs),
            counts,
        ),
    }
    reports = {}
    for part, purpose in (("train", "train"), ("valid", "eval")):
        samples[part].write_parquet(work / f"{part}_sample.parquet")  # the seeded sample, recorded
        reports[part] = generate_shards(
            work / purpose,
            samples[part],
            index_dir / cfg.split,
            drugs,
            gen.teachers,
            gen,
            part=part,
            split=cfg.split,
            purpose=purpose,
        )
    failed = {
        f"{part}/{t}": s["failed_shards"]
        for part, r in reports.items()
        for t, s in r["teachers"].items()
        if s["failed_shards"]
    }
    if failed:
        raise MardError(
            f"teacher shards failed after retries (finished shards are kept; re-run to resume): {failed}"
        )
    stats = {
        part: {
            t: {
                k: s[k]
                for k in (
                    "trajectories",
                    "trajectories_per_s",
                    "prompt_tokens",
                    "completion_tokens",
                    "accuracy",
                    "parse_error_rate",
                )
            }
            for t, s in r["teachers"].items()
        }
        for part, r in reports.items()
    }
    return {
        "split": cfg.split,
        "teachers": [t.name for t in gen.teachers],
        "samples": {p: s.height for p, s in samples.items()},
        "stats": stats,
    }
