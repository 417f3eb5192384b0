"""Watch for new DrugBank releases: a drop directory and the DrugBank download service.

A candidate file (``.xml`` or ``.zip``) is hashed and looked up in the release registry. One whose hash
matches a registered version is a new, verified release: ``on_release`` gets it once, then its sha256 is
remembered in ``<root>/watch/seen.json``. An unregistered file is reported on every scan until its hash is
added (``mard verify FILE --add VERSION``), so registering it later still releases it.

The download service is polled with a conditional GET (the last ETag / Last-Modified are remembered), the body
streamed to a temp file and renamed into the download directory under a content-addressed name; that
directory is then scanned like the drop directory. Credentials go into the Authorization header only: they are
never logged, stored or put into an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from mard_core.errors import InputError, MardError
from mard_core.releases import file_sha256, find_release, hash_cache, load_registry, user_registry
from mard_core.stage import write_json_atomic
from mard_core.watch_config import WatchConfig

RELEASE_SUFFIXES = (".xml", ".zip")
ZIP_MAGIC = b"PK\x03\x04"
STATE_FILE = Path("watch") / "seen.json"
LOG = logging.getLogger("mard.watch")
Logger = logging.Logger | logging.LoggerAdapter


class WatchError(MardError):
    """A release source could not be checked (download service error, unreadable state, bad credentials)."""


@dataclass(frozen=True)
class Credentials:
    """HTTP basic-auth credentials; ``source`` says where they came from (never the values)."""

    username: str = field(repr=False)
    password: str = field(repr=False)
    source: str

    @classmethod
    def parse(cls, text: str, source: str) -> Credentials:
        """Credentials from a ``user:password`` string."""
        user, sep, password = text.partition(":")
        if not sep or not user or not password:
            raise WatchError(f"{source}: expected credentials of the form 'user:password'")
        return cls(user, password, source)


def credentials_from_env(cfg: WatchConfig) -> Credentials | None:
    """Credentials from the configured environment variables; None when neither is set."""
    user, password = os.environ.get(cfg.username_env), os.environ.get(cfg.password_env)
    if not user and not password:
        return None
    if not user or not password:
        missing = cfg.username_env if not user else cfg.password_env
        raise WatchError(
            f"DrugBank credentials: ${missing} is not set "
            f"(set both ${cfg.username_env} and ${cfg.password_env})"
        )
    return Credentials(user, password, f"${cfg.username_env}/${cfg.password_env}")


@dataclass(frozen=True)
class DetectedRelease:
    """A new file whose hash matches a registered release."""

    version: str
    sha256: str
    path: str
    size: int

    def payload(self) -> dict[str, str]:
        return {"version": self.version, "sha256": self.sha256, "path": self.path}


@dataclass(frozen=True)
class Unregistered:
    """A candidate file whose hash matches no registered release."""

    path: str
    sha256: str
    size: int

    def hint(self) -> str:
        return (
            f"{self.path}: sha256 {self.sha256} matches no registered release; "
            f"add its hash with `mard verify {self.path} --add VERSION`"
        )


@dataclass
class WatchReport:
    """What one watch pass found."""

    download: str = "off"  # off | not-modified | downloaded
    releases: list[DetectedRelease] = field(default_factory=list)
    unregistered: list[Unregistered] = field(default_factory=list)
    already_seen: int = 0

    def rows(self) -> list[dict[str, str]]:
        """One row per new or unregistered file (for a table artifact)."""
        return [
            {"status": "new release", "version": r.version, "sha256": r.sha256, "path": r.path}
            for r in self.releases
        ] + [
            {"status": "unregistered", "version": "", "sha256": u.sha256, "path": u.path}
            for u in self.unregistered
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WatchState:
    """``seen.json``: released files by sha256, and the validators of the last download per URL."""

    path: Path
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    http: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> WatchState:
        if not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            return cls(path, dict(data["seen"]), dict(data["http"]))
        except (ValueError, KeyError, TypeError) as exc:
            problem = f"{path}: not a valid watch state file ({exc}); delete it to start afresh"
            raise WatchError(problem) from None

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, {"seen": self.seen, "http": self.http})


def candidate_files(directory: Path) -> list[Path]:
    """Release files in ``directory`` (``.xml``/``.zip``, not hidden), oldest first; creates it if missing."""
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: watched path is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    files = [
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in RELEASE_SUFFIXES
    ]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"watch url {url!r}: expected an http(s) URL")
    if parts.username or parts.password:
        raise InputError(
            "watch url: credentials must not be part of the URL; use the environment or a Secret block"
        )


def _http_error(url: str, response: httpx.Response, credentials: Credentials | None) -> WatchError:
    code = response.status_code
    if code in (401, 403):
        why = (
            f"the credentials from {credentials.source} were rejected"
            if credentials
            else "no credentials were given (set the username/password variables or a Secret block)"
        )
        return WatchError(f"DrugBank download {url}: HTTP {code} {response.reason_phrase}: {why}")
    if code >= 500:
        return WatchError(
            f"DrugBank download {url}: HTTP {code} {response.reason_phrase}: "
            "the download service failed; try again later"
        )
    return WatchError(f"DrugBank download {url}: unexpected HTTP {code} {response.reason_phrase}")


def download(
    url: str,
    dest: Path,
    state: WatchState,
    credentials: Credentials | None,
    timeout_s: float,
    log: Logger = LOG,
) -> Path | None:
    """Fetch ``url`` into ``dest`` unless unchanged since the last fetch; the saved file, or None (304)."""
    _check_url(url)
    dest.mkdir(parents=True, exist_ok=True)
    remembered = state.http.get(url, {})
    conditions = (("etag", "If-None-Match"), ("last_modified", "If-Modified-Since"))
    headers = {name: remembered[key] for key, name in conditions if remembered.get(key)}
    auth = httpx.BasicAuth(credentials.username, credentials.password) if credentials else None
    tmp = dest / f".download-{uuid.uuid4().hex}.part"
    start, size, digest, head = time.perf_counter(), 0, hashlib.sha256(), b""
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=True, auth=auth) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code == 304:
                log.info("DrugBank download %s: not modified since the last fetch", url)
                return None
            if response.status_code != 200:
                raise _http_error(url, response, credentials)
            with open(tmp, "wb") as f:
                for chunk in response.iter_bytes(1 << 20):
                    head = head or chunk[:4]
                    digest.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
            validators = {
                "etag": response.headers.get("etag", ""),
                "last_modified": response.headers.get("last-modified", ""),
            }
        target = dest / f"drugbank-{digest.hexdigest()[:16]}{'.zip' if head == ZIP_MAGIC else '.xml'}"
        os.replace(tmp, target)
    except httpx.HTTPError as exc:
        raise WatchError(f"DrugBank download {url}: {type(exc).__name__}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    state.http[url] = {k: v for k, v in validators.items() if v}
    state.save()
    log.info(
        "DrugBank download %s: saved %s (%d bytes in %.1f s)", url, target, size, time.perf_counter() - start
    )
    return target


def watch(
    root: Path,
    cfg: WatchConfig,
    on_release: Callable[[DetectedRelease], None],
    credentials: Credentials | None = None,
    log: Logger = LOG,
) -> WatchReport:
    """One pass over the configured sources; ``on_release`` is called for each new verified release.

    A release is remembered only after ``on_release`` returns, so a failure there means it is offered again
    on the next pass (at-least-once; the pipeline it triggers is content-addressed, so a repeat is cheap).
    """
    if not cfg.drop_dir and not cfg.url:
        raise InputError("watch config: set drop_dir and/or url (nothing to watch)")
    state = WatchState.load(root / STATE_FILE)
    report = WatchReport()
    directories = [cfg.directory(root, cfg.drop_dir)] if cfg.drop_dir else []
    if cfg.url:
        dest = cfg.directory(root, cfg.download_dir)
        saved = download(cfg.url, dest, state, credentials, cfg.timeout_s, log)
        report.download = "downloaded" if saved else "not-modified"
        directories.append(dest)
    registry = load_registry(user_registry(root))
    hashes = hash_cache(root)
    files = {p.resolve(): p for d in directories for p in candidate_files(d)}
    for path in files.values():
        digest = file_sha256(path, hashes)
        if digest in state.seen:
            report.already_seen += 1
            continue
        size = path.stat().st_size
        version = find_release(registry, digest, size)
        if version is None:
            report.unregistered.append(Unregistered(str(path), digest, size))
            log.warning(report.unregistered[-1].hint())
            continue
        release = DetectedRelease(version, digest, str(path), size)
        log.info("new DrugBank release %s: %s (sha256 %s)", release.version, path, digest)
        on_release(release)
        state.seen[digest] = {
            "version": release.version,
            "path": release.path,
            "size": release.size,
            "detected": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        state.save()
        report.releases.append(release)
    return report
