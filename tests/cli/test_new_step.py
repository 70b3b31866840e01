"""``toolkit new step`` end to end: scaffold, ``toolkit check`` passes, the step runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MakeProject

from toolkit.cli.main import main

SPEC = """\
# A one-step pipeline; this comment must survive the edit.
name: mini
steps:
  - name: first
    notebook: ../notebooks/ok.ipynb
    parameters:
      label: hello   # kept
    outputs:
      out: first.txt
"""


@pytest.fixture
def project(make_project: MakeProject, monkeypatch: pytest.MonkeyPatch) -> Path:
    spec = make_project(SPEC, name="mini")
    monkeypatch.chdir(spec.parents[1])
    return spec.parents[1]


def test_new_step_checks_and_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "step", "summarise"]) == 0
    out = capsys.readouterr().out
    assert "created notebooks/summarise.ipynb" in out
    assert "out <- first.out" in out
    spec_text = (project / "pipelines" / "mini.yaml").read_text()
    assert spec_text.startswith(SPEC)

    assert main(["check"]) == 0
    assert "ok: 1 pipeline(s) checked" in capsys.readouterr().out

    code = main(["run", "pipelines/mini.yaml", "--no-tracking", "--quiet", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["summarise"]["status"] == "succeeded"
    assert steps["summarise"]["metrics"] == {"inputs_found": 1.0}
    written = json.loads((Path(summary["run_dir"]) / "data" / "summarise.json").read_text())
    assert written["out"]["bytes"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["new", "step", "first"], "already has a step named 'first'"),
        (["new", "step", "ok"], "notebook notebooks/ok.ipynb already exists"),
        (["new", "step", "x", "--after", "frist"], "did you mean 'first'?"),
        (["new", "step", "x", "--pipeline", "minni"], "did you mean 'mini'?"),
    ],
)
def test_refusals_exit_2_with_a_hint(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert (project / "pipelines" / "mini.yaml").read_text() == SPEC
    assert not (project / "notebooks" / "x.ipynb").exists()


def test_json_output(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "step", "later", "--pipeline", "pipelines/mini.yaml", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["after"] == "first" and data["inputs"] == {"out": "first.out"}
    assert data["outputs"] == {"result": "later.json"}
    assert Path(data["notebook"]) == project / "notebooks" / "later.ipynb"
