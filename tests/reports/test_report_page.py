"""The run report, opened from disk in Chromium: its sections are there and nothing is fetched."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MakeProject
from support.browser import chromium, require_chromium

from toolkit.cli.main import main
from toolkit.execute import RunRequest, run_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SPEC = """\
name: tiny
parameters:
  x: 3
steps:
  - name: first
    notebook: ../notebooks/ok.ipynb
    outputs: {out: first.txt}
  - name: second
    notebook: ../notebooks/ok.ipynb
    parameters: {label: b}
    inputs: {inp: first.out}
    outputs: {out: second.txt}
"""
SECTIONS = ("dag", "steps", "parameters", "contracts", "gates", "metrics", "lineage")


@pytest.fixture
def finished_run(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[str, Path]:
    """``(run_id, run_dir)`` of a two-step run of fast notebooks, without tracking."""
    spec = make_project(SPEC, name="tiny")
    monkeypatch.chdir(spec.parents[1])
    report = run_pipeline(RunRequest(spec, track=False))
    assert report.status == "succeeded", report.to_dict()
    return report.run_id, Path(report.run_dir)


def test_run_report_renders_offline(finished_run: tuple[str, Path], tmp_path: Path) -> None:
    require_chromium()
    run_id, run_dir = finished_run
    assert (run_dir / "report.html").is_file()  # written at the end of every run
    out = tmp_path / "report" / "tiny.html"
    assert main(["report", run_id, "-o", str(out)]) == 0
    assert out.is_file()
    with chromium() as browser:
        page = browser.page
        page.goto(out.as_uri())
        page.wait_for_load_state("load")
        title = page.title()
        assert "tiny" in title and run_id in title
        for section in SECTIONS:
            assert page.locator(f"#{section}").count() == 1, f"no section #{section}"
        for name in ("first", "second"):
            step = page.locator(f"[data-step='{name}']").first
            assert step.get_attribute("data-status") == "succeeded"
        assert "x" in page.locator("#parameters").inner_text()
        assert "first" in page.locator("#dag").inner_text() or page.locator("#dag svg").count()
        browser.screenshot("run-report")
        page.goto((run_dir / "report.html").as_uri())
        page.wait_for_load_state("load")
        assert run_id in page.title()
        assert browser.requests, "the browser recorded no request at all"
        assert browser.external_requests() == []
