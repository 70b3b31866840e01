"""A run's MLflow calls done by the engine daemon's end of a session (in a thread over a socket
pair, or in a real daemon process), against a real SQLite store: secrets are scrubbed before
they leave the run's process, a run that goes away without a goodbye has its runs ended KILLED,
and a daemon that dies hands every later call back to the run's process."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from multiprocessing import Pipe
from pathlib import Path

import pytest
from support.stores import child_runs, files_containing, run_statuses, run_tags

from toolkit.core.secrets import Redactor
from toolkit.execute import engine_daemon, engine_helper
from toolkit.execute.engine_client import session
from toolkit.tracking.client import Tracker
from toolkit.tracking.remote import RemoteTracker

SECRET = "hunter2-very-secret-value"


class Daemon:
    """The daemon's end of one session, in a thread of this process."""

    def __init__(self, uri: str, artifacts: Path) -> None:
        self.uri, self.artifacts = uri, artifacts
        self.client, self.server = Pipe()
        self.thread = threading.Thread(
            target=engine_helper.serve, args=(self.server, self.server), daemon=True
        )
        self.thread.start()
        self.redactor = Redactor([SECRET])
        tracker = session(self.client, uri, artifacts, local=self.local, redactor=self.redactor)
        assert tracker is not None
        self.tracker: RemoteTracker = tracker
        self.locals = 0

    def local(self) -> Tracker:
        self.locals += 1
        return Tracker(self.uri, artifacts_dir=self.artifacts, redact=self.redactor)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlartifacts"


def _pipeline(tracker: RemoteTracker) -> str:
    return tracker.start_pipeline(
        "remote",
        run_name="r1",
        params={"api_key": SECRET, "rows": 3},
        tags={"note": f"uses {SECRET}"},
        toolkit_run_id="r1",
        source="spec.yaml",
        description=f"run with {SECRET}",
    )


def test_the_daemon_does_the_calls_and_no_secret_reaches_it(store: tuple[str, Path]) -> None:
    """The daemon's tracker has no redactor: the secret is absent from the store and its
    artifacts only because the run's process scrubbed every value before sending it."""
    uri, artifacts = store
    daemon = Daemon(uri, artifacts)
    tracker = daemon.tracker
    parent = _pipeline(tracker)
    step = tracker.start_step(parent, "make", params={"token": SECRET})
    tracker.log_metrics(step, [("rows", 3.0, None, None)])
    tracker.log_text(parent, f"spec: {SECRET}\n", "spec/spec.yaml")
    tracker.log_dict(step, {"password": SECRET}, "facts.json")
    tracker.end(step, "FAILED", error=RuntimeError(f"failed with {SECRET}"))
    assert tracker.run_metrics(step) == {"rows": 3.0}
    tracker.end(parent, "FINISHED")
    tracker.close()
    daemon.thread.join(timeout=10)
    assert daemon.locals == 0  # every call was the daemon's
    assert run_statuses(uri) == {parent: "FINISHED", step: "FAILED"}
    assert run_tags(uri, step)["toolkit.error.type"] == "RuntimeError"
    assert "***" in run_tags(uri, step)["toolkit.error.message"]
    assert list(artifacts.rglob("facts.json")) and list(artifacts.rglob("spec.yaml"))
    assert files_containing(artifacts.parent, SECRET) == []


def test_a_run_gone_without_goodbye_has_its_runs_ended_killed(store: tuple[str, Path]) -> None:
    """The run's process was killed (kill -9): its end of the socket closes without a
    goodbye, and the daemon ends the runs it opened for it. After a goodbye (a shared run that
    other processes go on using) it leaves them open."""
    uri, artifacts = store
    killed = Daemon(uri, artifacts)
    parent = _pipeline(killed.tracker)
    step = killed.tracker.start_step(parent, "make", params={})
    killed.client.close()  # what the kernel does for a killed process
    killed.thread.join(timeout=30)
    assert run_statuses(uri) == {parent: "KILLED", step: "KILLED"}

    polite = Daemon(uri, artifacts)
    shared = polite.tracker.start_pipeline("remote", run_name="r2", params={}, tags={})
    polite.tracker.close()
    polite.thread.join(timeout=30)
    assert run_statuses(uri)[shared] == "RUNNING"


def test_a_dead_daemon_hands_every_later_call_back(
    store: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real daemon opens the pipeline's run, then dies (SIGKILL) when the step's run is
    asked for, before opening it: that call, and all after it, are done by the run's own
    tracker, on the same runs, and closing them all still works."""
    uri, artifacts = store
    folder = tempfile.mkdtemp(prefix="tkd-")  # a socket path must stay short
    monkeypatch.setenv(engine_daemon.DIR_ENV, folder)
    monkeypatch.setenv(engine_daemon.IDLE_ENV, "5")  # gone soon, should the fault not fire
    monkeypatch.setenv(engine_helper.FAULT_ENV, "track-received:start_step")
    try:
        conn = engine_daemon.connect(artifacts.parent / "daemon.log")
        assert conn is not None
        redactor = Redactor([SECRET])
        made: list[Tracker] = []

        def local() -> Tracker:
            made.append(Tracker(uri, artifacts_dir=artifacts, redact=redactor))
            return made[-1]

        tracker = session(conn, uri, artifacts, local=local, redactor=redactor)
        assert tracker is not None
        parent = _pipeline(tracker)
        assert made == [] and tracker.remote  # the daemon opened the pipeline's run
        step = tracker.start_step(parent, "fit", params={"secret_key": SECRET})
        assert not tracker.remote and len(made) == 1
        tracker.log_metrics(step, [("accuracy", 0.9, None, None)])
        assert tracker.open_runs() == [step, parent]  # steps first, as Tracker.open_runs
        assert tracker.close_all("KILLED") == [step, parent]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert run_statuses(uri) == {parent: "KILLED", step: "KILLED"}
    assert [(name, status) for name, status, _ in child_runs(uri, parent)] == [("fit", "KILLED")]
    assert files_containing(artifacts.parent, SECRET) == []
