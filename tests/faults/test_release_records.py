"""The cache decides whether a step executes, never whether the release is recorded.

One project, trained once in backend A, then re-run unchanged in A (up to date: "already
registered"; then registered again once that version is deleted), in a new backend B (every step cached, yet gates, registration and the steps'
notebooks are recorded in B), and in B re-created from scratch (a new backend again). The
run's secret reaches no file anywhere in the project.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from support.cli import run_here
from support.procs import run_toolkit
from support.projects import mini_project, tracking_uri
from support.stores import files_containing, model_versions, run_tags, running_runs

NOTEBOOKS = Path(__file__).parent / "notebooks"
SECRET = "tok-9f2b7c41e5d8a6"
SPEC = """
name: rel
parameters:
  api_token: {secret: true, env: REL_API_TOKEN}
steps:
  - {name: fit, notebook: ../notebooks/fit_tiny.ipynb, outputs: {out: model.joblib}}
model: {name: rel_model, step: fit, output: out}
gates:
  step: fit
  checks: ["accuracy >= 0.5"]
"""


class Runs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.a = tracking_uri(root)
        self.b = "sqlite:///" + (root / "other.db").as_posix()
        self.b_snapshot = ""
        self.results: dict[str, dict] = {}
        self.stdout: dict[str, str] = {}

    def run(self, label: str, uri: str, *extra: str) -> dict:
        env = {"REL_API_TOKEN": SECRET, "MLFLOW_TRACKING_URI": uri}
        args = ["run", "pipelines/rel.yaml", "--json", *extra]
        # In this process, except on a store deleted and made anew at the same path: MLflow
        # keeps one store (and its open database) per URI in a process, and the user's next
        # command is a fresh process that opens the new file.
        if label == "B re-created":
            result = run_toolkit(args, self.root, env)
        else:
            result = run_here(self.root, *args, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        self.results[label] = json.loads(result.stdout)
        text = (
            run_here(self.root, "run", "pipelines/rel.yaml", env=env)
            if label == "A again"
            else None
        )
        if text is not None:
            self.stdout[label] = text.stdout
        return self.results[label]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("release")
    # Backend A is seeded (migrated); B is created by the runs themselves, a new backend each time.
    mini_project(root, SPEC, {"fit_tiny": NOTEBOOKS / "fit_tiny.ipynb"}, name="rel", store=True)
    r = Runs(root)
    r.run("A", r.a)
    r.run("A again", r.a)
    import mlflow

    mlflow.MlflowClient(r.a).delete_model_version("rel_model", "1")  # as the MLflow UI does
    r.run("A, its version deleted", r.a)
    r.run("B", r.b)
    # What B holds now is checked below, after B is deleted and made anew: keep a copy.
    shutil.copy(root / "other.db", root / "b-snapshot.db")
    r.b_snapshot = "sqlite:///" + (root / "b-snapshot.db").as_posix()
    os.unlink(root / "other.db")
    r.run("B re-created", r.b)
    return r


@pytest.mark.slow
def test_unchanged_rerun_in_the_same_backend_says_already_registered(runs: Runs) -> None:
    """Same backend, nothing changed: nothing executes or registers, and the summary says
    which version the identical run registered."""
    first, again = runs.results["A"], runs.results["A again"]
    assert again["registered"]["already_registered"] is True
    assert again["registered"]["version"] == first["registered"]["version"]
    assert again["registered"]["from_run"] == first["run_id"]
    assert "already registered as v1" in runs.stdout["A again"]
    assert len(model_versions(runs.a, "rel_model")) == 1


@pytest.mark.slow
def test_a_version_deleted_since_is_registered_again(runs: Runs) -> None:
    """Same backend, nothing changed, but the version the identical run registered was deleted
    from the registry since: registered again, not reported as "already registered" (which
    left the registry with no live version)."""
    after = runs.results["A, its version deleted"]
    assert after["registered"] and not after["registered"].get("already_registered")
    assert {s["status"] for s in after["steps"]} == {"cached"}
    assert model_versions(runs.a, "rel_model") == [
        (str(after["registered"]["version"]), after["mlflow_run_id"])
    ]


@pytest.mark.slow
def test_cached_run_in_a_new_backend_records_gates_and_registers(runs: Runs) -> None:
    """A new backend after a local run: every step is reused from the cache, yet the gates
    are logged there and the model is registered there."""
    b = runs.results["B"]
    assert {s["status"] for s in b["steps"]} == {"cached"}
    assert b["gates"]["passed"] is True
    assert b["registered"] and not b["registered"].get("already_registered")
    assert len(model_versions(runs.b_snapshot, "rel_model")) == 1
    assert run_tags(runs.b_snapshot, b["mlflow_run_id"])["toolkit.gates.passed"] == "true"


@pytest.mark.slow
def test_cached_step_runs_in_a_new_backend_carry_notebook_and_metrics(runs: Runs) -> None:
    """The cached step's run in the new backend has the executed notebook (.ipynb and .html)
    and the metrics of the execution it reuses."""
    import mlflow

    b = runs.results["B"]
    step_run = b["steps"][0]["mlflow_run_id"]
    client = mlflow.MlflowClient(runs.b_snapshot)
    names = {a.path for a in client.list_artifacts(step_run, "notebook")}
    assert names == {"notebook/fit.ipynb", "notebook/fit.html"}
    assert client.get_run(step_run).data.metrics["accuracy"] == b["steps"][0]["metrics"]["accuracy"]


@pytest.mark.slow
def test_a_store_recreated_at_the_same_uri_is_a_new_backend(runs: Runs) -> None:
    """Deleting the store and re-running at the same URI registers again (the old versions
    went with the old store), instead of claiming an identical run registered already."""
    again = runs.results["B re-created"]
    assert again["registered"] and not again["registered"].get("already_registered")
    assert len(model_versions(runs.b, "rel_model")) == 1


@pytest.mark.slow
def test_no_run_left_running_and_no_secret_in_any_file(runs: Runs) -> None:
    """After all these runs: no MLflow run RUNNING in either store, and the secret (printed
    by the notebook, passed as a parameter) is in no file of the project: run folders,
    executed notebooks, cache, stores, artifacts."""
    assert running_runs(runs.a) == [] and running_runs(runs.b) == []
    assert files_containing(runs.root, SECRET) == []


@pytest.mark.slow
def test_unscrubbed_notebook_only_on_opt_in_and_private(runs: Runs) -> None:
    """With the opt-in, the untouched notebook is kept beside the scrubbed one, mode 0600;
    it is then the only file holding the secret."""
    env = {
        "REL_API_TOKEN": SECRET,
        "MLFLOW_TRACKING_URI": runs.a,
        "TOOLKIT_KEEP_UNSCRUBBED_NOTEBOOKS": "1",
    }
    result = run_here(runs.root, "run", "pipelines/rel.yaml", "--force", "--json", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    kept = run_dir / "notebooks" / "fit.unscrubbed.ipynb"
    assert files_containing(runs.root, SECRET) == [kept]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert SECRET not in (run_dir / "notebooks" / "fit.ipynb").read_text()
