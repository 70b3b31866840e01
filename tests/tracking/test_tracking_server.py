"""The same tracker flow against a real ``mlflow server`` on loopback (REST store, proxied
artifacts). Slow: the server needs ~5 s to come up."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MakeProject
from mlflow import MlflowClient

from toolkit.execute import RunRequest, run_pipeline
from toolkit.tracking import vocabulary as tracking
from toolkit.tracking.client import Tracker
from toolkit.tracking.forwarder import MetricsForwarder

pytestmark = pytest.mark.slow


def test_tracker_flow_against_a_tracking_server(
    mlflow_server: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, artifacts = mlflow_server
    tracker = Tracker(url, artifacts_dir=tmp_path / "ignored-for-servers")
    parent = tracker.start_pipeline(
        "served", run_name="srv-1", params={"rows": 3}, tags={"team": "ds"}, toolkit_run_id="srv1"
    )
    step = tracker.start_step(parent, "train", params={"lr": 0.1})
    events = tmp_path / "events.jsonl"
    forwarder = MetricsForwarder(tracker, step, events, poll_interval=0.05).start()
    events.write_text('{"kind": "metric", "key": "loss", "value": 0.25, "step": 1}\n')
    forwarder.stop()
    tracker.log_metrics(step, [("acc", 0.75, None, None)])
    report = tmp_path / "report.txt"
    report.write_text("hello server\n")
    tracker.log_artifact(step, report, "notebook")
    tracker.log_dict(step, {"ok": True}, "contracts/c.json")
    other = tracker.start_step(parent, "left-open", params={})
    tracker.end(step, "FINISHED")
    tracker.close_all("KILLED")
    # Nothing on stdout, where `--json` goes: MLflow prints a "View run" link there by default.
    assert capsys.readouterr().out == ""

    fresh = MlflowClient(tracking_uri=url)
    exp = fresh.get_experiment_by_name("served")
    assert exp is not None
    runs = {r.info.run_id: r for r in fresh.search_runs([exp.experiment_id])}
    assert set(runs) == {parent, step, other}
    assert {r.info.status for r in runs.values()} == {"FINISHED", "KILLED"}
    assert runs[step].info.status == "FINISHED" and runs[other].info.status == "KILLED"
    assert runs[step].data.tags[tracking.MLFLOW_PARENT_RUN_ID] == parent
    assert runs[step].data.metrics == {"loss": 0.25, "acc": 0.75}
    assert runs[parent].data.params == {"rows": "3"}
    assert {f.path for f in fresh.list_artifacts(step)} == {"notebook", "contracts"}
    # Artifacts are proxied by the server into its own destination, not into the client's dir.
    stored = [p for p in artifacts.rglob("report.txt")]
    assert len(stored) == 1 and stored[0].read_text() == "hello server\n"
    assert not (tmp_path / "ignored-for-servers").exists()

    detail = tracker.get_run("srv1")
    assert detail.run_id == parent and detail.status == "KILLED"
    assert {s.step for s in detail.steps} == {"train", "left-open"}
    assert detail.ui_url == f"{url}/#/experiments/{exp.experiment_id}/runs/{parent}"
    assert [r.run_id for r in tracker.list_runs("served")] == [parent]


def test_pipeline_runs_against_a_tracking_server(
    mlflow_server: tuple[str, Path], make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, artifacts = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    spec = make_project(
        "name: remote\nsteps:\n  - {name: a, notebook: ../notebooks/ok.ipynb, outputs: {out: a.txt}}\n"
    )
    report = run_pipeline(RunRequest(spec))
    assert report.status == "succeeded" and report.tracking_uri == url
    client = MlflowClient(url)
    parent = client.get_run(report.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    step = client.get_run(report.step("a").mlflow_run_id)
    assert step.data.metrics["x"] == 1.0
    assert {a.path for a in client.list_artifacts(step.info.run_id, "notebook")} == {
        "notebook/a.ipynb",
        "notebook/a.html",
    }
    # Artifacts went through the server into its own store, not into the project.
    assert list(artifacts.rglob("a.html"))
    assert not (spec.parents[1] / "mlruns").exists()
