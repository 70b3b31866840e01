"""Spec errors people can act on: pydantic's validation error becomes one :class:`SpecError`
naming the file, the dotted field path (``steps[1](train).outputs.model``) and, for a typo,
a "did you mean".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from toolkit.core.errors import SpecError, did_you_mean
from toolkit.specs.models import GatesSpec, ModelSpec, Pipeline, ReleaseSpec
from toolkit.specs.readiness_models import OwnerSpec, ReadinessSpec
from toolkit.specs.step_models import ExternalInput, Output, SecretParam, Step


def known_keys() -> set[str]:
    keys: set[str] = set()
    for model in (
        Pipeline,
        Step,
        Output,
        ExternalInput,
        SecretParam,
        ModelSpec,
        GatesSpec,
        ReleaseSpec,
        OwnerSpec,
        ReadinessSpec,
    ):
        keys |= set(model.model_fields)
    return keys - {"source", "content_hash"}


def format_loc(loc: tuple[int | str, ...], data: Any) -> str:
    """Turn pydantic's loc into ``steps[1](train).outputs.model`` for humans."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            try:
                node = node[item]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    label += f"({node['name']})"
            except (IndexError, KeyError, TypeError):
                node = None
            parts.append(label)
        else:
            if item in {"str", "ExternalInput", "Output", "SecretParam"} or "[" in item:
                continue  # union-branch labels, not fields the user wrote
            parts.append(("." if parts else "") + item)
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def error_from_validation(exc: ValidationError, path: Path, data: Any) -> SpecError:
    # Report the first error precisely; list the count of others so nothing is hidden.
    # A typo shows up twice (unknown key + missing key); the unknown one explains both.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    # ``path`` or ``{path: ..., contract: ...}``: a mapping was meant as the second form, so the
    # plain-string alternative's complaint ("should be a valid string") only hides the real one.
    meant_mapping = [
        e
        for e in errors
        if not (e["loc"] and e["loc"][-1] == "str" and isinstance(e.get("input"), dict))
    ]
    errors = meant_mapping or errors
    first = errors[0]
    loc = tuple(first["loc"])
    location = format_loc(loc, data)
    hint = None
    if first["type"] == "extra_forbidden":
        key = str(loc[-1])
        message = f"unknown key {key!r}"
        hint = did_you_mean(key, known_keys())
    elif first["type"] == "missing":
        message = f"missing required key {str(loc[-1])!r}"
    else:
        message = first["msg"].removeprefix("Value error, ")
    others = len(errors) - 1
    if others:
        message += f" (and {others} more problem{'s' if others > 1 else ''})"
    return SpecError(message, path=path, location=location or None, hint=hint)
