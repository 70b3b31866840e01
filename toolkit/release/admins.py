"""Release admins recorded with a model, without MLflow: who may act for someone else or
loosen the model's policy where identity is the OS user (local store, server without auth).

The list is a registered-model tag (``toolkit.admins``, a JSON list of names), written when the
model's policy is first recorded (from the ``[tool.toolkit] release_admins`` of the project that
records it) and changed only by a recorded admin, with a reason, in the history. The
``pyproject.toml`` a command happens to find never grants anything on a model that has a list:
anyone can write one in a folder of their own. A list that cannot be read refuses; it is never
"no admins", nor the project's list. A model without a list (registered before lists were
recorded, or by a run that did not know its project's list) has no admin until whoever first
registered it records one (:func:`creator`: the real user of its first history entry, as an
MLflow server gives a model's creator MANAGE), explicitly or by acting as an admin of their
project. On a server with authentication the server's admins decide instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from toolkit.core.errors import PermissionRefused, RegistryError, UsageError
from toolkit.release.vocabulary import ReleaseEntry

if TYPE_CHECKING:
    from toolkit.core.settings import Settings

TAG_ADMINS = "toolkit.admins"
SET_ADMINS = "toolkit policy {model} --set-admins NAME[,NAME...] --reason TEXT"


def project_admins(settings: Settings) -> list[str]:
    """A project's ``[tool.toolkit] release_admins``: what a model records with its first
    policy (pass it as ``Registry(..., admins=)``), never what grants anything afterwards."""
    admins = settings.extra.get("release_admins", [])
    if not isinstance(admins, list) or not all(isinstance(a, str) for a in admins):
        raise UsageError(
            f"{settings.root / 'pyproject.toml'}: [tool.toolkit] release_admins must be a list "
            "of OS user names"
        )
    return admins


def clean_admins(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` stripped, without repeats, in order; an empty list or an empty name is refused
    (a model whose admins are nobody could never have them changed again)."""
    found: list[str] = []
    for raw in names:
        name = raw.strip() if isinstance(raw, str) else ""
        if not name or "," in name:
            raise RegistryError(f"a release admin is an OS user name, not {raw!r}")
        if name not in found:
            found.append(name)
    if not found:
        raise RegistryError("a model's release admins need at least one name")
    return tuple(found)


def admins_value(names: Iterable[str]) -> str:
    """The tag value of a list of admins."""
    return json.dumps(list(clean_admins(names)))


def recorded_admins(model: str, tags: Mapping[str, str]) -> tuple[str, ...] | None:
    """The admins recorded with ``model`` (None when there is no list); a list that cannot be
    read is a refusal, never "no admins" (fail closed)."""
    raw = tags.get(TAG_ADMINS)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
            raise ValueError("not a JSON list of names")
        return clean_admins(data)
    except (TypeError, ValueError, RegistryError) as exc:
        raise PermissionRefused(
            f"the release admins recorded with {model!r} ({TAG_ADMINS}) are unreadable "
            f"({exc}), so nobody may act as a release admin on it",
            hint="whoever first registered it records them again: "
            + SET_ADMINS.format(model=model),
        ) from exc


def creator(entries: list[ReleaseEntry]) -> str | None:
    """Who really wrote the model's first history entry (its first registration), if any."""
    return (entries[0].recorded_by or entries[0].by) if entries else None


def describe_admins(names: tuple[str, ...] | None, project: Iterable[str] | None) -> str:
    """One line for ``toolkit policy``: the recorded admins, and the project's list when it
    says something else (the recorded one is what counts)."""
    text = ", ".join(names) if names else "none recorded (only whoever first registered the "
    text += "" if names else "model may record them)"
    listed = tuple(project or ())
    if listed and set(listed) != set(names or ()):
        text += (
            f"; this project's [tool.toolkit] release_admins ({', '.join(listed)}) differ and "
            "do not count"
        )
    return text
