"""``toolkit new pipeline``: a spec drafted from notebooks written without the toolkit."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from toolkit.cli.main import main


def _notebook(path: Path, *cells: str, params: str | None = None, kernel: str = "python3") -> None:
    """A notebook like a person writes one: an optional cell tagged ``parameters``, then code."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}}
    )
    if params is not None:
        nb.cells.append(nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nb))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two notebooks passing a CSV through ``data/``, as plain papermill users chain them."""
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "proj"\n[tool.toolkit]\n')
    (root / "data" / "raw.csv").write_text("v\n0.1\n0.7\n0.9\n")
    _notebook(
        root / "notebooks" / "clean.ipynb",
        "import csv\nfrom pathlib import Path\n"
        "rows = [r for r in csv.DictReader(open(raw)) if float(r['v']) >= threshold]",
        "target = Path(clean_csv)\n"
        "target.write_text('v\\n' + ''.join(r['v'] + '\\n' for r in rows))",
        params='raw = "../data/raw.csv"\nclean_csv = "../data/clean.csv"\nthreshold = 0.5',
    )
    _notebook(
        root / "notebooks" / "Train Model.ipynb",
        "import json\nfrom toolkit import step\n"
        "values = [float(x) for x in open(data).read().split()[1:]]\n"
        "json.dump({'mean': sum(values) / len(values)}, open(model_out, 'w'))\n"
        "step.log_metric('n', len(values))",
        params='data = "../data/clean.csv"  # written by clean\n'
        'model_out = "../models/model.json"\nC = 1.0',
        kernel="my-laptop-env",
    )
    monkeypatch.chdir(root)
    return root


def _spec(root: Path, name: str) -> dict:
    return yaml.safe_load((root / "pipelines" / f"{name}.yaml").read_text())


@pytest.mark.slow
def test_drafts_a_wired_spec_that_runs(project: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["new", "pipeline", "flow", "--notebooks", "notebooks/clean.ipynb"]
    assert main([*argv, "notebooks/Train Model.ipynb"]) == 0
    out = capsys.readouterr().out
    assert _spec(project, "flow") == {
        "name": "flow",
        "steps": [
            {
                "name": "clean",
                "notebook": "../notebooks/clean.ipynb",
                "inputs": {"raw": {"path": "../data/raw.csv"}},
                "outputs": {"clean_csv": "clean.csv"},
            },
            {
                "name": "Train_Model",
                "notebook": "../notebooks/Train Model.ipynb",
                "inputs": {"data": "clean.clean_csv"},
                "outputs": {"model_out": "model.json"},
            },
        ],
    }
    text = (project / "pipelines" / "flow.yaml").read_text()
    assert "#   threshold: 0.5" in text and "#   C: 1.0" in text  # left to the notebooks
    assert "yaml-language-server" not in text  # the project has no schema file to name
    # What it guessed, from what, and what to check.
    assert "input  raw <- ../data/raw.csv: read by open(raw)" in out
    assert "output clean_csv -> clean.csv: written by target.write_text(" in out
    assert "input  data <- clean.clean_csv: read by open(data); clean.clean_csv writes it" in out
    assert "saved with kernel 'my-laptop-env'" in out
    assert "must write to the path its parameter receives" in out

    assert main(["check", "pipelines/flow.yaml"]) == 0
    capsys.readouterr()
    code = main(["run", "pipelines/flow.yaml", "--no-tracking", "--quiet", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert [s["status"] for s in summary["steps"]] == ["succeeded", "succeeded"]
    data = Path(summary["run_dir"]) / "data"
    assert (data / "clean.csv").read_text() == "v\n0.7\n0.9\n"
    assert json.loads((data / "model.json").read_text()) == {"mean": pytest.approx(0.8)}
    assert summary["steps"][1]["metrics"] == {"n": 2.0}


def test_guesses_without_code_evidence_are_marked_for_checking(
    project: Path, capsys: pytest.CaptureFixture
) -> None:
    _notebook(
        project / "notebooks" / "opaque.ipynb",
        "run_everything(lookup, report_path, scratch)",  # nothing says what is read or written
        params='lookup = "../data/raw.csv"\nreport_path = "../out/report.html"\n'
        'scratch = "tmp/scratch.bin"\nlabel = "v1.2"\nsource = "s3://bucket/x.csv"',
    )
    _notebook(
        project / "notebooks" / "also.ipynb",
        "print(open(src).read())",
        params='src = "../data/raw.csv"',
    )
    _notebook(project / "notebooks" / "plain.ipynb", "print('no parameters here')")
    (project / "pipelines").mkdir()
    (project / "pipelines" / "pipeline.schema.json").write_text("{}")
    nbs = ["notebooks/opaque.ipynb", "notebooks/also.ipynb", "notebooks/plain.ipynb"]
    assert main(["new", "pipeline", "p", "--notebooks", *nbs]) == 0
    out = capsys.readouterr().out
    steps = _spec(project, "p")["steps"]
    assert steps[0]["inputs"] == {"lookup": {"path": "../data/raw.csv"}}
    assert steps[0]["outputs"] == {"report_path": "report.html", "scratch": "scratch.bin"}
    # Both read the same existing file: an input of each, wired to nothing.
    assert steps[1]["inputs"] == {"src": {"path": "../data/raw.csv"}}
    assert steps[2] == {"name": "plain", "notebook": "../notebooks/plain.ipynb"}
    text = (project / "pipelines" / "p.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=pipeline.schema.json\n")
    assert "lookup: {path: ../data/raw.csv}  # check: guessed: the file exists" in text
    assert "report_path: report.html  # check: guessed from the name 'report_path'" in text
    assert "scratch: scratch.bin  # check: guessed: the file does not exist yet" in text
    assert "#   label: v1.2" in text and "#   source: s3://bucket/x.csv" in text
    assert out.count("[check]") == 3
    assert "opaque.lookup ('../data/raw.csv') as an input: guessed: the file exists" in out
    assert "plain: its notebook has no cell tagged 'parameters'; it runs as is" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["flow", "--notebooks", "notebooks/clean.ipynb", "notebooks/trian.ipynb"], "notebook not found"),
        (["taken", "--notebooks", "notebooks/clean.ipynb"], "already exists; toolkit new pipeline never overwrites"),
        (["bad name", "--notebooks", "notebooks/clean.ipynb"], "must be an identifier"),
        (["flow", "--notebooks"], "expected at least one argument"),
    ],
)  # fmt: skip
def test_refusals_exit_2_and_write_nothing(
    project: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    (project / "pipelines").mkdir()
    taken = project / "pipelines" / "taken.yaml"
    taken.write_text("name: taken\n")
    assert main(["new", "pipeline", *argv]) == 2
    assert message in capsys.readouterr().err
    assert [p.name for p in (project / "pipelines").iterdir()] == ["taken.yaml"]
    assert taken.read_text() == "name: taken\n"


def test_json_lists_the_guesses(project: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["new", "pipeline", "flow", "--json", "--notebooks", "notebooks/clean.ipynb"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["spec"] == str(project / "pipelines" / "flow.yaml")
    (step,) = data["steps"]
    assert step["inputs"] == {"raw": {"path": "../data/raw.csv"}}
    assert step["outputs"] == {"clean_csv": "clean.csv"}
    assert step["parameters"] == {"threshold": 0.5}
    assert {g["param"]: g["sure"] for g in step["guesses"]} == {"raw": True, "clean_csv": True}
