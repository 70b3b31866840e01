"""``toolkit releases MODEL --at TIMESTAMP``: which version was champion at that moment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from toolkit.core.errors import UsageError
from toolkit.release.history import ChampionAt, champion_at


def parse_moment(text: str, flag: str) -> datetime:
    """A date or time the user typed (ISO 8601) as an aware datetime; naive means UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is not an ISO 8601 date or time",
            hint="e.g. 2026-12-05 or 2026-12-05T14:30:00Z (no zone: UTC)",
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def release_at(registry: Any, model: str, at: str) -> ChampionAt:
    """The champion of ``model`` at ``at``, from the registry's release history.

    Raises:
        UsageError: ``at`` is not a date or time.
        RegistryError: the model is not registered, or the registry is unreachable.
    """
    return champion_at(model, registry.releases(model), parse_moment(at, "--at"))
