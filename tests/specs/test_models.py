from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.core.errors import ExitCode, SpecError
from toolkit.specs.load import load_spec
from toolkit.specs.step_models import ExternalInput, Output, SecretParam


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipelines" / "p.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


VALID = """
name: demo
parameters: {seed: 1, password: {secret: true, env: DEMO_PW}}
steps:
  - name: a
    notebook: ../notebooks/a.ipynb
    inputs:
      src: {path: ../data/in.csv, contract: raw}
    outputs:
      out: a.parquet
  - name: b
    notebook: ../notebooks/b.ipynb
    inputs: {x: a.out}
    outputs:
      y: {path: sub/b.csv, contract: b_out, on_fail: warn}
"""


def test_valid_spec_resolves_paths_against_the_spec_file(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, VALID))
    assert spec.name == "demo"
    assert spec.step("a").notebook == (tmp_path / "notebooks" / "a.ipynb").resolve()
    src = spec.step("a").inputs["src"]
    assert isinstance(src, ExternalInput)
    assert src.path == (tmp_path / "data" / "in.csv").resolve()
    assert spec.step("a").outputs["out"] == Output(path="a.parquet")
    assert spec.step("b").output_specs()["y"].on_fail == "warn"
    assert isinstance(spec.parameters["password"], SecretParam)
    assert spec.secret_names() == {"password"}
    assert len(spec.content_hash) == 64


def test_missing_spec_file_names_the_file_and_suggests(tmp_path: Path) -> None:
    write(tmp_path, VALID)
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "pipelines" / "q.yaml")
    assert "spec file not found" in str(info.value)
    assert "q.yaml" in str(info.value)
    assert "p.yaml" in str(info.value)  # did you mean
    assert info.value.exit_code == ExitCode.USAGE


def test_invalid_yaml_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nsteps:\n  - name: a\n    notebook: [unclosed\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "invalid YAML" in message
    assert "line" in message and str(path) in message


def test_unknown_key_is_named_with_its_location_and_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    notebook: ../notebooks/b.ipynb", "    notebok: x"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "unknown key 'notebok'" in message
    assert "steps[1](b)" in message
    assert "did you mean 'notebook'" in message


def test_two_steps_writing_one_output(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("sub/b.csv", "a.parquet"))
    with pytest.raises(SpecError, match=r"two steps write the same output 'a.parquet'.*a.out.*b.y"):
        load_spec(path)


def test_duplicate_step_names(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("- name: b", "- name: a"))
    with pytest.raises(SpecError, match="step names must be unique; repeated: a"):
        load_spec(path)


def test_a_step_name_too_long_for_a_file_name_is_a_spec_error(tmp_path: Path) -> None:
    """Names become file names (OS limit 255 bytes): a 250-character name passed, then failed
    with ENAMETOOLONG (exit 70) when its executed notebook was written."""
    path = write(tmp_path, VALID.replace("- name: b", "- name: " + "b" * 250))
    with pytest.raises(SpecError, match="at most 64 characters") as caught:
        load_spec(path)
    assert "steps[1]" in str(caught.value)
    assert load_spec(write(tmp_path, VALID.replace("- name: b", "- name: " + "b" * 64)))


@pytest.mark.parametrize("bad", ["../escape.csv", "/abs/out.csv"])
def test_outputs_must_stay_inside_the_run_folder(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SpecError, match="inside the run folder"):
        load_spec(write(tmp_path, VALID.replace("a.parquet", bad)))


def test_spec_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(write(tmp_path, "- just\n- a list\n"))


def test_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="missing required key 'steps'"):
        load_spec(write(tmp_path, "name: demo\n"))
