"""``toolkit releases MODEL --at TIMESTAMP``: which version was champion at that moment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from toolkit.core.errors import UsageError
from toolkit.release.history import ChampionAt, champion_at
from toolkit.release.vocabulary import PolicyRecord, ReleaseEntry, parse_entry


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


@dataclass(frozen=True)
class RecordedHistory:
    """One model's registered-model tags, where its release history and policy live, read
    without MLflow; it answers the two calls ``toolkit releases`` makes of a
    :class:`~toolkit.release.registry.Registry`, the same way (``RegistryStore._history``:
    every parseable entry, ordered by key)."""

    model: str
    tags: Mapping[str, str]

    def releases(self, model_name: str) -> list[ReleaseEntry]:
        assert model_name == self.model, (model_name, self.model)
        entries = (parse_entry(self.model, k, v) for k, v in self.tags.items())
        return sorted((e for e in entries if e is not None), key=lambda e: e.key)

    def policy_record(self, model_name: str) -> PolicyRecord | None:
        assert model_name == self.model, (model_name, self.model)
        return PolicyRecord.from_tags(self.model, self.tags)


def recorded_history(tracking_uri: str, model: str) -> RecordedHistory | None:
    """``model``'s history read straight from a local SQLite store, skipping MLflow's import
    (seconds); None when only the registry can answer (another store, an unknown schema, no
    such model: the registry's error names the models there are)."""
    from toolkit.tracking.sqlite_reader import ReaderUnavailable, open_reader

    reader = open_reader(tracking_uri)
    if reader is None:
        return None
    with reader:
        try:
            tags = reader.registered_model_tags(model)
        except ReaderUnavailable:
            return None
    return None if tags is None else RecordedHistory(model, tags)
