"""The shadow report page: champion vs shadow on the batches both scored (a ShadowReport from
:mod:`toolkit.shadow.compare`, read by attribute)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from toolkit.reports.jinja import render


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def shadow_html(report: Any) -> str:
    """The page, self-contained (inline CSS, no scripts)."""
    return render(
        "shadow_page.html.j2",
        title=f"Shadow report: {report.model}",
        r=report,
        pct=_pct,
        num=_num,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )
