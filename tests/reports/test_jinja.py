"""Compiled templates kept between processes: reused when intact, recompiled when not."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.reports.jinja import environment, keep_compiled_templates
from toolkit.reports.run_report import render_run_report


@pytest.fixture
def fresh_environment() -> Iterator[None]:
    """Each process builds the environment once; these tests build it again, then restore it."""
    environment.cache_clear()
    yield
    environment.cache_clear()


def _page(run: Path) -> str:
    """The run report of a run folder with nothing in it yet: every section still renders."""
    run.mkdir(exist_ok=True)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<when>", render_run_report(run))


def test_compiled_templates_are_kept_and_reused(tmp_path: Path, fresh_environment: None) -> None:
    folder = tmp_path / "templates"
    keep_compiled_templates(folder)
    first = _page(tmp_path / "run")
    kept = sorted(folder.rglob("*.cache"))
    assert kept, "the compiled template was not written"
    assert all(re.fullmatch(r"jinja2-[\d.]+", p.parent.name) for p in kept)
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    environment.cache_clear()  # as a new process would
    keep_compiled_templates(folder)
    assert _page(tmp_path / "run") == first
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps  # loaded, not compiled again
    assert "toolkit run report" in first


def test_a_damaged_cache_only_costs_a_compile(tmp_path: Path, fresh_environment: None) -> None:
    folder = tmp_path / "templates"
    keep_compiled_templates(folder)
    first = _page(tmp_path / "run")
    for path in folder.rglob("*.cache"):
        path.write_bytes(b"not bytecode at all")
    environment.cache_clear()
    keep_compiled_templates(folder)
    assert _page(tmp_path / "run") == first
    unwritable = tmp_path / "file"
    unwritable.write_text("a file where the folder would go")
    environment.cache_clear()
    keep_compiled_templates(unwritable)
    assert _page(tmp_path / "run") == first
