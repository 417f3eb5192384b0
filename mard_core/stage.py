"""Content-addressed stage outputs: the one pattern every pipeline stage follows.

A stage is a pure function of (its config, its inputs, its code version). Its output directory is
``<root>/<stage>/<key>`` where ``key`` hashes exactly those things; ``manifest.json`` is written last, through
an atomic rename of the whole directory, and it (not any orchestrator's cache) says the stage is done. A run
that finds a complete, intact output does nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
KEY_LENGTH = 16


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def canonical_json(value: Any) -> str:
    """Deterministic JSON of configs and manifests (sorted keys, dataclasses as dicts)."""
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stage_key(stage: str, version: str, config: Any, inputs: Mapping[str, str]) -> str:
    """The content address of a stage output: hash of stage name, code version, config and input
    identities."""
    payload = canonical_json({"stage": stage, "version": version, "config": config, "inputs": dict(inputs)})
    return hashlib.sha256(payload.encode()).hexdigest()[:KEY_LENGTH]


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of a stage output, or None when there is none (the stage did not finish)."""
    try:
        return json.loads((out / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def verify_output(out: Path) -> list[str]:
    """Problems with a finished output: missing manifest, missing or changed files. Empty when intact."""
    manifest = read_manifest(out)
    if manifest is None:
        return [f"{out}: no {MANIFEST} (stage did not finish)"]
    problems = []
    for rel, meta in manifest.get("files", {}).items():
        path = out / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != meta["size"] or sha256_file(path) != meta["sha256"]:
            problems.append(f"{path}: content changed since the stage wrote it")
    return problems


def _file_table(directory: Path) -> dict[str, dict[str, Any]]:
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {
        str(p.relative_to(directory)): {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in files
    }


def write_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """Create ``path`` by ``write(temp path)`` and an atomic rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON (sorted keys, via :func:`jsonable`; other objects as ``str``) atomically."""
    text = json.dumps(jsonable(data), indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def replace_dir(src: Path, dst: Path) -> None:
    """Move directory ``src`` to ``dst`` atomically; an existing ``dst`` is set aside first, removed after."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex}")
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old)


@dataclasses.dataclass(frozen=True)
class StageRun:
    """One stage invocation: where its output goes and how it is identified."""

    stage: str
    version: str
    config: Any
    inputs: Mapping[str, str]  # name -> identity (an upstream key or a file sha256)
    root: Path

    @property
    def key(self) -> str:
        return stage_key(self.stage, self.version, self.config, self.inputs)

    @property
    def out(self) -> Path:
        return Path(self.root) / self.stage / self.key

    def is_complete(self) -> bool:
        return not verify_output(self.out)


def materialize(
    out: Path, build: Callable[[Path], Mapping[str, Any]], meta: Mapping[str, Any], resume: bool = False
) -> Path:
    """Build ``out`` atomically: ``build(work_dir)`` fills a work directory and returns manifest fields.

    The manifest (``meta``, file hashes, wall time and what ``build`` returned) is written last and the
    directory is renamed into place, so a crash at any point leaves nothing that looks complete. With
    ``resume`` the work directory (``.partial-<name>`` beside ``out``) survives a crash, so a builder that
    writes its pieces atomically (shards, checkpoints) can pick up where it stopped; otherwise it starts
    empty.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".partial-{out.name}"
    if work.exists() and not resume:
        shutil.rmtree(work)
    work.mkdir(exist_ok=True)
    try:
        start = time.perf_counter()
        extra = dict(build(work))
        manifest = {
            **meta,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wall_s": round(time.perf_counter() - start, 3),
            "files": _file_table(work),
            **extra,
        }
        write_json_atomic(work / MANIFEST, manifest)
        replace_dir(work, out)
    finally:
        if work.exists() and not resume:
            shutil.rmtree(work, ignore_errors=True)
    return out


def run_stage(
    run: StageRun, build: Callable[[Path], Mapping[str, Any]], force: bool = False, resume: bool = False
) -> Path:
    """Produce ``run.out`` with ``build`` unless an intact output exists; a damaged one is rebuilt."""
    if not force and run.is_complete():
        return run.out
    meta = {
        "stage": run.stage,
        "key": run.key,
        "version": run.version,
        "config": run.config,
        "inputs": dict(run.inputs),
    }
    return materialize(run.out, build, meta, resume)
