"""Hostile or mistaken input is refused at once with a clear error, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.cli.main import main
from toolkit.core.errors import UsageError
from toolkit.execute import RunRequest, run_pipeline

LAUGHS = (
    "name: lol\nsteps: []\nlol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10))
)
HOSTILE = {
    "billion-laughs": LAUGHS,
    "deep-flow-nesting": "name: deep\nsteps: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "deep-block-nesting": "name: deep\nx:\n"
    + "".join(" " * i + f"k{i}:\n" for i in range(1, 400))
    + " " * 400
    + "v: 1\n",
    "many-aliases": "name: many\nsteps: []\nbase: &b 1\nrefs: [" + ", ".join(["*b"] * 500) + "]\n",
    "oversized": "name: big\nsteps: []\npad: '" + "x" * (2 << 20) + "'\n",
}
BOUNDED = ("bounded YAML loader", "larger than")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mini"\n[tool.toolkit]\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("command", ["run", "plan", "check"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_spec_is_refused_by_the_bounded_loader(
    project: Path, kind: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hostile spec (alias bomb, deep nesting, huge file) is refused with exit 2 by the
    bounded YAML loader in run, plan and check, and nothing runs."""
    spec = project / "pipelines" / "hostile.yaml"
    spec.write_text(HOSTILE[kind])
    assert main([command, str(spec)]) == 2
    err = capsys.readouterr().err
    assert str(spec) in err and any(b in err for b in BOUNDED), err
    assert not (project / "runs").exists()


OUTPUT_MISTAKES = {
    "typo-in-key": ("{pth: out.csv}", "outputs.x.pth", "unknown key 'pth'"),
    "path-not-a-string": ("{path: [1, 2]}", "outputs.x.path", "valid string"),
    "bad-on-fail": ("{path: out.csv, on_fail: maybe}", "outputs.x.on_fail", "'error' or 'warn'"),
    "missing-path": ("{contract: c}", "outputs.x.path", "missing required key 'path'"),
}


@pytest.mark.parametrize("mistake", sorted(OUTPUT_MISTAKES))
def test_mistake_in_the_path_form_of_an_output_names_the_field(
    project: Path, mistake: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistake inside ``{path: ...}`` names the field inside it, not the plain-string form."""
    value, location, message = OUTPUT_MISTAKES[mistake]
    spec = project / "pipelines" / "p.yaml"
    spec.write_text(
        f"name: p\nsteps:\n  - name: s\n    notebook: nb.ipynb\n    outputs:\n      x: {value}\n"
    )
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert location in err and message in err, err
    assert "should be a valid string (and" not in err.split(location)[0]


@pytest.mark.parametrize("workers", ["0", "-3", "two"])
def test_workers_must_be_a_positive_count(
    project: Path, workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--workers 0``, ``-3`` or a non-number is a usage error (exit 2), not a run."""
    spec = project / "pipelines" / "p.yaml"
    spec.write_text("name: p\nsteps: []\n")
    assert main(["run", str(spec), f"--workers={workers}"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert not (project / "runs").exists()


def test_workers_zero_through_the_python_api(project: Path) -> None:
    """The same limit holds for callers of ``run_pipeline``."""
    spec = project / "pipelines" / "p.yaml"
    spec.write_text("name: p\nsteps: []\n")
    with pytest.raises(UsageError, match="workers must be at least 1"):
        run_pipeline(RunRequest(spec, workers=0))
