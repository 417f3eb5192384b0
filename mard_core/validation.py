"""Config validation with pydantic: the settings every config class shares, strict field types, and validation
errors turned into one line that names the file and the key.

A config class is ``pydantic.dataclasses.dataclass(frozen=True, config=CONFIG)``: unknown keys are errors and
NaN/infinity are refused. Scalar fields use the strict types below, so a YAML value of the wrong type (``"3"``
or ``yes`` for a number, ``1`` for a flag) is refused rather than coerced; floats accept ints. Containers stay
lax, so YAML lists become tuples.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import ConfigDict, Field, StrictFloat, StrictInt, TypeAdapter, ValidationError

from mard_core.errors import InputError, readable_file

T = TypeVar("T")

CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

PositiveInt = Annotated[StrictInt, Field(gt=0)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
PositiveFloat = Annotated[StrictFloat, Field(gt=0)]
NonNegativeFloat = Annotated[StrictFloat, Field(ge=0)]
Fraction = Annotated[StrictFloat, Field(ge=0, le=1)]
NonEmptyStr = Annotated[str, Field(min_length=1)]

_COMPARISONS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_UNKNOWN_KEY = ("unexpected_keyword_argument", "extra_forbidden")
_NO_INPUT_SHOWN = ("missing", "value_error", *_UNKNOWN_KEY)
_MAX_SHOWN = 80  # longer inputs (whole sections) are named by their type


def readable(path: str) -> str:
    """``path`` when it names a file this process may read; else a ``ValueError`` saying why (a validator's
    error: :func:`parse_config` puts the file and the key in front)."""
    try:
        readable_file(Path(path))
    except InputError as exc:
        raise ValueError(str(exc)) from None
    return path


def parse_config(cls: type[T], data: Any, where: str) -> T:
    """``cls`` validated from ``data`` (a mapping as read from a file); an invalid value raises an
    ``InputError`` naming ``where`` and the key path, e.g.
    ``my.yaml: release.demo_drugs: must be > 0, got -5``."""
    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as exc:
        raise InputError(f"{where}: {error_line(exc, cls)}") from None


def error_line(exc: ValidationError, cls: Any) -> str:
    """The first error of ``exc`` (validating ``cls``) as ``key.path: problem``, plus how many more there
    are."""
    errors = exc.errors()
    first = errors[0]
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
    line = f"{key}: {_problem(first, cls)}" if key else _problem(first, cls)
    return line + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def _problem(error: Any, cls: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _UNKNOWN_KEY:
        allowed = _field_names(cls, error["loc"][:-1])
        return "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return "required key missing"
    if kind == "value_error":
        return str(ctx["error"])
    if kind in _COMPARISONS:
        text = f"must be {_COMPARISONS[kind]} {next(iter(ctx.values()))}"
    else:
        text = error["msg"].replace("Input should be", "must be", 1)
        text = text[0].lower() + text[1:]
    if kind in _NO_INPUT_SHOWN:
        return text
    shown = repr(error["input"])
    return f"{text}, got {shown if len(shown) <= _MAX_SHOWN else 'a ' + type(error['input']).__name__}"


def _field_names(cls: Any, loc: tuple[int | str, ...]) -> list[str]:
    """The fields of the dataclass found at key path ``loc`` below ``cls`` (empty if there is none)."""
    tp = cls
    for part in loc:
        if isinstance(part, int):
            tp = typing.get_args(tp)[0] if typing.get_args(tp) else None
        elif dataclasses.is_dataclass(tp):
            tp = typing.get_type_hints(tp).get(part)
        else:
            return []
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(arg for arg in typing.get_args(tp) if arg is not type(None))
    return sorted(f.name for f in dataclasses.fields(tp)) if dataclasses.is_dataclass(tp) else []
