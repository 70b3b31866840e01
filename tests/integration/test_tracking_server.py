"""The same tracker flow against a real ``mlflow server`` on loopback (REST store, proxied
artifacts). Slow: the server needs ~5 s to come up."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from toolkit import tracking
from toolkit.forwarder import MetricsForwarder
from toolkit.tracking import Tracker

pytestmark = pytest.mark.slow

_STARTUP_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``(url, artifacts_destination)`` of a private MLflow server, stopped after the module."""
    root = tmp_path_factory.mktemp("mlflow-server")
    artifacts = root / "artifacts"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # One worker and no job runner: ~2 processes and ~4 s to ready instead of ~16 and ~15 s.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    log_file = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=root,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so killpg reaches every child
    )
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log_file.flush()
                tail = (root / "server.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"mlflow server did not become healthy (rc={proc.poll()}):\n{tail}")
            time.sleep(0.2)
        yield url, artifacts
    finally:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log_file.close()


def test_tracker_flow_against_a_tracking_server(server: tuple[str, Path], tmp_path: Path) -> None:
    url, artifacts = server
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
