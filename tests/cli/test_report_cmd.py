"""``toolkit report RUN_ID``: finds the run under any pipeline, writes the page, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.cli.main import main

RUN_ID = "20261125-165630-3e5bf4"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose runs/ holds one finished run of ``train`` (hand-made, no kernel)."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mini"\n[tool.toolkit]\n')
    run = tmp_path / "runs" / "train" / RUN_ID
    (run / "notebooks").mkdir(parents=True)
    (run / "notebooks" / "a.ipynb").write_text("{}")
    step = {"name": "a", "upstream": [], "parameters": {"x": 1}}
    (run / "plan.json").write_text(
        json.dumps({"pipeline": "train", "run_dir": str(run), "steps": [step]})
    )
    done = {
        "name": "a",
        "status": "succeeded",
        "duration": 1.5,
        "notebook": str(run / "notebooks/a.ipynb"),
    }
    summary = {
        "run_id": RUN_ID,
        "pipeline": "train",
        "status": "succeeded",
        "run_dir": str(run),
        "steps": [done],
    }
    (run / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "runs" / "score" / "20261125-170000-aaaaaa").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_output_is_the_run_folder(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", RUN_ID]) == 0
    page = project / "runs" / "train" / RUN_ID / "report.html"
    assert capsys.readouterr().out.strip() == str(page)
    assert '<section id="dag">' in page.read_text()


def test_output_file_and_pipeline(project: Path) -> None:
    out = project / "out" / "r.html"
    assert main(["report", RUN_ID, "-o", str(out), "--pipeline", "train"]) == 0
    assert RUN_ID in out.read_text()
    assert f'href="../runs/train/{RUN_ID}/notebooks/a.ipynb"' in out.read_text()


def test_unknown_run_id_exits_2_with_hint(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", RUN_ID[:-1] + "5"]) == 2
    err = capsys.readouterr().err
    assert "no run" in err and f"did you mean {RUN_ID!r}" in err


def test_unknown_pipeline_exits_2_with_hint(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", RUN_ID, "--pipeline", "trian"]) == 2
    assert "did you mean 'train'" in capsys.readouterr().err
