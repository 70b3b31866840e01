"""Apache Airflow 3 for the tests that run an exported DAG (``airflow dags test``).

Airflow lives in an environment of its own (``make airflow-env``: .ci/airflow, locked with uv,
synced into .cache/airflow-venv), never in the toolkit's .venv. Its metadata database is SQLite
in the test's AIRFLOW_HOME (a copy of the template migrated by that target), no example DAGs are
loaded, no scheduler or API server runs: ``dags test`` executes every task in order, in one
process, and each task runs ``toolkit run --step`` as the DAG file says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.template_store import migrated_store
from toolkit.cli.main import main

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "tests" / "fixtures" / "notebooks"
AIRFLOW_VENV = REPO / ".cache" / "airflow-venv"
AIRFLOW = AIRFLOW_VENV / "bin" / "airflow"
TEMPLATE_DB = REPO / ".cache" / "airflow-db-template" / "airflow.db"
BUILD_LOG = REPO / ".cache" / "airflow-env.log"
DAG_TIMEOUT_S = 900  # a whole `dags test`; on a loaded 2-core machine a task takes 20-60 s


def airflow_env() -> Path:
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


def project(root: Path, spec_text: str, name: str) -> Path:
    """A mini-project in ``root`` (with a migrated MLflow store) whose spec is ``spec_text``."""
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "pipelines").mkdir(exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "mini"\n[tool.toolkit]\n')
    migrated_store(root / "mlflow.db")
    for nb in ("ok", "joins", "raises", "kills_worker"):
        shutil.copy(NOTEBOOKS / f"{nb}.ipynb", root / "notebooks")
    spec = root / "pipelines" / f"{name}.yaml"
    spec.write_text(spec_text)
    return spec


def dags_test(airflow: Path, spec: Path, dag_id: str, home: Path) -> subprocess.CompletedProcess:
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


def tail(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr)[-6000:]


def only_run(project: Path, pipeline: str) -> Path:
    runs = sorted((project / "runs" / pipeline).iterdir())
    assert len(runs) == 1, runs  # every task wrote into the one run of the DAG run
    return runs[0]


def mlflow_of(project: Path, pipeline: str):
    """``(client, experiment id)`` of ``pipeline`` in the project's MLflow store."""
    from mlflow import MlflowClient

    from toolkit.core.settings import load_settings

    uri = load_settings(project / "pipelines" / f"{pipeline}.yaml").tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return client, client.get_experiment_by_name(pipeline).experiment_id
