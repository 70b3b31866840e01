"""The shipped example project, end to end, as a user runs it: a fresh copy and the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from toolkit.settings import load_settings


@pytest.mark.slow
def test_example_training_pipeline_runs_end_to_end(example_project: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit", "run", "pipelines/train.yaml", "--json"],
        cwd=example_project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert [s["name"] for s in summary["steps"]] == ["ingest", "features", "train", "evaluate"]
    assert {s["status"] for s in summary["steps"]} == {"succeeded"}
    metrics = summary["steps"][3]["metrics"]
    assert metrics["roc_auc"] > 0.95
    assert Path(summary["run_dir"], "data", "predictions.parquet").exists()
    # Every contract of the example passed, including the predictions' row count.
    contracts = [c for s in summary["steps"] for c in s["contracts"]]
    assert {c["suite"] for c in contracts} == {"raw_measurements", "features", "predictions"}
    assert all(c["success"] for c in contracts)
    # MLflow holds the pipeline run and its four step runs.
    client = mlflow.MlflowClient(load_settings(example_project).tracking_uri)
    exp = client.get_experiment_by_name("train")
    runs = client.search_runs([exp.experiment_id])
    children = [
        r for r in runs if r.data.tags.get("mlflow.parentRunId") == summary["mlflow_run_id"]
    ]
    assert len(children) == 4
    assert all(r.info.status == "FINISHED" for r in runs)
