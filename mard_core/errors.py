"""Errors that MARD reports to users as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ECHO_LIMIT = 80  # characters of user input an error message repeats


class MardError(Exception):
    """Base class: a user-facing error whose message names the file or thing and what is wrong."""


class InputError(MardError):
    """A user-supplied file or argument is unusable (missing, malformed, wrong format)."""


class HashMismatchError(MardError):
    """A release file's sha256 or size does not match its declared version."""


class QualityGateError(MardError):
    """A data-quality suite failed; the message names the report to read."""


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters with an ellipsis (user input can be
    arbitrarily long)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def readable_file(path: Path, what: str = "") -> Path:
    """``path`` when it is a file this process may read; else an :class:`InputError` saying why (no such
    file, a directory, not a regular file, permission denied), with ``what`` (e.g. the config key that named
    it) in parentheses."""
    context = f" ({what})" if what else ""
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file{context}")
    if not path.exists():
        raise InputError(f"{path}: no such file{context}")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file{context}")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied: cannot read it{context}")
    return path


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document at ``path``; an unreadable file or bad YAML is one :class:`InputError` line naming
    the file (and ``what`` it is, e.g. "teachers file")."""
    import yaml  # here only: most callers of this module never read YAML

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid yaml: {str(exc).splitlines()[0]}") from None
