"""Values as short text for people: the cut used by pages, reprs and CLI summaries alike."""

from __future__ import annotations

import json
from typing import Any

SHORT = 90  # characters of a value shown in text and HTML before it is cut


def short(value: Any, limit: int = SHORT) -> str:
    """A compact one-line rendering of a JSON-able value for people (JSON-like, cut at limit)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
