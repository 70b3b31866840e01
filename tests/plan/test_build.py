from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MakeProject

from toolkit.cli.main import main
from toolkit.core.errors import NotebookError, SpecError, UsageError
from toolkit.plan.build import build_plan
from toolkit.plan.parameters import parse_overrides
from toolkit.specs.load import load_spec

CHAIN = """
name: chain
parameters: {x: 10, unused_by_raises: 5}
steps:
  - name: first
    notebook: ../notebooks/ok.ipynb
    parameters: {label: first}
    outputs: {out: first.txt}
  - name: second
    notebook: ../notebooks/ok.ipynb
    parameters: {x: 20}
    inputs: {inp: first.out}
    outputs: {out: second.txt}
  - name: side
    notebook: ../notebooks/ok.ipynb
    outputs: {out: side.txt}
"""


def plan_for(path: Path, **kwargs):  # type: ignore[no-untyped-def]
    return build_plan(load_spec(path), path.parent / "run", **kwargs)


def test_parameters_merge_in_documented_precedence(make_project: MakeProject) -> None:
    path = make_project(CHAIN)
    plan = plan_for(path, overrides={"label": "cli", "second.x": 30})
    first, second = plan.step("first"), plan.step("second")
    # pipeline default < step parameter < -p override < resolved paths
    assert first.parameters["x"] == 10
    assert first.parameters["label"] == "cli"
    assert second.parameters["x"] == 30
    assert second.parameters["inp"] == str(path.parent / "run" / "data" / "first.txt")
    assert second.parameters["out"] == str(path.parent / "run" / "data" / "second.txt")
    assert "unused_by_raises" not in first.parameters  # ok.ipynb doesn't declare it


def test_order_follows_dependencies_then_spec_order(make_project: MakeProject) -> None:
    plan = plan_for(make_project(CHAIN))
    assert plan.names == ["first", "second", "side"]
    assert plan.step("second").upstream == {"first"}
    assert plan.downstream("first") == {"second"}
    assert plan.downstream("side") == set()


def test_cycle_names_the_steps(make_project: MakeProject) -> None:
    spec = CHAIN.replace("parameters: {label: first}", "inputs: {inp: second.out}")
    with pytest.raises(SpecError) as info:
        plan_for(make_project(spec))
    message = str(info.value)
    assert "cycle" in message and "first" in message and "second" in message


def test_input_that_nothing_produces_suggests_the_closest(make_project: MakeProject) -> None:
    with pytest.raises(SpecError) as info:
        plan_for(make_project(CHAIN.replace("inp: first.out", "inp: first.outt")))
    message = str(info.value)
    assert "'first.outt' is not produced by any step" in message
    assert "did you mean 'first.out'" in message
    assert "steps[1](second).inputs.inp" in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"lable": 1}, "did you mean 'label'"),
        ({"second.y": 1}, "has no parameter 'y'"),
        ({"secnd.x": 1}, "did you mean 'second'"),
        # Paths the pipeline wires: a -p for them used to be ignored silently.
        ({"first.out": "/tmp/x.csv"}, "'out' is a path step 'first' gets from the pipeline"),
        ({"inp": "elsewhere.csv"}, "'inp' is a path step 'second' gets from the pipeline"),
    ],
)
def test_unknown_override(make_project: MakeProject, override: dict, expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        plan_for(make_project(CHAIN), overrides=override)


def test_step_parameter_missing_from_notebook(make_project: MakeProject) -> None:
    with pytest.raises(SpecError, match="did you mean 'label'"):
        plan_for(make_project(CHAIN.replace("{label: first}", "{labl: first}")))


def test_missing_notebook(make_project: MakeProject) -> None:
    with pytest.raises(NotebookError, match=r"step 'side'.*notebook not found.*okk.ipynb"):
        plan_for(
            make_project(
                CHAIN.replace(
                    "ok.ipynb\n    outputs: {out: side", "okk.ipynb\n    outputs: {out: side"
                )
            )
        )


def test_notebook_without_parameters_cell_takes_values_as_papermill_does(
    make_project: MakeProject,
) -> None:
    spec = """
name: p
parameters: {x: 5, unrelated: 1}
steps:
  - {name: a, notebook: ../notebooks/no_parameters_cell.ipynb}
  - {name: b, notebook: ../notebooks/no_parameters_cell.ipynb, parameters: {x: 9, y: z}}
"""
    plan = plan_for(make_project(spec, notebooks=("no_parameters_cell",)))
    # Nothing declared, nothing passed: it runs as is. Explicit values are injected.
    assert plan.step("a").parameters == {}
    assert plan.step("b").parameters == {"x": 9, "y": "z"}


def test_guarded_defaults_count_as_declared(make_project: MakeProject, tmp_path: Path) -> None:
    spec = make_project(
        "name: p\nparameters: {config: 2, n: 3}\nsteps:\n  - {name: a, notebook: ../notebooks/g.ipynb}\n"
    )
    cells = [
        "try:\n    config\nexcept NameError:\n    config = {'a': 1}\n",
        "if 'n' not in globals():\n    n = 10\n",
    ]
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": c} for c in cells]}
    (spec.parents[1] / "notebooks" / "g.ipynb").write_text(json.dumps(nb))
    assert plan_for(spec).step("a").parameters == {"config": 2, "n": 3}


def test_step_kernel_env_and_cwd(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN_SRC", "s3cr3t")
    spec = make_project(
        """
name: p
steps:
  - name: a
    notebook: ../notebooks/ok.ipynb
    kernel: python3
    cwd: ..
    env: {MODE: fast, TOKEN: {secret: true, env: TOKEN_SRC}}
"""
    )
    plan = plan_for(spec)
    step = plan.step("a")
    assert step.kernel == "python3" and step.workdir == spec.parents[1]
    assert step.env == {"MODE": "fast", "TOKEN": "s3cr3t"}
    assert "s3cr3t" in plan.secret_values
    assert plan.to_dict()["steps"][0]["env"] == {"MODE": "fast", "TOKEN": "***"}


def test_unknown_kernel_lists_the_installed_ones(make_project: MakeProject) -> None:
    spec = "name: p\nsteps:\n  - {name: a, notebook: ../notebooks/ok.ipynb, kernel: my-laptop}\n"
    with pytest.raises(SpecError) as info:
        plan_for(make_project(spec))
    text = str(info.value)
    assert "unknown kernel 'my-laptop'" in text and "python3" in text
    assert "steps[0](a).kernel" in text


def test_env_value_that_is_not_a_string(make_project: MakeProject) -> None:
    spec = "name: p\nsteps:\n  - {name: a, notebook: ../notebooks/ok.ipynb, env: {N: 3}}\n"
    with pytest.raises(SpecError) as info:
        plan_for(make_project(spec))
    assert "steps[0](a).env.N" in str(info.value)
    assert "valid string" in str(info.value)


def test_only_takes_upstream_outputs_from_earlier_runs(
    make_project: MakeProject, tmp_path: Path
) -> None:
    earlier = tmp_path / "earlier.txt"
    earlier.write_text("x")
    plan = plan_for(
        make_project(CHAIN),
        only=["second"],
        previous_outputs=lambda step, out: earlier if (step, out) == ("first", "out") else None,
    )
    assert plan.names == ["second"]
    assert plan.step("second").parameters["inp"] == str(earlier)
    with pytest.raises(UsageError, match="no earlier run produced"):
        plan_for(make_project(CHAIN), only=["second"], previous_outputs=lambda s, o: None)


def test_secret_parameters_come_from_the_environment(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = CHAIN.replace(
        "parameters: {x: 10, unused_by_raises: 5}",
        "parameters: {label: {secret: true, env: MINI_SECRET}}",
    ).replace("parameters: {label: first}", "")
    monkeypatch.setenv("MINI_SECRET", "s3cr3t-value")
    plan = plan_for(make_project(spec))
    assert plan.step("first").parameters["label"] == "s3cr3t-value"
    assert "label" in plan.step("first").secret_params
    assert plan.secret_values == {"s3cr3t-value"}
    assert plan.to_dict()["steps"][0]["parameters"]["label"] == "***"
    monkeypatch.delenv("MINI_SECRET")
    with pytest.raises(UsageError, match="MINI_SECRET"):
        plan_for(make_project(spec))


def test_parse_overrides_types_values_like_yaml() -> None:
    assert parse_overrides(["a=3", "b=0.5", "c=text", "d=true", "e=", "f=1e-3", "g=on"]) == {
        "a": 3,
        "b": 0.5,
        "c": "text",
        "d": True,
        "e": "",
        "f": 0.001,  # YAML 1.2; 1.1 read '1e-3' as a string and 'on' as True
        "g": "on",
    }
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_overrides(["novalue"])


@pytest.mark.parametrize("output", [".", "./"])
def test_the_data_folder_itself_is_not_an_output(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], output: str
) -> None:
    spec = CHAIN.replace("side.txt", f'"{output}"')
    path = make_project(spec)
    for command in ("check", "plan", "run"):
        assert main([command, str(path)]) == 2, command
        err = capsys.readouterr().err
        assert "p.yaml" in err and "steps[2](side).outputs.out.path" in err, err
        assert "the run's data folder itself" in err


def test_an_output_inside_another_output_folder_is_refused(make_project: MakeProject) -> None:
    path = make_project(CHAIN.replace("side.txt", "first.txt/extra.csv"))
    with pytest.raises(
        SpecError,
        match=r"'first.txt/extra.csv' \(side.out\) is inside the output "
        r"folder 'first.txt' \(first.out\)",
    ):
        load_spec(path)
