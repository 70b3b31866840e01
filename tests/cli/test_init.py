"""``toolkit init``: a working project in one command, and nothing ever overwritten."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest

from toolkit.cli.main import main


@pytest.fixture
def kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private user Jupyter folder: ``--user-kernel`` installs there, and runs find it."""
    data = tmp_path / "jupyter-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    return data / "kernels"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_init_creates_a_project_whose_example_runs(
    tmp_path: Path, kernels: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "Sales Forecast", "--user-kernel"]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "Sales Forecast"
    for rel in ("pyproject.toml", ".gitignore", "README.md", "notebooks/summarise.ipynb"):
        assert (root / rel).is_file(), rel
    for folder in ("notebooks", "pipelines", "expectations", "data"):
        assert (root / folder).is_dir()
    assert "toolkit run pipelines/example.yaml" in out and "uv lock" in out

    config = tomllib.loads((root / "pyproject.toml").read_text())
    assert config["project"]["name"] == "Sales Forecast"
    assert config["tool"]["toolkit"]["kernel"] == "sales-forecast"
    ignored = (root / ".gitignore").read_text().splitlines()
    assert {"runs/", "mlflow.db", "mlruns/", ".toolkit/"} <= set(ignored)
    # The kernel runs this interpreter, and the notebook and the settings name it.
    spec = json.loads((kernels / "sales-forecast" / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    assert spec["display_name"] == "Python (Sales Forecast)"
    notebook = json.loads((root / "notebooks" / "summarise.ipynb").read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "sales-forecast"

    monkeypatch.chdir(root)
    assert main(["check"]) == 0
    capsys.readouterr()
    code = main(["run", "pipelines/example.yaml", "--no-tracking", "--quiet", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    (step,) = summary["steps"]
    assert step["status"] == "succeeded"
    assert step["metrics"] == {"rows": 13.0, "kept": 12.0, "mean": pytest.approx(12.1333, abs=1e-3)}
    written = json.loads((Path(summary["run_dir"]) / "data" / "summary.json").read_text())
    assert written["rows"] == 13 and written["kept"] == 12
    assert summary["gates"]["passed"] is True


def test_a_folder_holding_a_project_is_refused_with_nothing_written(
    tmp_path: Path, kernels: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "proj"\n\n[tool.toolkit]\nkernel = "k"\n'
    )
    (root / "notes.txt").write_text("mine")
    before = _tree(root)
    monkeypatch.chdir(tmp_path)
    assert main(["init", "proj", "--user-kernel"]) == 2
    err = capsys.readouterr().err
    assert "already holds a toolkit project" in err and "--kernel-only" in err
    assert _tree(root) == before
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt", "pyproject.toml"]
    assert not kernels.exists()


def test_an_existing_python_project_gets_the_table_and_keeps_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    pyproject = (
        '[project]\nname = "shop"\ndependencies = ["pandas"]\n\n[tool.ruff]\nline-length = 99'
    )
    (tmp_path / "pyproject.toml").write_text(pyproject)  # no final newline
    (tmp_path / "README.md").write_text("# shop\n")
    (tmp_path / ".gitignore").write_text("*.log\nruns/\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "summarise.ipynb").write_text("{}")  # a file of the example
    monkeypatch.chdir(tmp_path)

    assert main(["init", "--no-kernel", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)

    text = (tmp_path / "pyproject.toml").read_text()
    assert text.startswith(pyproject + "\n")
    config = tomllib.loads(text)
    assert config["tool"]["toolkit"]["kernel"] == "python3"
    assert config["tool"]["ruff"] == {"line-length": 99}
    assert (tmp_path / "README.md").read_text() == "# shop\n"
    gitignore = (tmp_path / ".gitignore").read_text()
    assert gitignore.startswith("*.log\nruns/\n") and gitignore.splitlines().count("runs/") == 1
    assert "mlflow.db" in gitignore
    # The example is all or nothing: one of its files exists, so none is written.
    assert (tmp_path / "notebooks" / "summarise.ipynb").read_text() == "{}"
    assert not (tmp_path / "pipelines" / "example.yaml").exists()
    assert result["example"] is None and result["kernel"] is None
    assert sorted(Path(p).name for p in result["appended"]) == [".gitignore", "pyproject.toml"]
    assert [Path(p).name for p in result["kept"]] == ["README.md"]
    assert any("example pipeline was not created" in n for n in result["notes"])
    assert (tmp_path / "expectations").is_dir()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[project\nname = 1\n", "cannot be read as TOML"),
        ("tool = {ruff = {line-length = 99}}\n", "cannot add a [tool.toolkit] table"),
    ],
)
def test_a_pyproject_that_cannot_take_the_table_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
    content: str, message: str,
) -> None:  # fmt: skip
    (tmp_path / "pyproject.toml").write_text(content)
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--no-kernel"]) == 2
    assert message in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["pyproject.toml"]
    assert (tmp_path / "pyproject.toml").read_text() == content


def test_a_file_where_a_project_folder_goes_is_refused_with_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """It was an internal error (FileExistsError, exit 70) after part of the project was made."""
    (tmp_path / "notebooks").write_text("my notes")
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--no-kernel"]) == 2
    assert "notebooks exists and is not a folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notebooks"]
    assert (tmp_path / "notebooks").read_text() == "my notes"


def test_a_kernel_name_taken_by_another_python_is_refused(
    tmp_path: Path, kernels: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    theirs = kernels / "analysis"
    theirs.mkdir(parents=True)
    spec = {"argv": ["/opt/other/bin/python", "-m", "ipykernel_launcher"], "language": "python"}
    (theirs / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)
    assert main(["init", "analysis", "--user-kernel"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--kernel-name" in err
    assert not (tmp_path / "analysis").exists()
    assert json.loads((theirs / "kernel.json").read_text()) == spec

    assert main(["init", "analysis", "--user-kernel", "--kernel-name", "analysis-2"]) == 0
    assert (kernels / "analysis-2" / "kernel.json").is_file()
    assert 'kernel = "analysis-2"' in (tmp_path / "analysis" / "pyproject.toml").read_text()


def test_kernel_only_installs_a_cloned_projects_kernel(
    tmp_path: Path, kernels: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "proj", "--user-kernel"]) == 0
    # Another machine: a fresh Jupyter folder without the kernel.
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "elsewhere"))
    assert main(["init", "--kernel-only", "--user-kernel", "proj"]) == 0
    assert "kernel 'proj' installed (user)" in capsys.readouterr().out
    spec = json.loads((tmp_path / "elsewhere" / "kernels" / "proj" / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable

    (tmp_path / "plain").mkdir()
    assert main(["init", "--kernel-only", "plain"]) == 2
    assert "holds no toolkit project" in capsys.readouterr().err
