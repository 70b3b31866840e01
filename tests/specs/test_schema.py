"""``toolkit schema``: the JSON Schema editors validate specs with, committed and kept current."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from toolkit.cli.main import main
from toolkit.specs.load import load_spec
from toolkit.specs.schema import REGENERATE, SCHEMA_FILE, schema_text

SCHEMA = REPO / "pipelines" / SCHEMA_FILE
HEADER = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")
# Every spec the project ships or tests with: the examples, the benchmarks', the fixtures'.
SPECS = sorted(
    [
        *(REPO / "pipelines").glob("*.yaml"),
        *(REPO / "benchmarks").rglob("*.yaml"),
        # (not tests/fixtures/models: an MLflow model folder holds conda.yaml and python_env.yaml)
        *(REPO / "tests" / "fixtures" / "pipelines").rglob("*.yaml"),
    ]
)


def test_committed_schema_is_current() -> None:
    assert SCHEMA.is_file(), f"missing {SCHEMA}; generate it: {REGENERATE}"
    assert SCHEMA.read_text(encoding="utf-8") == schema_text(), (
        f"{SCHEMA.relative_to(REPO)} is stale (toolkit/specs/*models.py changed); regenerate it: "
        f".venv/bin/{REGENERATE}"
    )


def _fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    models = {"Pipeline": schema, **schema["$defs"]}
    return {
        f"{model}.{name}": prop
        for model, body in models.items()
        for name, prop in body.get("properties", {}).items()
    }


def test_every_field_has_a_description_and_an_example() -> None:
    schema = json.loads(schema_text())
    fields = _fields(schema)
    assert {"Pipeline.steps", "Step.notebook", "Output.contract", "GatesSpec.checks"} <= set(fields)
    assert "Pipeline.source" not in fields and "Pipeline.content_hash" not in fields  # internal
    undocumented = sorted(name for name, prop in fields.items() if not prop.get("description"))
    no_example = sorted(name for name, prop in fields.items() if not prop.get("examples"))
    assert undocumented == [], "add Field(description=...) in toolkit/specs/*models.py"
    assert no_example == [], "add Field(examples=[...]) in toolkit/specs/*models.py"
    # Typos are refused by editors as they are by `toolkit check`.
    for model, body in {"Pipeline": schema, **schema["$defs"]}.items():
        assert body["additionalProperties"] is False, model


def test_shipped_specs_name_the_schema_on_their_first_line() -> None:
    assert len(SPECS) >= 4
    for spec in SPECS:
        first = spec.read_text(encoding="utf-8").splitlines()[0]
        match = HEADER.match(first)
        assert match, f"{spec}: first line must be '# yaml-language-server: $schema=...'"
        assert (spec.parent / match.group(1)).resolve() == SCHEMA, spec


def test_specs_validate_and_an_unknown_key_is_flagged(tmp_path: Path) -> None:
    for spec in SPECS:
        load_spec(spec)  # the toolkit accepts them: the schema must too
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        (REPO / "tests" / "fixtures" / "pipelines" / "forked.yaml")
        .read_text(encoding="utf-8")
        .replace("    notebook: ../notebooks/joins.ipynb", "    notbook: ../notebooks/joins.ipynb")
    )
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--schemafile", str(SCHEMA), *map(str, SPECS), str(typo)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    # Only the typo fails, and the message names the key.
    assert "'notbook' was unexpected" in out, out
    assert str(typo) in out
    assert not [str(s) for s in SPECS if str(s) in out], out


def test_toolkit_check_flags_the_same_unknown_key_with_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "pipelines" / "typo.yaml"
    typo.parent.mkdir()
    typo.write_text("name: t\nsteps:\n  - {name: a, notbook: a.ipynb}\n")
    assert main(["check", str(typo)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'notbook'" in err and "did you mean 'notebook'" in err, err


def test_schema_command_writes_the_file_or_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pipeline.schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == schema_text()
    capsys.readouterr()
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schema_text()


def test_schema_into_a_missing_folder_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "pipeline.schema.json"
    assert main(["schema", "-o", str(target)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not target.parent.exists()


def test_toolkit_init_ships_the_schema_its_example_spec_names(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    assert main(["init", str(project), "--no-kernel"]) == 0
    spec = project / "pipelines" / "example.yaml"
    match = HEADER.match(spec.read_text(encoding="utf-8").splitlines()[0])
    assert match, spec.read_text(encoding="utf-8")[:200]
    schema = (spec.parent / match.group(1)).resolve()
    assert schema.read_text(encoding="utf-8") == schema_text()
    load_spec(spec)
