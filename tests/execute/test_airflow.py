"""The exported DAG, executed by Apache Airflow 3 (``airflow dags test``), against ``toolkit run``.

Airflow's side environment and the helpers are in ``tests/support/airflow.py``; the retries of a
failing and a killed task are in ``test_airflow_retries.py`` (a file of their own, so that
``--dist loadfile`` can run the two DAGs on two workers).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES
from support.airflow import airflow_env, dags_test, mlflow_of, only_run, tail
from support.airflow import project as make_airflow_project

from toolkit.cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow() -> Path:
    return airflow_env()


def _gates(summary: dict) -> list[tuple]:
    return [
        (g["expression"], g.get("value"), g.get("threshold"), g["passed"])
        for g in summary["gates"]["gates"]
    ]


def test_airflow_run_matches_toolkit_run(airflow: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    spec = make_airflow_project(
        project, (FIXTURES / "pipelines" / "forked.yaml").read_text(), "forked"
    )

    result = dags_test(airflow, spec, "toolkit_forked", tmp_path / "airflow")
    assert result.returncode == 0, tail(result)

    run_dir = only_run(project, "forked")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["exit_code"] == 0, summary
    for step in ("left", "right", "join"):
        executed = json.loads((run_dir / "notebooks" / f"{step}.ipynb").read_text())
        assert executed["metadata"]["papermill"]["exception"] is None, step
    assert summary["registered"]["name"] == "forked_model"

    # One MLflow pipeline run for the DAG run, with the three steps nested in it.
    client, exp = mlflow_of(project, "forked")
    parents = client.search_runs([exp], f"tags.`toolkit.run_id` = '{run_dir.name}'")
    pipeline_runs = [r for r in parents if r.data.tags.get("toolkit.kind") == "pipeline"]
    assert len(pipeline_runs) == 1 and pipeline_runs[0].info.status == "FINISHED"
    parent = pipeline_runs[0].info.run_id
    assert summary["mlflow_run_id"] == parent
    nested = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted((r.data.tags["toolkit.step"], r.info.status) for r in nested) == [
        ("join", "FINISHED"),
        ("left", "FINISHED"),
        ("right", "FINISHED"),
    ]

    # The same pipeline with `toolkit run`, same code, same project: same gates, same release.
    assert main(["run", str(spec), "--run-id", "cli", "--quiet", "--force"]) == 0
    cli = json.loads((project / "runs" / "forked" / "cli" / "summary.json").read_text())
    assert _gates(cli) == _gates(summary) and all(g[3] for g in _gates(summary))
    assert cli["gates"]["passed"] is summary["gates"]["passed"] is True
    versions = {int(v.version): v for v in client.search_model_versions("name = 'forked_model'")}
    assert sorted(versions) == [1, 2]  # one registration per run, nothing more
    airflow_version = versions[int(summary["registered"]["version"])]
    cli_version = versions[int(cli["registered"]["version"])]
    assert airflow_version.run_id == parent and cli_version.run_id == cli["mlflow_run_id"]
    same = ("toolkit.gates.passed", "toolkit.pipeline")
    assert {k: airflow_version.tags.get(k) for k in same} == {
        k: cli_version.tags.get(k) for k in same
    }
    assert not client.search_runs([exp], "attributes.status = 'RUNNING'")
