"""Log a model card to its version: Markdown and the offline page, under ``card/`` of the
version's source run, one timestamped pair per refresh (never overwritten), and the version's
tag ``toolkit.card`` pointing at the latest page. Refreshed on registration, review, promotion,
rollback and monitoring; a refresh that fails is reported and never undoes what triggered it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from toolkit.cards.collect import collect
from toolkit.cards.model import ModelCard, to_markdown
from toolkit.core.errors import UsageError
from toolkit.core.settings import Settings, load_settings

CARD_TAG = "toolkit.card"


@dataclass(frozen=True)
class Published:
    card: ModelCard
    markdown: str
    html: str
    uri: str | None  # runs:/RUN/card/STAMP-EVENT.html, None when not logged


def _stores(settings: Settings) -> tuple[Any, Any]:
    from toolkit.release.registry import Registry
    from toolkit.tracking.client import Tracker

    return Registry(settings.tracking_uri), Tracker(
        settings.tracking_uri, artifacts_dir=settings.artifacts_dir
    )


def build(
    model: str,
    ref: str,
    *,
    event: str = "built",
    log: bool = False,
    settings: Settings | None = None,
) -> Published:
    """The card of ``model`` at ``ref`` (a version or an alias); with ``log``, logged too."""
    from toolkit.reports.model_card import render_card

    settings = settings or load_settings()
    registry, tracker = _stores(settings)
    version = registry.resolve(model, ref)
    card = collect(registry, tracker, settings, model, version, event)
    markdown, html = to_markdown(card), render_card(card)
    if not log:
        return Published(card, markdown, html, None)
    info = registry.get_version(model, version)
    run_id = info.tags.get("toolkit.mlflow_run_id") or info.run_id
    if not run_id:
        raise UsageError(f"{model} v{version} records no source run to log its card to")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    base = f"card/{stamp}-{event}"
    tracker.log_text(run_id, markdown, base + ".md")
    tracker.log_text(run_id, html, base + ".html")
    uri = f"runs:/{run_id}/{base}.html"
    registry.tag_version(model, version, CARD_TAG, uri)
    return Published(card, markdown, html, uri)


def refresh(
    model: str, ref: str | int, event: str, *, settings: Settings | None = None
) -> str | None:
    """Log a fresh card after ``event``; on failure say so on stderr and return None."""
    try:
        return build(model, str(ref), event=event, log=True, settings=settings).uri
    except Exception as exc:  # a by-product: it must never fail the promotion that happened
        print(
            f"note: the model card of {model} {ref} was not refreshed after {event}: "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return None
