"""The content-addressed step cache: each kind of change re-runs exactly the steps it affects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeProject

from toolkit.cli.main import main

SPEC = """
name: cached
steps:
  - name: a
    notebook: ../notebooks/ok.ipynb
    parameters: {label: a}
    inputs: {inp: {path: ../data/seed.txt}}
    outputs: {out: a.txt}
  - {name: b, notebook: ../notebooks/b.ipynb, parameters: {label: b}, inputs: {inp: a.out}, outputs: {out: b.txt}}
  - {name: x, notebook: ../notebooks/ok.ipynb, parameters: {label: x}, outputs: {out: x.txt}}
"""


def _run(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["run", str(path), "--no-tracking", "--json", "--quiet", *args])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    return report


def _statuses(report: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in report["steps"]}


def _plan(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    assert main(["plan", str(path), "--json", *args]) == 0
    data = json.loads(capsys.readouterr().out)
    return {s["name"]: s["cache"]["reason"] for s in data["steps"] if not s["cache"]["reuse"]}


def _edit_notebook(path: Path) -> None:
    nb = json.loads(path.read_text())
    nb["cells"].append(
        {"id": "edited", "cell_type": "code", "metadata": {}, "source": "# edited", "outputs": []}
    )
    nb["cells"][-1]["execution_count"] = None
    path.write_text(json.dumps(nb))


@pytest.fixture
def project(make_project: MakeProject) -> Path:
    path = make_project(SPEC, notebooks=("ok",))
    root = path.parents[1]
    shutil.copy(root / "notebooks" / "ok.ipynb", root / "notebooks" / "b.ipynb")
    (root / "data").mkdir()
    (root / "data" / "seed.txt").write_text("seed;")
    return path


def test_each_change_reruns_exactly_the_affected_steps(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project.parents[1]
    first = _run(project, capsys)
    assert set(_statuses(first).values()) == {"succeeded"}

    # Nothing changed: nothing runs, and the new run folder still holds every output.
    again = _run(project, capsys)
    assert _statuses(again) == {"a": "cached", "b": "cached", "x": "cached"}
    assert again["steps"][0]["reason"] == f"cached from run {first['run_id']}"
    assert again["steps"][0]["metrics"] == first["steps"][0]["metrics"]
    for name in ("a", "b", "x"):
        copy = Path(again["run_dir"], "data", f"{name}.txt")
        assert copy.read_text() == Path(first["run_dir"], "data", f"{name}.txt").read_text()

    # Outputs of a notebook never change the key; only its code does.
    nb = json.loads((root / "notebooks" / "b.ipynb").read_text())
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "noise"}]
    nb["cells"][0]["execution_count"] = 7
    (root / "notebooks" / "b.ipynb").write_text(json.dumps(nb))
    assert _plan(project, capsys) == {}

    # Upstream data: the external input of a changes, so a and b run; x is untouched.
    (root / "data" / "seed.txt").write_text("other seed;")
    assert _plan(project, capsys) == {"a": "input 'inp' changed", "b": "upstream step 'a' runs"}
    assert _statuses(_run(project, capsys)) == {"a": "succeeded", "b": "succeeded", "x": "cached"}

    # Notebook code: only the edited step (and what depends on it) runs.
    _edit_notebook(root / "notebooks" / "b.ipynb")
    assert _plan(project, capsys) == {"b": "notebook changed"}
    assert _statuses(_run(project, capsys)) == {"a": "cached", "b": "succeeded", "x": "cached"}

    # A parameter of one step.
    assert _statuses(_run(project, capsys, "-p", "x.label=y")) == {
        "a": "cached",
        "b": "cached",
        "x": "succeeded",
    }


def test_damaged_outputs_and_force_rerun_the_step(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _run(project, capsys)
    again = _run(project, capsys)

    # A deleted output (in the newest run that holds it) makes its step run again.
    Path(again["run_dir"], "data", "b.txt").unlink()
    reasons = _plan(project, capsys)
    assert reasons["b"].startswith("cached output 'out' was deleted or changed")
    third = _run(project, capsys)
    assert _statuses(third) == {"a": "cached", "b": "succeeded", "x": "cached"}

    # A corrupted output too. Re-running a writes the same bytes, so b stays cached: keys
    # follow content, not timestamps.
    Path(third["run_dir"], "data", "a.txt").write_text("garbage")
    fourth = _run(project, capsys)
    assert _statuses(fourth) == {"a": "succeeded", "b": "cached", "x": "cached"}
    assert Path(fourth["run_dir"], "data", "a.txt").read_text() == "seed;a:1;"
    assert Path(first["run_dir"], "data", "x.txt").read_text() == "x:1;"

    # --force STEP runs that step; --force alone would run them all.
    forced = _run(project, capsys, "--force", "x")
    assert _statuses(forced) == {"a": "cached", "b": "cached", "x": "succeeded"}
    assert _plan(project, capsys, "--force") == {
        "a": "--force",
        "b": "upstream step 'a' runs",
        "x": "--force",
    }
    assert main(["run", str(project), "--force", "nope"]) == 2
    assert "--force: no step named 'nope'" in capsys.readouterr().err


def test_the_cache_follows_the_newest_copies_of_reused_outputs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _run(project, capsys)
    again = _run(project, capsys)
    assert set(_statuses(again).values()) == {"cached"}

    # The entries were stored by the first run; the re-run's copies are what they follow now.
    shutil.rmtree(first["run_dir"])
    assert _plan(project, capsys) == {}

    # Without the index of copies the entries point at the deleted folder: a miss, never a hit
    # on files nobody checked.
    cache = Path(again["run_dir"]).parents[2] / ".toolkit" / "cache" / "cached"
    (cache / "_copies.json").unlink()
    reasons = _plan(project, capsys)
    assert reasons["a"].startswith("cached output 'out' was deleted or changed")
    assert reasons["x"].startswith("cached output 'out' was deleted or changed")


def test_a_step_can_opt_out_of_the_cache(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_project(
        """
        name: live
        steps:
          - {name: pull, notebook: ../notebooks/ok.ipynb, cache: false, outputs: {out: o.txt}}
        """
    )
    _run(path, capsys)
    assert _plan(path, capsys) == {"pull": "caching is off for this step"}


def test_reuse_is_recorded_in_mlflow_and_an_unchanged_rerun_records_nothing(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.tracking import MlflowClient

    path = make_project(
        """
        name: tracked
        steps:
          - {name: a, notebook: ../notebooks/ok.ipynb, outputs: {out: a.txt}}
          - {name: b, notebook: ../notebooks/ok.ipynb, inputs: {inp: a.out}, outputs: {out: b.txt}}
        """,
        store=True,
    )

    def run(*args: str) -> dict[str, Any]:
        assert main(["run", str(path), "--json", "--quiet", *args]) == 0
        return json.loads(capsys.readouterr().out)

    first = run()
    second = run("-p", "b.label=c")
    assert _statuses(second) == {"a": "cached", "b": "succeeded"}
    client = MlflowClient(f"sqlite:///{path.parents[1] / 'mlflow.db'}")
    cached = client.get_run(second["steps"][0]["mlflow_run_id"])
    assert cached.info.status == "FINISHED"
    assert cached.data.tags["toolkit.cached"] == "true"
    assert first["run_id"] in cached.data.tags["toolkit.cached_from"]
    assert cached.data.metrics["x"] == 1.0
    experiment = client.get_experiment_by_name("tracked")
    before = len(client.search_runs([experiment.experiment_id]))

    # Back to the first run's parameters: every step is cached and that combination was
    # already recorded, so nothing new goes to MLflow.
    third = run()
    assert _statuses(third) == {"a": "cached", "b": "cached"}
    assert third["mlflow_run_id"] is None
    assert len(client.search_runs([experiment.experiment_id])) == before


FOLDERS = """
name: folders
steps:
  - name: a
    notebook: ../notebooks/writes_folder.ipynb
    inputs: {inp: {path: ../data/seed}}
    outputs: {out: model}
  - name: b
    notebook: ../notebooks/writes_folder.ipynb
    parameters: {label: b}
    inputs: {inp: a.out}
    outputs: {out: b_model}
"""


def test_a_folder_output_is_cached_and_its_content_keys_the_steps_after_it(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_project(FOLDERS, notebooks=("writes_folder",))
    seed = path.parents[1] / "data" / "seed"
    (seed / "sub").mkdir(parents=True)
    (seed / "one.txt").write_text("1;")
    (seed / "sub" / "two.txt").write_text("2;")
    first = _run(path, capsys)
    assert _statuses(first) == {"a": "succeeded", "b": "succeeded"}
    # The files inside a declared folder are the folder's, not undeclared reads or writes.
    assert all(not s["undeclared_outputs"] and not s["reads"] for s in first["steps"])
    assert _plan(path, capsys) == {}  # every step is reused

    again = _run(path, capsys)
    assert _statuses(again) == {"a": "cached", "b": "cached"}
    old, new = (Path(r["run_dir"], "data", "b_model", "part", "data.txt") for r in (first, again))
    assert new.read_text() == old.read_text() == "label: a\n1;2;a;b;"
    assert new.samefile(old)  # linked file by file, like a file output

    # A file changed inside a folder input is a change of that input, and a's new folder then
    # changes b's key as a changed file would.
    (seed / "sub" / "two.txt").write_text("2!;")
    assert _plan(path, capsys) == {"a": "input 'inp' changed", "b": "upstream step 'a' runs"}
    third = _run(path, capsys)
    assert _statuses(third) == {"a": "succeeded", "b": "succeeded"}
    assert Path(third["run_dir"], "data", "b_model", "part", "data.txt").read_text() == (
        "label: a\n1;2!;a;b;"
    )

    # A file edited inside the cached folder (the newest copy is the cache's) is a damaged
    # output; a re-run writing the same folder again leaves b cached: keys follow content.
    Path(third["run_dir"], "data", "model", "MLmodel").write_text("edited")
    reasons = _plan(path, capsys)
    assert reasons["a"] == f"cached output 'out' was deleted or changed since run {third['run_id']}"
    fourth = _run(path, capsys)
    assert _statuses(fourth) == {"a": "succeeded", "b": "cached"}
