"""``toolkit run --step NAME --run-id X`` and ``--finish``: one run shared by several processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MakeProject
from support.procs import cell_running, kill_group, start_toolkit, wait_for

from toolkit.cli.main import main
from toolkit.core.runlock import pipeline_lock

TWO_STEPS = """
name: shared
steps:
  - name: first
    notebook: ../notebooks/ok.ipynb
    parameters: {x: 3}
    outputs: {out: first.txt}
  - name: second
    notebook: ../notebooks/ok.ipynb
    inputs: {inp: first.out}
    outputs: {out: second.txt}
"""

FORK = """
name: fork
steps:
  - {name: a, notebook: ../notebooks/ok.ipynb, parameters: {x: 1}, outputs: {out: a.txt}}
  - {name: b, notebook: ../notebooks/ok.ipynb, parameters: {x: 2}, outputs: {out: b.txt}}
"""


def _summary(spec: Path, pipeline: str, run_id: str) -> dict:
    path = spec.parents[1] / "runs" / pipeline / run_id / "summary.json"
    return json.loads(path.read_text())


def test_steps_of_a_shared_run_then_finish(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    from toolkit.core.settings import load_settings

    spec = make_project(TWO_STEPS, store=True)
    args = ["run", str(spec), "--run-id", "af-1", "--quiet"]
    assert main([*args, "--step", "first"]) == 0
    first = _summary(spec, "shared", "af-1")
    assert [s["status"] for s in first["steps"]] == ["succeeded", "pending"]
    assert first["status"] == "running" and first["exit_code"] == 0

    assert main([*args, "--step", "second"]) == 0  # reads first's output from the run folder
    assert main([*args, "--finish", "--json"]) == 0
    out = capsys.readouterr().out
    summary = _summary(spec, "shared", "af-1")
    assert json.loads(out[out.index("{") :])["status"] == "succeeded"
    assert summary["status"] == "succeeded" and summary["exit_code"] == 0
    second = Path(summary["steps"][1]["outputs"]["out"])
    assert second.read_text() == "a:3;a:1;"

    # One MLflow pipeline run for the three processes, closed by --finish, steps nested in it.
    client = MlflowClient(load_settings(spec).tracking_uri)
    exp = client.get_experiment_by_name("shared")
    parents = client.search_runs(
        [exp.experiment_id], "tags.`toolkit.run_id` = 'af-1' and tags.`toolkit.kind` = 'pipeline'"
    )
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert summary["mlflow_run_id"] == parents[0].info.run_id
    steps = client.search_runs(
        [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'"
    )
    assert sorted((r.data.tags["toolkit.step"], r.info.status) for r in steps) == [
        ("first", "FINISHED"),
        ("second", "FINISHED"),
    ]


def test_concurrent_steps_merge_into_one_summary_and_exclude_whole_runs(
    make_project: MakeProject,
) -> None:
    spec = make_project(FORK)
    base = [sys.executable, "-m", "toolkit", "run", str(spec), "--run-id", "par-1", "--quiet"]
    env = {**os.environ, "TOOLKIT_TRACKING": "off"}
    procs = [
        subprocess.Popen([*base, "--step", name], env=env, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    summary = _summary(spec, "fork", "par-1")
    assert {s["name"]: s["status"] for s in summary["steps"]} == {
        "a": "succeeded",
        "b": "succeeded",
    }
    # A step task holds the pipeline's lock shared: a whole run is refused (6), not the task.
    locks = spec.parents[1] / ".toolkit" / "locks"
    with pipeline_lock(locks, "fork", "par-2", shared=True):
        assert main(["run", str(spec), "--quiet", "--no-tracking"]) == 6
        rerun = ["run", str(spec), "--run-id", "par-1", "--step", "a", "--quiet", "--no-tracking"]
        assert main(rerun) == 0


def test_shared_run_usage_errors(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_project(TWO_STEPS)
    assert main(["run", str(spec), "--step", "first"]) == 2
    assert "need --run-id" in capsys.readouterr().err
    assert main(["run", str(spec), "--step", "frist", "--run-id", "x"]) == 2
    assert "did you mean 'first'" in capsys.readouterr().err
    assert main(["run", str(spec), "--step", "first", "--run-id", "../escape"]) == 2
    assert "invalid run id" in capsys.readouterr().err
    assert main(["run", str(spec), "--finish", "--run-id", "never-ran"]) == 2
    assert "no step of run 'never-ran' has started" in capsys.readouterr().err


LOST = """
name: lost
steps:
  - name: slow
    notebook: ../notebooks/sleeps.ipynb
    parameters: {seconds: 300}
    outputs: {out: slow.txt}
  - {name: after, notebook: ../notebooks/ok.ipynb, inputs: {inp: slow.out}, outputs: {out: a.txt}}
"""


def test_finish_after_a_killed_task_closes_its_runs_and_fails(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """A step's task killed before it reported (kill -9, a lost Airflow worker), then the DAG's
    finish task (trigger rule all_done). --finish used to refuse ("no step has reported yet",
    exit 2) and leave the pipeline's and the step's MLflow runs RUNNING for good; a run with a
    step no task reported ended "failed" with exit code 0; and a late task could still run."""
    from mlflow import MlflowClient

    from toolkit.core.settings import load_settings

    spec = make_project(LOST, notebooks=("sleeps", "ok"), store=True)
    project, client = spec.parents[1], MlflowClient(load_settings(spec).tracking_uri)
    args = ["run", str(spec), "--run-id", "lost-1", "--quiet"]

    def step_run_open() -> bool:
        exp = client.get_experiment_by_name("lost")
        query = "tags.`toolkit.step` = 'slow' and attributes.status = 'RUNNING'"
        return exp is not None and bool(client.search_runs([exp.experiment_id], query))

    task = start_toolkit([*args, "--step", "slow"], project)
    try:
        wait_for(lambda: cell_running(project / "runs" / "lost", "slow"), what="slow's cell")
        wait_for(step_run_open, what="slow's MLflow run")
    finally:
        kill_group(task)
    assert task.returncode == -signal.SIGKILL

    assert main([*args, "--finish"]) == 1
    summary = _summary(spec, "lost", "lost-1")
    steps = {s["name"]: s for s in summary["steps"]}
    assert summary["status"] == "failed" and summary["exit_code"] == 1
    assert steps["slow"]["status"] == "failed" and steps["slow"]["error"]["kind"] == "not_reported"
    assert steps["after"]["status"] == "skipped"
    exp = client.get_experiment_by_name("lost")
    runs = client.search_runs([exp.experiment_id], "")
    assert sorted((r.data.tags.get("toolkit.kind"), r.info.status) for r in runs) == [
        ("pipeline", "FAILED"),
        ("step", "KILLED"),
    ]
    capsys.readouterr()
    assert main([*args, "--step", "after"]) == 2  # the run is over: a late task is refused
    assert "was finished" in capsys.readouterr().err


NOT_JOBLIB = """
name: textmodel
steps:
  - {name: fit, notebook: ../notebooks/ok.ipynb, outputs: {out: model.txt}}
model: {name: textmodel, step: fit, output: out}
gates: {step: fit, checks: ["x >= 0"]}
"""


def test_a_model_output_joblib_cannot_load_fails_clearly(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """The gates pass but the model output is a text file: the run fails saying so, in a
    shared run's --finish and in a whole run alike, and registers nothing; never exit 70."""
    spec = make_project(NOT_JOBLIB, store=True)
    args = ["run", str(spec), "--run-id", "tm-1", "--quiet"]
    assert main([*args, "--step", "fit"]) == 0
    code = main([*args, "--finish", "--json"])
    summary = _summary(spec, "textmodel", "tm-1")
    assert summary["status"] == "failed" and summary["registered"] is None
    assert "could not be loaded with joblib" in summary["gates"]["error"]
    assert code == summary["exit_code"] not in (0, 70)
    capsys.readouterr()
    whole = main(["run", str(spec), "--run-id", "tm-2", "--quiet"])
    summary = _summary(spec, "textmodel", "tm-2")
    assert "could not be loaded with joblib" in summary["gates"]["error"]
    assert whole == summary["exit_code"] not in (0, 70)
