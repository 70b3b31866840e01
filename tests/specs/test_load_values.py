"""Spec values as the loader reads them: YAML 1.2 core scalars, JSON-typed parameters, and no
key written twice. No notebook is read and no kernel started."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from toolkit.core.errors import ExitCode, SpecError
from toolkit.specs.load import load_spec
from toolkit.specs.yaml12 import load_core

STEPS = """
steps:
  - name: a
    notebook: ../notebooks/a.ipynb
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipelines" / "p.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def params_of(tmp_path: Path, body: str) -> dict[str, object]:
    return dict(load_spec(write(tmp_path, f"name: p\nparameters:\n{body}{STEPS}")).parameters)


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("1e-3", 0.001),  # YAML 1.1: the string '1e-3'
        ("-2.5E+3", -2500.0),
        ("0123", 123),  # 1.1: 83, octal
        ("0o17", 15),
        ("0x1F", 31),
        ("1:30", "1:30"),  # 1.1: 90, base 60
        ("1_000", "1_000"),  # 1.1: 1000
        ("NO", "NO"),  # 1.1: False
        ("on", "on"),  # 1.1: True
        ("yes", "yes"),
        ("True", True),
        ("FALSE", False),
        ("~", None),
        ("null", None),
        ("None", "None"),
        ("2024-01-02", "2024-01-02"),  # 1.1: datetime.date
        ("2024-01-02 10:00:00", "2024-01-02 10:00:00"),
        ("'0123'", "0123"),
    ],
)
def test_plain_scalars_follow_the_yaml_1_2_core_schema(
    tmp_path: Path, written: str, value: object
) -> None:
    got = params_of(tmp_path, f"  v: {written}\n")["v"]
    assert got == value and type(got) is type(value)


def test_infinity_and_nan_are_floats(tmp_path: Path) -> None:
    got = params_of(tmp_path, "  a: .inf\n  b: -.Inf\n  c: .NaN\n")
    assert got["a"] == float("inf") and got["b"] == float("-inf")
    assert got["c"] != got["c"]  # NaN


def test_the_default_pyyaml_loader_is_left_alone() -> None:
    # The 1.2 resolvers live on subclasses: PyYAML's own SafeLoader still reads YAML 1.1.
    assert yaml.safe_load("on") is True and yaml.safe_load("1e-3") == "1e-3"
    assert load_core("on") == "on" and load_core("1e-3") == 0.001


def test_explicit_timestamps_become_iso_strings(tmp_path: Path) -> None:
    got = params_of(tmp_path, "  d: !!timestamp 2024-01-02\n  t: !!timestamp 2024-01-02 10:30:00\n")
    assert got == {"d": "2024-01-02", "t": "2024-01-02T10:30:00"}


def test_a_dated_step_parameter_and_secret_value_are_strings(tmp_path: Path) -> None:
    text = (
        "name: p\nparameters: {s: {secret: true, value: !!timestamp 2024-01-02}}\n"
        "steps:\n  - {name: a, notebook: a.ipynb, parameters: {d: !!timestamp 2024-05-06}}\n"
    )
    spec = load_spec(write(tmp_path, text))
    assert spec.steps[0].parameters == {"d": "2024-05-06"}
    assert spec.parameters["s"].value == "2024-01-02"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "where", "what"),
    [
        ("  s: !!set {a, b}\n", "parameters.s", "a set"),
        ("  b: !!binary aGVsbG8=\n", "parameters.b", "binary data"),
        ("  m: {k: v, 3: x}\n", "parameters.m", "key 3 is an int"),
        ("  m: {null: 1, a: 2}\n", "parameters.m", "key None is null"),
        ("  l: [1, {x: [!!binary aGVsbG8=]}]\n", "parameters.l[1].x[0]", "binary data"),
        ("  o: !!omap [{a: 1}]\n", "parameters.o[0]", "pair list"),
    ],
)
def test_values_that_are_not_json_types_are_refused_naming_the_field(
    tmp_path: Path, body: str, where: str, what: str
) -> None:
    path = write(tmp_path, f"name: p\nparameters:\n{body}{STEPS}")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert err.value.exit_code == ExitCode.USAGE
    assert err.value.path == path.resolve()
    assert err.value.location == where
    assert what in err.value.message


def test_a_step_parameter_refused_is_named_with_its_step(tmp_path: Path) -> None:
    text = "name: p\nsteps:\n  - {name: a, notebook: a.ipynb, parameters: {m: {1: x}}}\n"
    with pytest.raises(SpecError) as err:
        load_spec(write(tmp_path, text))
    assert err.value.location == "steps[0](a).parameters.m"
    assert err.value.hint is not None and "'1'" in err.value.hint


def test_a_key_written_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    text = "name: p\nsteps:\n  - name: a\n    notebook: a.ipynb\n    notebook: b.ipynb\n"
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert err.value.location == "line 5"
    assert "duplicate key 'notebook' (first on line 4)" in err.value.message
    assert str(path.resolve()) in str(err.value)


def test_duplicates_are_found_in_flow_mappings_and_parameters(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="duplicate key 'x'"):
        params_of(tmp_path, "  x: 1\n  y: {a: 1}\n  x: 2\n")
    with pytest.raises(SpecError, match="duplicate key 'a'"):
        params_of(tmp_path, "  y: {a: 1, a: 2}\n")


def test_a_merge_key_may_still_be_overridden(tmp_path: Path) -> None:
    # '<<' keys arrive at construction: overriding one is not a duplicate.
    text = (
        "name: p\nsteps:\n  - &a {name: a, notebook: a.ipynb, retries: 1}\n  - {<<: *a, name: b}\n"
    )
    spec = load_spec(write(tmp_path, text))
    assert [(s.name, s.retries) for s in spec.steps] == [("a", 1), ("b", 1)]
