"""Pipeline runs as MLflow sees them: nested step runs, artifacts, lineage, no RUNNING leftovers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import pytest
from conftest import MakeProject

from toolkit.core.settings import load_settings
from toolkit.execute import RunRequest, run_pipeline

TWO_STEPS = """
name: tracked
parameters: {x: 3}
steps:
  - name: first
    notebook: ../notebooks/ok.ipynb
    outputs: {out: first.txt}
  - name: second
    notebook: ../notebooks/ok.ipynb
    inputs: {inp: first.out}
    outputs: {out: second.txt}
"""


def client_for(spec: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(load_settings(spec).tracking_uri)


def runs_of(client: mlflow.MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_pipeline_run_has_nested_step_runs_with_lineage(make_project: MakeProject) -> None:
    spec = make_project(TWO_STEPS, store=True)
    root = spec.parents[1]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x", "--allow-empty"],
        cwd=root,
        check=True,
    )
    report = run_pipeline(RunRequest(spec))
    assert report.status == "succeeded" and report.mlflow_run_id
    client = client_for(spec)
    runs = runs_of(client, "tracked")
    parent = client.get_run(report.mlflow_run_id)
    steps = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["toolkit.run_id"] == report.run_id
    assert len(parent.data.tags["git.commit"]) == 40
    assert parent.data.tags["git.dirty"] in {"true", "false"}
    assert parent.data.tags["toolkit.spec_hash"]
    assert parent.data.params == {"x": "3"}
    assert {p.path for p in client.list_artifacts(parent.info.run_id)} >= {
        "spec",
        "summary.json",
        "environment.json",
        "report.html",
    }
    page = Path(client.download_artifacts(parent.info.run_id, "report.html")).read_text()
    assert "data-step='second' data-status='succeeded'" in page
    assert parent.data.tags["git.commit"] in (Path(report.run_dir) / "report.html").read_text()
    assert sorted(r.data.tags["toolkit.step"] for r in steps) == ["first", "second"]
    for run in steps:
        assert run.info.status == "FINISHED"
        assert run.data.params["x"] == "3"
        assert run.data.metrics["x"] == 3.0
        names = {a.path for a in client.list_artifacts(run.info.run_id, "notebook")}
        step = run.data.tags["toolkit.step"]
        assert names == {f"notebook/{step}.ipynb", f"notebook/{step}.html"}
        prints = client.download_artifacts(run.info.run_id, "fingerprints.json")
        assert "sha256" in json.loads(Path(prints).read_text())["output.out"]


def test_failed_step_run_ends_failed_with_cell_and_exception(make_project: MakeProject) -> None:
    spec = make_project(
        "name: tf\nsteps:\n  - {name: boom, notebook: ../notebooks/raises.ipynb}\n",
        notebooks=("raises",),
        store=True,
    )
    report = run_pipeline(RunRequest(spec))
    client = client_for(spec)
    step = client.get_run(report.step("boom").mlflow_run_id)
    assert step.info.status == "FAILED"
    assert step.data.tags["toolkit.error.exception"] == "ValueError"
    assert step.data.tags["toolkit.error.cell"].isdigit()
    assert "boom with x=1" in step.data.tags["toolkit.error.message"]
    assert {a.path for a in client.list_artifacts(step.info.run_id, "notebook")}
    assert client.get_run(report.mlflow_run_id).info.status == "FAILED"


def test_secret_value_lands_nowhere_in_mlflow(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hunter2-Very-Secret-9f8e7d"
    monkeypatch.setenv("DB_PASSWORD", secret)
    spec = make_project(
        """
    name: secretive
    parameters:
      db_password: {secret: true, env: DB_PASSWORD}
    steps:
      - {name: use, notebook: ../notebooks/leaks_secret.ipynb, outputs: {out: out.txt}}
    """,
        notebooks=("leaks_secret",),
        store=True,
    )
    report = run_pipeline(RunRequest(spec))
    assert report.status == "succeeded"
    settings = load_settings(spec)
    db = Path(settings.tracking_uri.removeprefix("sqlite:///"))
    stores = [db, *[p for p in settings.artifacts_dir.rglob("*") if p.is_file()]]
    assert len(stores) > 3
    for path in stores:
        assert secret.encode() not in path.read_bytes(), path
    # The run's own summary (printed for schedulers) is clean too.
    assert secret not in (Path(report.run_dir) / "summary.json").read_text()
    assert secret not in (Path(report.run_dir) / "report.html").read_text()


def test_secrets_the_kernel_inherits_or_the_spec_writes_are_scrubbed_too(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kernels inherit the toolkit's environment, and a step's ``env:`` may hold a key written
    in the spec itself: values under secret-looking names were printed into the executed
    notebooks, the logs, plan.json and MLflow's artifacts as they were."""
    inherited, written = "ghp-inherited-0123456789", "LITERALKEY3391-abcdef"
    monkeypatch.setenv("EXTRA_PASSWORD", inherited)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # a secret-looking name, no secret
    spec = make_project(
        """
    name: inherits
    steps:
      - {name: inherited, notebook: ../notebooks/prints_environment.ipynb, parameters: {name: EXTRA_PASSWORD}}
      - name: written
        notebook: ../notebooks/prints_environment.ipynb
        parameters: {name: API_KEY}
        env: {API_KEY: LITERALKEY3391-abcdef}
      - {name: plain, notebook: ../notebooks/prints_environment.ipynb, parameters: {name: TOKENIZERS_PARALLELISM}}
    """,
        notebooks=("prints_environment",),
        store=True,
    )
    report = run_pipeline(RunRequest(spec))
    assert report.status == "succeeded"
    settings = load_settings(spec)
    files = [p for p in spec.parents[1].rglob("*") if p.is_file() and p != spec]  # but its source
    for value in (inherited, written):
        assert [p for p in files if value.encode() in p.read_bytes()] == [], value
    shown = json.loads((Path(report.run_dir) / "notebooks" / "plain.ipynb").read_text())
    assert "TOKENIZERS_PARALLELISM = false" in json.dumps(shown)  # left as it was
    assert settings.artifacts_dir.is_relative_to(spec.parents[1])  # MLflow's files were searched
