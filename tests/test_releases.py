"""Release hashes: verification reads the bytes; the hash cache behind stage keys cannot be fooled."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mard_core import releases
from mard_core.errors import HashMismatchError
from mard_core.releases import Release, file_sha256, require_verified, verify
from mard_core.stage import sha256_file


def edit_in_place(path: Path, data: bytes) -> None:
    """Overwrite ``path`` with same-size ``data`` and restore its mtime, waiting out a coarse ctime tick."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    while path.stat().st_ctime_ns == st.st_ctime_ns:  # only on filesystems with coarse timestamps
        time.sleep(0.001)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files look SETTLED_NS old, so their hashes are cached."""
    monkeypatch.setattr(releases, "time_ns", lambda: time.time_ns() + 10 * releases.SETTLED_NS)


def test_verify_reads_the_bytes_whatever_the_cache_holds(settled: None, tmp_path: Path) -> None:
    release, cache = tmp_path / "release.xml", tmp_path / ".cache" / "hashes.json"
    release.write_bytes(b"<drugbank/>")
    digest = file_sha256(release, cache)
    poisoned = {key: "0" * 64 for key in json.loads(cache.read_text())}
    cache.write_text(json.dumps(poisoned))
    assert file_sha256(release, cache) == "0" * 64  # stage keys do use the cache
    registry = {"9.8": Release("9.8", digest, release.stat().st_size)}
    assert verify(release, "9.8", registry, cache).matched
    edit_in_place(release, b"<drugbanK/>")
    with pytest.raises(HashMismatchError, match="does not match release 9.8"):
        require_verified(verify(release, "9.8", registry, cache), registry)


def test_hash_cache_sees_an_in_place_edit_that_keeps_size_and_mtime(settled: None, tmp_path: Path) -> None:
    release, cache = tmp_path / "release.xml", tmp_path / "hashes.json"
    release.write_bytes(b"<drugbank/>")
    before = file_sha256(release, cache)
    assert len(json.loads(cache.read_text())) == 1
    edit_in_place(release, b"<drugbanK/>")
    assert file_sha256(release, cache) == sha256_file(release) != before


def test_a_file_changed_within_the_settle_time_is_not_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    release, cache = tmp_path / "release.xml", tmp_path / "hashes.json"
    release.write_bytes(b"<drugbank/>")
    monkeypatch.setattr(releases, "time_ns", lambda: release.stat().st_ctime_ns + releases.SETTLED_NS - 1)
    assert file_sha256(release, cache) == sha256_file(release) and not cache.exists()
