"""Scheduled runs: ``--run-id`` is idempotent and ``--resume`` finishes a failed run in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MakeProject

from toolkit.cli.main import main


def spec_for(tmp_path: Path) -> str:
    return f"""
name: resumable
steps:
  - {{name: first, notebook: ../notebooks/ok.ipynb, outputs: {{out: first.txt}}}}
  - name: wobbly
    notebook: ../notebooks/flaky.ipynb
    parameters: {{marker: "{tmp_path / "marker"}"}}
    inputs: {{}}
    outputs: {{out: wobbly.txt}}
  - {{name: last, notebook: ../notebooks/ok.ipynb, inputs: {{inp: wobbly.out}}, outputs: {{out: last.txt}}}}
"""


def test_resume_reuses_succeeded_steps_and_reruns_the_rest(
    make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_project(spec_for(tmp_path), notebooks=("ok", "flaky"), store=True)
    assert main(["run", str(path), "--run-id", "nightly-1", "--json", "--quiet"]) == 1
    first = json.loads(capsys.readouterr().out)
    assert [s["status"] for s in first["steps"]] == ["succeeded", "failed", "skipped"]

    # The same scheduler id again is refused, and says how to resume.
    assert main(["run", str(path), "--run-id", "nightly-1"]) == 2
    assert "--resume nightly-1" in capsys.readouterr().err

    assert main(["run", str(path), "--resume", "nightly-1", "--json", "--quiet"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["run_dir"] == first["run_dir"]
    assert [s["status"] for s in second["steps"]] == ["cached", "succeeded", "succeeded"]
    assert second["steps"][0]["metrics"] == first["steps"][0]["metrics"]
    assert Path(second["run_dir"], "data", "last.txt").exists()


def test_resume_runs_again_a_succeeded_step_whose_notebook_changed_since(
    make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The notebook of a step that succeeded is edited before --resume: its outputs are not
    what it makes now, so it runs again (it used to be kept, and the run mixed two versions)."""
    path = make_project(spec_for(tmp_path), notebooks=("ok", "flaky"), store=True)
    assert main(["run", str(path), "--run-id", "edited-1", "--json", "--quiet"]) == 1
    capsys.readouterr()
    notebook = path.parents[1] / "notebooks" / "ok.ipynb"
    data = json.loads(notebook.read_text())
    data["cells"].append({"cell_type": "markdown", "metadata": {}, "source": ["edited"]})
    notebook.write_text(json.dumps(data))
    assert main(["run", str(path), "--resume", "edited-1", "--json", "--quiet"]) == 0
    steps = json.loads(capsys.readouterr().out)["steps"]
    assert [s["status"] for s in steps] == ["succeeded", "succeeded", "succeeded"]


def test_resume_of_an_unknown_run(
    make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_project(spec_for(tmp_path), notebooks=("ok", "flaky"))
    assert main(["run", str(path), "--resume", "nope"]) == 2
    assert "cannot resume run 'nope'" in capsys.readouterr().err


def test_resume_finishes_a_run_whose_failed_step_left_a_folder_output(
    make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = f"""
    name: folder
    steps:
      - name: train
        notebook: ../notebooks/flaky_folder.ipynb
        parameters: {{marker: "{tmp_path / "marker"}"}}
        outputs: {{out: model}}
    """
    path = make_project(spec, notebooks=("flaky_folder",))
    args = ["run", str(path), "--no-tracking", "--json", "--quiet"]
    assert main([*args, "--run-id", "nightly-1"]) == 1  # a step failure, not an internal error
    first = json.loads(capsys.readouterr().out)
    assert first["steps"][0]["attempts"] == 1 and first["steps"][0]["error"]
    model = Path(first["run_dir"], "data", "model")
    assert (model / "partial.txt").exists()

    assert main([*args, "--resume", "nightly-1"]) == 0
    assert sorted(p.name for p in model.iterdir()) == ["model.txt"]
