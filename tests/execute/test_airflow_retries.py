"""Airflow 3 retries a failing and a killed task of an exported DAG, and leaves no wreckage.

The helpers and Airflow's side environment are in ``tests/support/airflow.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.airflow import airflow_env, dags_test, mlflow_of, only_run, tail
from support.airflow import project as make_airflow_project

from toolkit.core.runlock import pipeline_lock

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow() -> Path:
    return airflow_env()


FAULTY = """
name: faulty
steps:
  - name: killed
    notebook: ../notebooks/kills_worker.ipynb
    parameters: {{marker: "{marker}"}}
    outputs: {{out: survived.txt}}
    retries: 1
  - name: broken
    notebook: ../notebooks/raises.ipynb
    retries: 1
"""


def test_airflow_retries_a_failing_and_a_killed_task_and_leaves_no_wreckage(
    airflow: Path, tmp_path: Path
) -> None:
    """``killed``'s first attempt dies by SIGKILL mid-notebook (its process, as Airflow's kill
    or the OOM killer would); Airflow's retry must start cleanly. ``broken`` fails both of its
    attempts; the run ends failed, naming the cell."""
    project = tmp_path / "project"
    marker = tmp_path / "killed-once"
    spec = make_airflow_project(project, FAULTY.format(marker=marker), "faulty")

    result = dags_test(airflow, spec, "toolkit_faulty", tmp_path / "airflow")
    assert result.returncode != 0, tail(result)  # the DAG run failed: broken never succeeded
    assert marker.exists()  # the first attempt of `killed` ran and was killed

    run_dir = only_run(project, "faulty")
    summary = json.loads((run_dir / "summary.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert summary["status"] == "failed" and summary["exit_code"] == 1
    assert steps["killed"]["status"] == "succeeded"  # the retry: no stale lock stopped it
    assert (run_dir / "data" / "survived.txt").read_text() == "survived"
    broken = steps["broken"]
    assert broken["status"] == "failed"
    assert broken["error"]["cell_index"] == 2 and "boom with x=1" in broken["error"]["message"]
    assert (run_dir / "notebooks" / "broken.ipynb").exists()  # kept for the post-mortem

    client, exp = mlflow_of(project, "faulty")
    runs = client.search_runs([exp], "")
    assert not [r for r in runs if r.info.status == "RUNNING"], [
        (r.data.tags.get("toolkit.step"), r.info.status) for r in runs
    ]
    attempts = sorted(
        (r.data.tags.get("toolkit.step"), r.info.status)
        for r in runs
        if r.data.tags.get("toolkit.kind") == "step"
    )
    # Airflow ran each step twice: broken failed twice; killed's first attempt is closed.
    assert attempts == [
        ("broken", "FAILED"),
        ("broken", "FAILED"),
        ("killed", "FINISHED"),
        ("killed", "KILLED"),
    ]
    pipeline_runs = [r for r in runs if r.data.tags.get("toolkit.kind") == "pipeline"]
    assert [r.info.status for r in pipeline_runs] == ["FAILED"]

    # Nothing holds the pipeline's lock: a whole run could start now.
    with pipeline_lock(project / ".toolkit" / "locks", "faulty", "after"):
        pass
