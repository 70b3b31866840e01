"""The exported DAG, executed by Apache Airflow 3 (``airflow dags test``), against ``toolkit run``.

Airflow lives in an environment of its own (``make airflow-env``: .ci/airflow, locked with uv,
synced into .cache/airflow-venv), never in the toolkit's .venv. Its metadata database is SQLite
in tmp_path (a copy of the template migrated by that target), AIRFLOW_HOME is in tmp_path, no
example DAGs are loaded, no scheduler or API server runs: ``dags test`` executes every task in
order, in one process, and each task runs ``toolkit run --step`` as the DAG file says.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO
from support.template_store import migrated_store

from toolkit.cli.main import main
from toolkit.core.runlock import pipeline_lock

pytestmark = pytest.mark.slow

AIRFLOW_VENV = REPO / ".cache" / "airflow-venv"
AIRFLOW = AIRFLOW_VENV / "bin" / "airflow"
TEMPLATE_DB = REPO / ".cache" / "airflow-db-template" / "airflow.db"
BUILD_LOG = REPO / ".cache" / "airflow-env.log"
DAG_TIMEOUT_S = 900  # a whole `dags test`; on a loaded 2-core machine a task takes 20-60 s


@pytest.fixture(scope="module")
def airflow() -> Path:
    """The side environment's ``airflow``: built by ``make airflow-env`` (a no-op when current).

    Skips, with uv's own words, only when that build failed (no package index); under CI a
    failed build fails the test instead, since CI must run it.
    """
    make = shutil.which("make")
    if make:
        subprocess.run([make, "-s", "airflow-env"], cwd=REPO, check=False, timeout=900)
    if AIRFLOW.exists() and TEMPLATE_DB.exists():
        return AIRFLOW
    log = BUILD_LOG.read_text(errors="replace").strip() if BUILD_LOG.exists() else ""
    reason = "the Airflow environment could not be built (make airflow-env): " + (
        log.splitlines()[-1] if log else "make is not available" if not make else "no log"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _project(root: Path, spec_text: str, name: str) -> Path:
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "pipelines").mkdir(exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "mini"\n[tool.toolkit]\n')
    migrated_store(root / "mlflow.db")
    for nb in ("ok", "joins", "raises", "kills_worker"):
        shutil.copy(FIXTURES / "notebooks" / f"{nb}.ipynb", root / "notebooks")
    spec = root / "pipelines" / f"{name}.yaml"
    spec.write_text(spec_text)
    return spec


def _dags_test(airflow: Path, spec: Path, dag_id: str, home: Path) -> subprocess.CompletedProcess:
    """Export the spec's DAG into a fresh AIRFLOW_HOME and run it once with ``dags test``."""
    dags = home / "dags"
    assert main(["export", "airflow", str(spec), "-o", str(dags / f"{dag_id}.py")]) == 0
    shutil.copy(TEMPLATE_DB, home / "airflow.db")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    return subprocess.run(
        [str(airflow), "dags", "test", dag_id],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=DAG_TIMEOUT_S,
    )


def _tail(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr)[-6000:]


def _only_run(project: Path, pipeline: str) -> Path:
    runs = sorted((project / "runs" / pipeline).iterdir())
    assert len(runs) == 1, runs  # every task wrote into the one run of the DAG run
    return runs[0]


def _mlflow(project: Path, pipeline: str):
    from mlflow import MlflowClient

    from toolkit.core.settings import load_settings

    uri = load_settings(project / "pipelines" / f"{pipeline}.yaml").tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return client, client.get_experiment_by_name(pipeline).experiment_id


def _gates(summary: dict) -> list[tuple]:
    return [
        (g["expression"], g.get("value"), g.get("threshold"), g["passed"])
        for g in summary["gates"]["gates"]
    ]


def test_airflow_run_matches_toolkit_run(airflow: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    spec = _project(project, (FIXTURES / "pipelines" / "forked.yaml").read_text(), "forked")

    result = _dags_test(airflow, spec, "toolkit_forked", tmp_path / "airflow")
    assert result.returncode == 0, _tail(result)

    run_dir = _only_run(project, "forked")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["exit_code"] == 0, summary
    for step in ("left", "right", "join"):
        executed = json.loads((run_dir / "notebooks" / f"{step}.ipynb").read_text())
        assert executed["metadata"]["papermill"]["exception"] is None, step
    assert summary["registered"]["name"] == "forked_model"

    # One MLflow pipeline run for the DAG run, with the three steps nested in it.
    client, exp = _mlflow(project, "forked")
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
    spec = _project(project, FAULTY.format(marker=marker), "faulty")

    result = _dags_test(airflow, spec, "toolkit_faulty", tmp_path / "airflow")
    assert result.returncode != 0, _tail(result)  # the DAG run failed: broken never succeeded
    assert marker.exists()  # the first attempt of `killed` ran and was killed

    run_dir = _only_run(project, "faulty")
    summary = json.loads((run_dir / "summary.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert summary["status"] == "failed" and summary["exit_code"] == 1
    assert steps["killed"]["status"] == "succeeded"  # the retry: no stale lock stopped it
    assert (run_dir / "data" / "survived.txt").read_text() == "survived"
    broken = steps["broken"]
    assert broken["status"] == "failed"
    assert broken["error"]["cell_index"] == 2 and "boom with x=1" in broken["error"]["message"]
    assert (run_dir / "notebooks" / "broken.ipynb").exists()  # kept for the post-mortem

    client, exp = _mlflow(project, "faulty")
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
