"""A model card as an offline page, read by attribute from
:class:`toolkit.cards.model.ModelCard` through ``model_card.html.j2``."""

from __future__ import annotations

import re
from typing import Any

from toolkit.reports.jinja import render


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def render_card(card: Any) -> str:
    """The whole page: one section per card section, each with an anchor for the header's nav."""
    sections = [
        {"title": s.title, "anchor": _anchor(s.title), "facts": s.facts, "tables": s.tables,
         "missing": s.missing}
        for s in card.sections
    ]  # fmt: skip
    view = {"model": card.model, "version": card.version, "generated_at": card.generated_at,
            "event": card.event, "sections": sections}  # fmt: skip
    return render("model_card.html.j2", card=view)
