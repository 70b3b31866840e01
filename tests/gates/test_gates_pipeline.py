"""Gates in a run: a failing gate exits 4 and registers nothing; an unknown metric is named."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from conftest import MakeProject

from toolkit.cli.main import main
from toolkit.core.settings import load_settings

SPEC = """
name: gated
steps:
  - {name: fit, notebook: ../notebooks/ok.ipynb, parameters: {x: 3}, outputs: {out: model.txt}}
model: {name: gated_model, step: fit, output: out}
gates:
  step: fit
  checks: ["{check}"]
"""


def run(
    make_project: MakeProject, check: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict, Path]:
    spec = make_project(SPEC.replace("{check}", check), store=True)
    code = main(["run", str(spec), "--json", "--quiet"])
    return code, json.loads(capsys.readouterr().out), spec


def test_failing_gate_exits_4_and_registers_nothing(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    code, summary, spec = run(make_project, "x >= 10", capsys)
    assert code == 4 and summary["exit_code"] == 4 and summary["status"] == "failed"
    gate = summary["gates"]["gates"][0]
    assert (gate["value"], gate["threshold"], gate["passed"]) == (3.0, 10.0, False)
    assert summary["registered"] is None
    uri = load_settings(spec).tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.search_registered_models() == []
    parent = client.get_run(summary["mlflow_run_id"])
    assert parent.data.tags["toolkit.gates.passed"] == "false"
    assert parent.data.metrics["gate.0.x.value"] == 3.0


def test_gate_on_a_metric_never_logged_names_the_logged_ones(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    code, summary, _ = run(make_project, "roc_auc >= 0.9", capsys)
    assert code == 2
    note = summary["gates"]["gates"][0]["note"]
    assert "roc_auc" in note and "logged: x" in note


def test_bad_gate_expression_fails_before_running(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_project(SPEC.replace("{check}", "x >=> 1"))
    assert main(["run", str(spec)]) == 2
    assert "x >=> 1" in capsys.readouterr().err
    assert not (spec.parents[1] / "runs").exists()
