"""Every page and repr is an autoescaped Jinja2 template that stays offline."""

from __future__ import annotations

import re
from pathlib import Path

import toolkit.reports
from toolkit.reports.jinja import environment, render

TEMPLATES = Path(toolkit.reports.__file__).parent / "templates"


def test_templates_never_mark_values_safe_nor_load_anything() -> None:
    names = sorted(p.name for p in TEMPLATES.glob("*.j2"))
    assert "run_report.html.j2" in names and "drift_report.html.j2" in names
    for name in names:
        source = (TEMPLATES / name).read_text()
        assert not re.search(r"\|\s*safe\b|autoescape\s+false", source), name
        assert not re.search(r"<script|<link|<img|@import|https?://", source), name
        environment().get_template(name)  # parses


def test_values_are_escaped() -> None:
    html = render("gate_report.html.j2", report=_Report(), fmt=str)
    assert "&lt;b&gt;" in html and "<b>" not in html


class _Result:
    expression, kind, value, threshold, note, passed = "x <b>", "threshold", 1, 2, "", True


class _Report:
    results = (_Result(),)
    passed, failed = True, ()
