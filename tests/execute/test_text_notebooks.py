"""Notebooks as reviewable text: a percent-format ``.py`` step runs, caches, takes parameters
from the spec and ``-p``, and shows in the report; an ``.ipynb`` paired with one runs its code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MakeProject

from toolkit.cli.main import main
from toolkit.core.settings import load_settings
from toolkit.specs.notebook_params import read_params

PERCENT = """\
# %% [markdown]
# A step written as text: reviewers read this diff, not JSON.

# %%
from pathlib import Path

from toolkit import step

# %% tags=["parameters"]
x = 1
out = "out.txt"

# %%
Path(out).write_text(f"x={x}")
step.log_metric("x", x)
"""

SPEC = """
name: texty
steps:
  - name: a
    notebook: ../notebooks/a.py
    parameters: {x: 2}
    outputs: {out: a.txt}
  - name: b
    notebook: ../notebooks/b.ipynb
    outputs: {out: b.txt}
"""


def summary_of(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code = main(["run", *argv, "--json", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_percent_script_step_runs_caches_and_takes_parameters(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_project(SPEC, notebooks=(), store=True)
    nbs = spec.parents[1] / "notebooks"
    (nbs / "a.py").write_text(PERCENT)
    # b.ipynb was never committed (pairing setups often ignore it): its .py twin is the code.
    (nbs / "b.py").write_text(PERCENT.replace("x = 1", "x = 7"))
    monkeypatch.chdir(spec.parents[1])

    assert read_params(nbs / "a.py").defaults == {"x": 1, "out": "out.txt"}
    first = summary_of(capsys, str(spec))
    steps = {s["name"]: s for s in first["steps"]}
    assert steps["a"]["metrics"] == {"x": 2} and steps["b"]["metrics"] == {"x": 7}
    run_dir = Path(first["run_dir"])
    assert (run_dir / "data" / "a.txt").read_text() == "x=2"
    executed = json.loads((run_dir / "notebooks" / "a.ipynb").read_text())
    tags = [c["metadata"].get("tags", []) for c in executed["cells"]]
    assert ["parameters"] in tags and ["injected-parameters"] in tags
    page = (run_dir / "report.html").read_text()
    assert 'href="notebooks/a.ipynb"' in page and "<code>x</code>" in page

    # The executed notebook and its HTML are logged for the step, as for any .ipynb step.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(load_settings(spec).tracking_uri)
    logged = {f.path for f in client.list_artifacts(steps["a"]["mlflow_run_id"], "notebook")}
    assert logged == {"notebook/a.ipynb", "notebook/a.html"}

    # Unchanged: reused (jupytext's random cell ids do not reach the cache key).
    again = summary_of(capsys, str(spec))
    assert {s["status"] for s in again["steps"]} == {"cached"}

    # -p overrides the spec; an edit to the text changes the key.
    third = summary_of(capsys, str(spec), "-p", "a.x=5")
    steps = {s["name"]: s for s in third["steps"]}
    assert steps["a"]["status"] == "succeeded" and steps["a"]["metrics"] == {"x": 5}
    assert steps["b"]["status"] == "cached"
    (nbs / "b.py").write_text(PERCENT.replace("x = 1", "x = 8"))
    fourth = summary_of(capsys, str(spec), "-p", "a.x=5")
    steps = {s["name"]: s for s in fourth["steps"]}
    assert steps["a"]["status"] == "cached"
    assert steps["b"]["status"] == "succeeded" and steps["b"]["metrics"] == {"x": 8}


def test_percent_script_without_parameters_cell_follows_the_ipynb_rules(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_project(
        "name: bare\nsteps:\n  - {name: a, notebook: ../notebooks/a.py, parameters: {x: 2}}\n",
        notebooks=(),
        store=True,
    )
    (spec.parents[1] / "notebooks" / "a.py").write_text(
        PERCENT.replace('# %% tags=["parameters"]', "# %%")
    )
    monkeypatch.chdir(spec.parents[1])
    # As papermill does with an .ipynb: the value is injected at the top, the script's own
    # `x = 1` wins, and `toolkit check` warns about exactly that.
    assert main(["run", str(spec), "--quiet"]) == 0
    assert "x=1" in capsys.readouterr().out
    assert main(["check", str(spec)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "a.py assigns 'x' unconditionally" in err


def test_new_step_format_py_scaffolds_a_percent_script(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_project(
        "name: mini\nsteps:\n  - name: first\n    notebook: ../notebooks/ok.ipynb\n"
        "    outputs: {out: first.txt}\n",
        name="mini",
    )
    monkeypatch.chdir(spec.parents[1])
    assert main(["new", "step", "summarise", "--format", "py"]) == 0
    assert "created notebooks/summarise.py" in capsys.readouterr().out
    text = (spec.parents[1] / "notebooks" / "summarise.py").read_text()
    assert '# %% tags=["parameters"]' in text and "kernelspec" in text
    assert "../notebooks/summarise.py" in spec.read_text()
    assert read_params(spec.parents[1] / "notebooks" / "summarise.py").names == {"out", "result"}
    assert main(["check", str(spec)]) == 0
