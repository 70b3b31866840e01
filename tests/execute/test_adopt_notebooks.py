"""Notebooks written for plain papermill run unedited; the cache follows what a step reads.

The notebooks under ``tests/fixtures/notebooks/plain/`` take the shapes notebooks written for bare
papermill take (no parameters cell, no metadata, an old nbformat minor, a fixed working folder);
nothing in them knows about the toolkit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES

from toolkit.cli.main import main
from toolkit.commands.check import check_project

PUBLIC = """
name: plain
steps:
  - {name: no_parameters, notebook: ../notebooks/plain/no_parameters_cell.ipynb, parameters: {greeting: injected}}
  - {name: simple_execute, notebook: ../notebooks/plain/tagged_parameters.ipynb, parameters: {greeting: hello}}
  - {name: read_check, notebook: ../notebooks/plain/needs_its_cwd.ipynb, cwd: ../workdir}
  - {name: factorials, notebook: ../notebooks/plain/no_metadata.ipynb}
  - {name: no_language, notebook: ../notebooks/plain/no_metadata_parameters.ipynb, parameters: {n: 12}}
  - {name: display_ids, notebook: ../notebooks/plain/display_updates_v44.ipynb}
  - name: guarded
    notebook: ../notebooks/guarded_defaults.ipynb
    parameters: {config: {rows: 9}}
    outputs: {out: guarded.json}
"""


def _project(root: Path, spec: str) -> Path:
    shutil.copytree(FIXTURES / "notebooks", root / "notebooks")
    (root / "pipelines").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "adopt"\n[tool.toolkit]\n')
    path = root / "pipelines" / "p.yaml"
    path.write_text(spec)
    return path


def _run(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["run", str(path), "--no-tracking", "--json", "--quiet", *args])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    return report


def _outputs(notebook: str) -> str:
    nb = json.loads(Path(notebook).read_text())
    return "".join(
        "".join(o.get("text", "")) + json.dumps(o.get("data", {}))
        for c in nb["cells"]
        for o in c.get("outputs", [])
    )


@pytest.mark.slow
def test_notebooks_written_for_plain_papermill_run_unedited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _project(tmp_path, PUBLIC)
    (tmp_path / "workdir").mkdir()
    (tmp_path / "workdir" / "check.txt").write_text("read_check wants this in its cwd\n")

    # check: only the papermill notebook that overwrites what it is passed gets a warning.
    problems = check_project([spec])
    assert [(p.warning, p.message.split(":")[0]) for p in problems] == [
        (True, "step 'no_parameters'")
    ]

    report = _run(spec, capsys, "--workers", "2")
    steps = {s["name"]: s for s in report["steps"]}
    assert {s["status"] for s in steps.values()} == {"succeeded"}
    # No parameters cell: papermill's semantics, the value is injected at the top...
    nb = json.loads(Path(steps["no_parameters"]["notebook"]).read_text())
    assert "injected-parameters" in nb["cells"][0]["metadata"]["tags"]
    assert 'greeting = "injected"' in "".join(nb["cells"][0]["source"])
    # ...and the notebook's own `greeting = None` wins, as it does under bare papermill.
    assert "greeting is None" in _outputs(steps["no_parameters"]["notebook"])
    assert "greeting is hello" in _outputs(steps["simple_execute"]["notebook"])
    assert str(tmp_path / "workdir") in _outputs(steps["read_check"]["notebook"])
    assert "fib 89" in _outputs(steps["factorials"]["notebook"])
    # No metadata and a value to inject: papermill needs a language, the kernel's (it failed
    # with "No language found in notebook").
    assert "fib 144" in _outputs(steps["no_language"]["notebook"])
    assert "updated True" in _outputs(steps["display_ids"]["notebook"])
    # try/except NameError and `not in globals()` keep injected values and their own defaults,
    # and the laptop kernelspec name in the notebook does not matter.
    guarded = json.loads((Path(report["run_dir"]) / "data" / "guarded.json").read_text())
    assert guarded == {"config": {"rows": 9}, "label": "default"}


@pytest.mark.slow
def test_cache_follows_every_file_the_step_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _project(
        tmp_path,
        "name: reads\nsteps:\n  - {name: a, notebook: ../notebooks/reads_files.ipynb,"
        " parameters: {data_path: ../data/x.csv}}\n",
    )
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "x.csv"
    data.write_text("a\n1\n")
    lookup = tmp_path / "notebooks" / "lookup.txt"
    lookup.write_text("v1")
    loop = tmp_path / "notebooks" / "loop.txt"
    loop.symlink_to(loop)  # unreadable, even for root

    def plan_reason() -> str:
        assert main(["plan", str(spec), "--json"]) == 0
        step = json.loads(capsys.readouterr().out)["steps"][0]
        return ("reuse: " if step["cache"]["reuse"] else "run: ") + step["cache"]["reason"]

    first = _run(spec, capsys)["steps"][0]
    assert first["status"] == "succeeded"
    assert first["undeclared_outputs"] == [str(tmp_path / "notebooks" / "side_effect.txt")]
    assert first["reads"][str(lookup)]["sha256"]
    assert first["reads"][str(loop)] is None
    # A file the step read but that cannot be hashed: the cache does not vouch for the run.
    assert "cannot vouch" in plan_reason() and "notebooks/loop.txt" in plan_reason()
    loop.unlink()

    assert _run(spec, capsys)["steps"][0]["status"] == "succeeded"  # ran again, now cacheable
    assert plan_reason().startswith("reuse: ")
    assert _run(spec, capsys)["steps"][0]["status"] == "cached"

    lookup.write_text("v2")  # never mentioned by the spec: only the kernel's audit knows
    assert plan_reason() == "run: reads notebooks/lookup.txt, which changed"
    assert _run(spec, capsys)["steps"][0]["status"] == "succeeded"

    data.write_text("a\n1\n2\n")  # named by a plain string parameter
    assert plan_reason() == "run: reads data/x.csv, which changed"
