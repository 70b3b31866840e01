from __future__ import annotations

import json

import pytest
from conftest import MakeProject

from toolkit.commands.check import check_project
from toolkit.core.errors import SpecError
from toolkit.execute import RunRequest, prepare

GOOD = """
name: p
parameters: {x: 2}
steps:
  - name: a
    notebook: ../notebooks/ok.ipynb
    outputs: {out: a.txt}
"""


def test_clean_project_has_no_problems(make_project: MakeProject) -> None:
    assert check_project([make_project(GOOD)]) == []


def test_two_specs_with_one_name_are_a_warning(make_project: MakeProject) -> None:
    """A copied spec whose name was not changed would share the first one's runs, run lock
    and MLflow experiment: check says so, naming both files (the project still passes)."""
    first = make_project(GOOD)
    copy = make_project(GOOD, name="copy")
    other = make_project(GOOD.replace("name: p", "name: other"), name="other")
    problems = check_project([first, copy, other])
    assert [(p.spec, p.warning) for p in problems] == [(copy, True)]
    assert f"pipeline name 'p' is also the name of {first}" in problems[0].message
    assert "`name:` field" in (problems[0].hint or "")


def test_reports_every_problem_with_hints(make_project: MakeProject) -> None:
    spec = (
        GOOD
        + """  - name: b
    notebook: ../notebooks/ok.ipynb
    parameters: {lable: z}
    outputs: {outt: b.txt}
  - name: c
    notebook: ../notebooks/no_parameters_cell.ipynb
"""
    )
    problems = check_project([make_project(spec, notebooks=("ok", "no_parameters_cell"))])
    text = "\n".join(str(p) for p in problems)
    assert len(problems) == 2
    assert "parameter 'lable'" in text and "did you mean 'label'" in text
    assert "output 'outt'" in text and "did you mean 'out'" in text


def test_warns_only_where_the_notebook_overwrites_an_injected_value(
    make_project: MakeProject,
) -> None:
    spec = make_project(
        """
name: p
steps:
  - {name: a, notebook: ../notebooks/no_parameters_cell.ipynb, parameters: {x: 9}}
  - {name: b, notebook: ../notebooks/g.ipynb, parameters: {config: 1, n: 2, path: p}}
""",
        notebooks=("no_parameters_cell",),
    )
    cells = [
        "try:\n    config\nexcept NameError:\n    config = {'a': 1}\n",
        "if 'n' not in globals():\n    n = 10\n",
        "path = str(path)\n",
    ]
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": c} for c in cells]}
    (spec.parents[1] / "notebooks" / "g.ipynb").write_text(json.dumps(nb))
    problems = check_project([spec])
    assert len(problems) == 1 and problems[0].warning
    assert "step 'a': cell 0 of no_parameters_cell.ipynb assigns 'x'" in problems[0].message
    assert "except NameError" in (problems[0].hint or "")


def test_pipeline_parameter_nobody_declares(make_project: MakeProject) -> None:
    problems = check_project([make_project(GOOD.replace("{x: 2}", "{y: 2}"))])
    assert [p.message for p in problems] == [
        "pipeline parameter 'y' is declared by no step's notebook"
    ]


def test_invalid_spec_is_a_problem_not_a_crash(make_project: MakeProject) -> None:
    problems = check_project([make_project("name: p\nsteps: []\n")])
    assert len(problems) == 1 and "steps" in problems[0].message


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ("acc >>= 1", "expected a number or a metric, got '>='"),
        ("val != 3", "got '!='"),
        ("val-loss <= 1", "- '`val-loss` <= 1'"),
        ("val/auc >= 0.9", "- '`val/auc` >= 0.9'"),
    ],
)
def test_check_refuses_gates_that_run_refuses(
    make_project: MakeProject, check: str, expected: str
) -> None:
    spec = make_project(GOOD + f"gates:\n  step: a\n  checks: [x >= 1, '{check}']\n")
    problems = check_project([spec])
    assert len(problems) == 1
    assert str(problems[0]).startswith(f"{spec}: gates.checks[1]: bad gate {check!r}")
    assert expected in problems[0].message
    with pytest.raises(SpecError) as err:  # what run and plan use before anything executes
        prepare(RunRequest(spec_path=spec), run_id="r")
    assert err.value.location == "gates.checks[1]" and err.value.path == spec


def test_check_passes_a_metric_name_in_backticks(make_project: MakeProject) -> None:
    assert (
        check_project([make_project(GOOD + "gates: {step: a, checks: ['`val-loss` <= 1']}\n")])
        == []
    )


def test_check_names_the_line_of_a_duplicate_key(make_project: MakeProject) -> None:
    spec = make_project(GOOD + "    notebook: ../notebooks/other.ipynb\n")
    [problem] = check_project([spec])
    assert str(problem).startswith(f"{spec}: line 8: duplicate key 'notebook' (first on line 6)")


def test_check_names_the_field_of_a_value_that_is_not_json(make_project: MakeProject) -> None:
    [problem] = check_project([make_project(GOOD.replace("{x: 2}", "{x: !!set {a}}"))])
    assert problem.message.startswith("parameters.x: a set (!!set) cannot be a notebook parameter")
