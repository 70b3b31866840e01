"""``toolkit new step`` without kernels: the spec edit keeps the file, the notebook is wired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import MakeProject

from toolkit.commands.check import check_spec
from toolkit.commands.new_step import (
    NewStepRequest,
    ScaffoldError,
    _identifier,
    insert_step_text,
    new_step,
)
from toolkit.specs.load import load_spec
from toolkit.specs.notebook_params import read_params

ENTRY = {
    "name": "report",
    "notebook": "../notebooks/report.ipynb",
    "inputs": {"out": "a.out"},
    "outputs": {"result": "report.json"},
}

COMMENTED = """\
# A pipeline with comments everywhere.
name: p   # the name
parameters:
  x: 1    # a default

steps:
  # the first step
  - name: a
    notebook: ../notebooks/ok.ipynb
    outputs:
      out: {path: a.txt}   # trailing comment

  # the second step
  - name: b
    notebook: ../notebooks/ok.ipynb
    inputs:
      inp: a.out
    outputs: {out: b.txt}

# after the steps
gates:
  step: b
  checks: [x >= 0]
"""


def _check_insert(text: str, after: str, index: int) -> str:
    new = insert_step_text(text, after, ENTRY, path=Path("p.yaml"))
    old_lines, new_lines = text.splitlines(), new.splitlines()
    # Only lines were added: every old line is still there, in order.
    it = iter(new_lines)
    assert all(any(line == candidate for candidate in it) for line in old_lines)
    assert yaml.safe_load(new)["steps"][index] == ENTRY
    return new


def test_insert_after_middle_step_keeps_comments_and_blank_line_style() -> None:
    new = _check_insert(COMMENTED, "a", 1)
    assert "      out: {path: a.txt}   # trailing comment\n\n  - name: report\n" in new
    assert "      result: report.json\n\n  # the second step\n" in new


def test_insert_after_last_step_goes_before_the_next_section() -> None:
    new = _check_insert(COMMENTED, "b", 2)
    assert "    outputs: {out: b.txt}\n\n  - name: report\n" in new
    assert new.index("- name: report") < new.index("# after the steps")


def test_insert_in_a_compact_file_without_blank_lines_or_final_newline() -> None:
    text = (
        "name: p\nsteps:\n- name: a\n  notebook: x.ipynb\n  outputs:\n    out: a.txt\n"
        "- name: b\n  notebook: x.ipynb"
    )
    new = _check_insert(text, "b", 2)
    assert new.endswith(
        "  notebook: x.ipynb\n- name: report\n  notebook: ../notebooks/report.ipynb\n"
        "  inputs:\n    out: a.out\n  outputs:\n    result: report.json\n"
    )
    _check_insert(text, "a", 1)


def test_insert_follows_the_files_indentation() -> None:
    text = "name: p\nsteps:\n    -   name: a\n        notebook: x.ipynb\n        outputs:\n            out: a.txt\n"
    new = _check_insert(text, "a", 1)
    assert "\n    -   name: report\n        notebook:" in new
    assert "\n        inputs:\n            out: a.out\n" in new


def test_flow_style_steps_are_refused_with_the_lines_to_add() -> None:
    text = "name: p\nsteps: [{name: a, notebook: x.ipynb}]\n"
    with pytest.raises(ScaffoldError, match="not a block list") as info:
        insert_step_text(text, "a", ENTRY, path=Path("p.yaml"))
    assert "name: report" in str(info.value)


def test_names_yaml_would_misread_are_quoted() -> None:
    entry = {**ENTRY, "name": "yes"}
    new = insert_step_text(COMMENTED, "b", entry, path=Path("p.yaml"))
    assert yaml.safe_load(new)["steps"][2]["name"] == "yes"


SPEC = """\
# Two steps; comments must survive.
name: p
steps:
  - name: a
    notebook: ../notebooks/ok.ipynb   # writes out.txt
    outputs:
      out: a.txt
"""


def _project(make_project: MakeProject, monkeypatch: pytest.MonkeyPatch) -> Path:
    spec = make_project(SPEC)
    monkeypatch.chdir(spec.parents[1])
    return spec


def test_new_step_writes_a_wired_notebook_and_a_spec_that_checks(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path = _project(make_project, monkeypatch)
    result = new_step(NewStepRequest(name="report"))
    root = spec_path.parents[1]
    assert result.notebook == root / "notebooks" / "report.ipynb"
    assert result.after == "a"
    assert result.inputs == {"out": "a.out"}
    assert result.outputs == {"result": "report.json"}

    text = spec_path.read_text()
    assert text.startswith(SPEC)  # appended after the last step, nothing else touched
    spec = load_spec(spec_path)
    assert spec.step_names == ["a", "report"]
    params = read_params(result.notebook)
    assert params.names == {"out", "result"}
    assert params.defaults["result"] == "../runs/dev/report.json"
    assert params.defaults["out"] == "../runs/dev/a.txt"
    nb = json.loads(result.notebook.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"  # the upstream notebook's kernel
    source = "".join("".join(c["source"]) for c in nb["cells"])
    assert "step.log_metric(" in source and "step.recorded()" in source
    assert check_spec(spec_path) == []
    assert "created notebooks/report.ipynb" in result.to_text(root)


def test_after_a_named_step_and_unique_output_path(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path = _project(make_project, monkeypatch)
    new_step(NewStepRequest(name="b", pipeline="p"))
    result = new_step(NewStepRequest(name="c", pipeline="pipelines/p.yaml", after="a"))
    assert load_spec(spec_path).step_names == ["a", "c", "b"]
    assert result.inputs == {"out": "a.out"}
    assert check_spec(spec_path) == []


@pytest.mark.parametrize(
    ("request_kw", "message", "hint"),
    [
        ({"name": "a"}, "already has a step named 'a'", "pick another name"),
        ({"name": "ok"}, "notebook notebooks/ok.ipynb already exists", "pick another"),
        ({"name": "r", "after": "aa"}, "has no step 'aa'", "did you mean 'a'?"),
        ({"name": "r", "pipeline": "pp"}, "no pipeline 'pp'", "did you mean 'p'?"),
        ({"name": "r", "pipeline": "pipelines/pp.yaml"}, "no pipeline", "did you mean 'p'?"),
        ({"name": "1x"}, "must be an identifier", None),
    ],
)
def test_refusals_change_nothing(
    make_project: MakeProject,
    monkeypatch: pytest.MonkeyPatch,
    request_kw: dict[str, str],
    message: str,
    hint: str | None,
) -> None:
    spec_path = _project(make_project, monkeypatch)
    before = spec_path.read_text()
    with pytest.raises(ScaffoldError, match=message) as info:
        new_step(NewStepRequest(**request_kw))
    assert info.value.exit_code == 2
    if hint:
        assert hint in (info.value.hint or "")
    assert spec_path.read_text() == before
    assert sorted(p.name for p in (spec_path.parents[1] / "notebooks").iterdir()) == ["ok.ipynb"]


def test_several_pipelines_need_pipeline(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(make_project, monkeypatch)
    make_project(SPEC.replace("name: p", "name: q"), name="q")
    with pytest.raises(ScaffoldError, match=r"several pipelines \(p, q\)"):
        new_step(NewStepRequest(name="r"))


def test_parameter_names_are_identifiers_the_template_does_not_use() -> None:
    assert _identifier("raw-data", set()) == "raw_data"
    assert _identifier("1st", set()) == "_1st"
    assert _identifier("step", set()) == "step_2"  # `step` is the imported API module
    assert _identifier("out", {"out"}) == "out_2"
