"""Release gates in a notebook: a gate report (``gate_report.html.j2``) and a gate preview
(``gate_preview.html.j2``), read by attribute from :mod:`toolkit.gates` and
:mod:`toolkit.release.preview` results."""

from __future__ import annotations

from typing import Any

from toolkit.reports.jinja import render


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def render_gate_report(report: Any) -> str:
    """A small pass/fail table of a :class:`toolkit.gates.evaluation.GateReport`."""
    return render("gate_report.html.j2", report=report, fmt=_fmt)


def render_gate_preview(preview: Any) -> str:
    """A :class:`toolkit.release.preview.GatePreview`: verdict, champion, one row per gate."""
    return render("gate_preview.html.j2", p=preview, fmt=_fmt)
