"""``-p`` values and spec parameter values through ``toolkit plan`` and ``check``: read as YAML 1.2
core scalars, and a value that is not a JSON type refused with exit 2 before anything runs.
``plan`` starts no kernel."""

from __future__ import annotations

import json

import pytest
from conftest import MakeProject

from toolkit.cli.main import main

SPEC = """
name: simple
steps:
  - name: a
    notebook: ../notebooks/ok.ipynb
    outputs: {out: a.txt}
"""


def planned_x(make_project: MakeProject, capsys: pytest.CaptureFixture[str], raw: str) -> object:
    assert main(["plan", str(make_project(SPEC)), "--json", "-p", f"x={raw}"]) == 0
    return json.loads(capsys.readouterr().out)["steps"][0]["parameters"]["x"]


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1e-3", 0.001),  # YAML 1.1: '1e-3'
        ("0123", 123),  # 1.1: 83
        ("1:30", "1:30"),  # 1.1: 90
        ("NO", "NO"),  # 1.1: False
        ("on", "on"),  # 1.1: True
        ("TRUE", True),
        ("#x", "#x"),  # 1.1 and 1.2: a comment, None
        ("a #b", "a #b"),  # a comment would cut it to 'a'
        ("", ""),
        ("~", None),
        ("[1, 2.5]", [1, 2.5]),
    ],
)
def test_p_values_are_yaml_1_2_scalars_and_comments_stay_text(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], raw: str, value: object
) -> None:
    assert planned_x(make_project, capsys, raw) == value


def test_a_p_date_is_planned_as_its_text(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(make_project(SPEC)), "-p", "x=2024-01-02"]) == 0
    assert "param  x = '2024-01-02'" in capsys.readouterr().out  # not datetime.date(2024, 1, 2)


@pytest.mark.parametrize("raw", ["!!binary aGVsbG8=", "!!set {a}", "{3: x}", "{null: 1, a: 2}"])
def test_a_p_value_that_is_not_json_is_refused_naming_the_option(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], raw: str
) -> None:
    assert main(["plan", str(make_project(SPEC)), "-p", f"a.x={raw}"]) == 2
    err = capsys.readouterr().err
    assert "-p a.x: " in err and "internal error" not in err


@pytest.mark.parametrize("command", ["plan", "check"])
def test_a_spec_mapping_with_mixed_keys_is_a_spec_error(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # It used to crash the cache key ("'<' not supported", exit 70) in plan and run.
    path = make_project(SPEC.replace("outputs:", "parameters: {x: {k: v, 3: x}}\n    outputs:"))
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path.name}: steps[0](a).parameters.x: key 3 is an int" in err
    assert "internal error" not in err
