"""A notebook that calls MLflow itself (log_metric, log_param, sklearn autolog) logs into its
step's run: the metrics feed gates and the report, the model lands there, nothing stays RUNNING.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
from conftest import MakeProject

from toolkit.cli.main import main
from toolkit.core.settings import load_settings

SPEC = """
name: nbflow
steps:
  - name: train
    notebook: ../notebooks/mlflow_autolog.ipynb
    parameters: {fail: FAIL}
    # autolog's model logging infers pip requirements in a subprocess (seconds, minutes on a
    # loaded machine); its fallback is fine for a test
    env: {MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT: "1"}
gates:
  step: train
  checks: ["CHECK"]
"""


def _run(spec: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["run", str(spec), "--json", "--quiet"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_notebook_mlflow_calls_land_in_the_step_run(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    passing = SPEC.replace("FAIL", "false").replace("CHECK", "training_accuracy_score >= 0.9")
    spec = make_project(passing, notebooks=("mlflow_autolog",), store=True)
    code, report = _run(spec, capsys)
    assert code == 0, report
    step = report["steps"][0]
    assert step["metrics"]["custom_score"] == 0.25
    assert step["metrics"]["training_accuracy_score"] >= 0.9
    assert report["gates"]["passed"] is True

    uri = load_settings(spec).tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(step["mlflow_run_id"])
    assert run.data.tags["toolkit.step"] == "train"
    assert run.data.params["source"] == "notebook"
    assert "training_accuracy_score" in run.data.metrics
    assert run.info.status == "FINISHED"
    experiment = run.info.experiment_id
    models = client.search_logged_models(experiment_ids=[experiment])
    assert [m.source_run_id for m in models] == [step["mlflow_run_id"]]
    # The notebook's nested runs are children of the step's run, which keeps its name and
    # none of their metrics; the notebook opened no other run of its own.
    assert not run.info.run_name.startswith("C=") and "trial_score" not in step["metrics"]
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert sorted((r.info.run_name, r.info.status) for r in children) == [
        ("C=0.1", "FINISHED"),
        ("C=1.0", "FINISHED"),
    ]
    for trial in children:
        assert trial.data.metrics["trial_score"] == pytest.approx(
            float(trial.data.params["C"]) / 10
        )
    assert len(client.search_runs([experiment])) == 4  # the pipeline's, the step's, 2 trials

    # The same step, reused from the cache, carries those metrics into a gate that fails.
    spec.write_text(passing.replace(">= 0.9", ">= 1.01"))
    assert main(["plan", str(spec), "--json"]) == 0
    cache = json.loads(capsys.readouterr().out)["steps"][0]["cache"]
    assert cache["reuse"], (cache, step["reads"], step["undeclared_outputs"])
    code, report = _run(spec, capsys)
    assert code == 4 and report["steps"][0]["status"] == "cached"
    assert report["gates"]["passed"] is False

    # A notebook that logs, then raises: its run ends FAILED, with what it logged.
    spec.write_text(SPEC.replace("FAIL", "true").replace("CHECK", "custom_score >= 0"))
    code, report = _run(spec, capsys)
    assert code == 1
    failed = client.get_run(report["steps"][0]["mlflow_run_id"])
    assert failed.info.status == "FAILED"
    assert failed.data.metrics["custom_score"] == 0.25
    assert [
        r.info.run_id for r in client.search_runs([experiment]) if r.info.status == "RUNNING"
    ] == []
