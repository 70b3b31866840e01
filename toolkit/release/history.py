"""What was in production when: the champion at a moment, replayed from the release history
the registry keeps (promotions push a champion, rollbacks pop back to their target)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from toolkit.release.vocabulary import MOVES, ReleaseEntry, champion_stack


@dataclass(frozen=True)
class ChampionAt:
    """The champion at ``at`` (None before the first promotion) and the move that made it so."""

    model: str
    at: str
    version: str | None
    since: str | None = None
    by: str | None = None
    action: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def moment(text: str) -> datetime:
    """An ISO 8601 date or time as an aware datetime; naive ones are UTC (as recorded)."""
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def champion_at(model: str, entries: list[ReleaseEntry], at: datetime) -> ChampionAt:
    """The champion of ``model`` at ``at`` from its history (``entries`` oldest first)."""
    moves = [e for e in entries if e.action in MOVES and moment(e.at) <= at]
    stack = champion_stack(moves)
    when = at.astimezone(UTC).isoformat(timespec="milliseconds")
    if not stack:
        return ChampionAt(model, when, None)
    last = moves[-1]
    return ChampionAt(model, when, stack[-1], last.at, last.by, last.action, last.reason)
