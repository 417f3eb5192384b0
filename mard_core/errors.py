"""Errors that MARD reports to users as one clear line (the CLI prints them without a traceback)."""


class MardError(Exception):
    """Base class: a user-facing error whose message names the file or thing and what is wrong."""


class InputError(MardError):
    """A user-supplied file or argument is unusable (missing, malformed, wrong format)."""


class HashMismatchError(MardError):
    """A release file's sha256 or size does not match its declared version."""


class QualityGateError(MardError):
    """A data-quality suite failed; the message names the report to read."""
