"""Release hash verification: a registry of known DrugBank releases (version -> sha256, size)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from time import time_ns

import yaml

from mard_core.errors import HashMismatchError, InputError, readable_file
from mard_core.stage import sha256_file, write_atomic, write_json_atomic
from schemas import SCHEMA_DIR

SHIPPED_REGISTRY = SCHEMA_DIR / "releases.yaml"
# A hash is cached only for a file whose ctime is this much older than the read: a change within one
# timestamp tick of the last one can leave (inode, size, mtime, ctime) as they were (git's "racy" entries).
SETTLED_NS = 2_000_000_000


def user_registry(root: Path) -> Path:
    """The user's release registry under the data root (``mard verify --add`` writes there)."""
    return Path(root) / "releases.yaml"


def hash_cache(root: Path) -> Path:
    """Where file hashes are remembered by (path, inode, size, mtime, ctime) under the data root."""
    return Path(root) / ".cache" / "hashes.json"


@dataclass(frozen=True)
class Release:
    version: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Verification:
    """Outcome of checking a file against the registry."""

    path: Path
    sha256: str
    size: int
    version: str | None  # the version the file matched (or was declared as)
    matched: bool

    def line(self) -> str:
        state = (
            f"matches {self.version}"
            if self.matched
            else (f"does NOT match {self.version}" if self.version else "matches no known release")
        )
        return f"{self.path}  sha256={self.sha256}  size={self.size}  {state}"


def _load(path: Path) -> dict[str, Release]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
        entries = data.get("releases") or {}
        return {str(v): Release(str(v), str(e["sha256"]).lower(), int(e["size"])) for v, e in entries.items()}
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{path}: not a valid release registry (need releases: {{V: {{sha256, size}}}}): {exc}"
        ) from None


def load_registry(user_registry: Path | None = None) -> dict[str, Release]:
    """The shipped registry merged with the user's (the user's entries win)."""
    registry = _load(SHIPPED_REGISTRY)
    if user_registry is not None:
        registry.update(_load(user_registry))
    return registry


def file_sha256(path: Path, cache_file: Path | None = None, *, reuse: bool = True) -> str:
    """sha256 of a file, remembered in ``cache_file`` by (path, inode, size, mtime, ctime) so re-runs skip the
    read.

    ctime cannot be set by users, so an in-place edit that restores size and mtime is still seen; a file
    changed less than SETTLED_NS ago is hashed but not cached. ``reuse=False`` always reads the bytes
    (verification).
    """
    now, st = time_ns(), readable_file(path).stat()
    key = f"{path.resolve()}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"
    cache: dict[str, str] = {}
    if cache_file is not None and cache_file.is_file():
        try:
            cache = json.loads(cache_file.read_text())
        except json.JSONDecodeError:
            cache = {}
    if reuse and key in cache:
        return cache[key]
    digest = sha256_file(path)
    if cache_file is not None and now - st.st_ctime_ns >= SETTLED_NS:
        cache[key] = digest
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache_file, cache)
    return digest


def find_release(registry: dict[str, Release], sha256: str, size: int) -> str | None:
    """The version whose registered hash and size these are, or None."""
    return next((r.version for r in registry.values() if r.sha256 == sha256 and r.size == size), None)


def verify(
    path: Path, version: str | None, registry: dict[str, Release], cache_file: Path | None = None
) -> Verification:
    """Hash ``path``'s bytes (never a cached hash) and compare with ``version``'s entry (or find the release
    it matches when version is None); ``cache_file`` is refreshed for the stage keys that use it."""
    readable_file(path)
    digest, size = file_sha256(path, cache_file, reuse=False), path.stat().st_size
    if version is None:
        found = find_release(registry, digest, size)
        return Verification(path, digest, size, found, found is not None)
    if version not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise InputError(
            f"{path}: release {version!r} is not in the registry (known: {known}); "
            f"add it with `mard verify {path} --add {version}`"
        )
    expected = registry[version]
    return Verification(path, digest, size, version, expected.sha256 == digest and expected.size == size)


def require_verified(v: Verification, registry: dict[str, Release]) -> None:
    """Raise HashMismatchError unless ``v`` matched its release."""
    if v.matched:
        return
    if v.version is None:
        raise HashMismatchError(
            f"{v.path}: sha256 {v.sha256} matches no known release; pass --version and add its hash"
        )
    exp = registry[v.version]
    raise HashMismatchError(
        f"{v.path}: sha256 {v.sha256} (size {v.size}) does not match release {v.version} "
        f"(expected sha256 {exp.sha256}, size {exp.size})"
    )


def add_release(user_registry: Path, version: str, sha256: str, size: int) -> None:
    """Record a release's hash in the user's registry file (created if needed), atomically."""
    data: dict = {"releases": {}}
    if user_registry.is_file():
        data = yaml.safe_load(user_registry.read_text()) or {"releases": {}}
        data.setdefault("releases", {})
    data["releases"][version] = {"sha256": sha256, "size": size}
    write_atomic(user_registry, lambda tmp: tmp.write_text(yaml.safe_dump(data, sort_keys=True)))
