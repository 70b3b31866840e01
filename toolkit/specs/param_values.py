"""Notebook parameter values: JSON types only, checked where they are written.

A step's parameters travel as JSON (the cache key hashes them, the run record stores them,
papermill writes them into the notebook as Python literals). A value of another type used to
pass ``check`` and ``plan`` and then fail the step with "Object of type date is not JSON
serializable", or crash the cache key on a mapping with keys of mixed types. Now the spec loader
and ``-p`` refuse it up front, naming the field.

Dates and datetimes (an explicit ``!!timestamp``: YAML 1.2 reads a plain ``2024-01-02`` as a
string already) become ISO strings, as papermill's ``-y`` passes them.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any


class ParamValueError(ValueError):
    """A value that cannot be a notebook parameter; ``where`` is its place inside the value
    (``.key`` / ``[index]``, empty for the value itself)."""

    def __init__(self, message: str, where: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint


_KINDS: dict[type, tuple[str, str]] = {
    bytes: ("binary data (!!binary)", "put the data in a file and pass its path"),
    set: ("a set (!!set)", "write a list instead: [a, b]"),
    frozenset: ("a set (!!set)", "write a list instead: [a, b]"),
    tuple: ("a pair list (!!omap or !!pairs)", "write a mapping instead: {a: 1, b: 2}"),
}
_ALLOWED = "strings, numbers, booleans, null, lists and mappings with string keys"


def json_param(value: Any, where: str = "") -> Any:
    """``value`` as a notebook parameter: the same value, with dates as ISO strings.

    Raises:
        ParamValueError: a value (or a part of it) that is not a JSON type.
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return [json_param(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ParamValueError(
                    f"key {key!r} is {_article(key)}; parameter mappings need string keys "
                    "(they are passed as JSON)",
                    where,
                    hint=f"quote the key: '{_as_written(key)}': ...",
                )
        return {key: json_param(item, f"{where}.{key}") for key, item in value.items()}
    what, hint = _KINDS.get(type(value), (f"a value of type {type(value).__name__}", ""))
    raise ParamValueError(
        f"{what} cannot be a notebook parameter: parameters are passed as JSON ({_ALLOWED})",
        where,
        hint=hint or f"use one of: {_ALLOWED}",
    )


def _article(key: object) -> str:
    if key is None:
        return "null"
    name = type(key).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _as_written(key: object) -> str:
    """The key as YAML 1.2 spells it (``null``, ``true``), for the hint to quote it."""
    return json.dumps(key) if key is None or isinstance(key, bool | int | float) else str(key)
