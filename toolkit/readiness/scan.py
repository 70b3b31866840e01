"""Secrets written into a pipeline instead of declared: parameters whose names look secret
(the project's ``secret_patterns``) with a literal value, and notebook lines assigning a
literal to such a name. Declared secrets (``{secret: true, env: VAR}``) are the fix."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from toolkit.core.secrets import is_secret
from toolkit.specs.models import Pipeline
from toolkit.specs.notebook_source import read_notebook
from toolkit.specs.step_models import SecretParam

# ``name = "literal"`` (or a number): a value typed into the source, not read from somewhere.
LITERAL_ASSIGNMENT = re.compile(
    r"""^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]+)?=\s*(?:[rbuf]{0,2}(["'])(.+?)\2|(\d{4,}))\s*(?:#.*)?$"""
)


def _literal(value: object) -> bool:
    """A value that is the secret itself: a non-empty string or number, not a placeholder."""
    if isinstance(value, SecretParam):
        return value.env is None and value.value not in (None, "")
    if isinstance(value, bool) or value is None:
        return False
    return isinstance(value, str | int | float) and str(value).strip() not in ("", "***")


def _in_parameters(where: str, params: Mapping[str, object], patterns: Iterable[str]) -> list[str]:
    found = []
    for key, value in params.items():
        if isinstance(value, SecretParam):
            if _literal(value):
                found.append(f"{where}.{key}: a secret given as value, not env")
        elif is_secret(key, patterns) and _literal(value):
            found.append(f"{where}.{key}: a literal value under a secret-looking name")
    return found


def _in_notebook(step: str, path: Path, patterns: Iterable[str]) -> list[str]:
    try:
        nb = read_notebook(path)
    except (OSError, ValueError):
        return []  # `toolkit check` reports unreadable notebooks; nothing to scan here
    found = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        for line in text.splitlines():
            match = LITERAL_ASSIGNMENT.match(line)
            if match and is_secret(match.group(1), patterns):
                found.append(
                    f"step {step!r}: cell {index} of {path.name} assigns a literal to "
                    f"{match.group(1)!r}"
                )
    return found


def hard_coded_secrets(spec: Pipeline, patterns: Iterable[str]) -> list[str]:
    """Where a secret is written into the spec or a notebook's source (empty: none found)."""
    patterns = tuple(patterns)
    found = _in_parameters("parameters", spec.parameters, patterns)
    for step in spec.steps:
        found += _in_parameters(f"steps({step.name}).parameters", step.parameters, patterns)
        found += _in_parameters(f"steps({step.name}).env", step.env, patterns)
        found += _in_notebook(step.name, step.notebook, patterns)
    return found
