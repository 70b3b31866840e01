"""The tracker against a real MLflow SQLite store: nesting, isolation, ending, secrets.

One store is shared by the module (creating and migrating a SQLite DB costs ~1.5 s); every test
uses its own pipeline name (experiment), so tests stay independent of each other.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from support.template_store import migrated_store

from toolkit.core.errors import TrackingError, UsageError
from toolkit.core.secrets import REDACTED, Redactor, redact_params, scrub_notebook
from toolkit.core.settings import DEFAULT_SECRET_PATTERNS
from toolkit.reports.notebook_html import render_html
from toolkit.tracking import vocabulary as tracking
from toolkit.tracking.client import Tracker
from toolkit.tracking.forwarder import MetricsForwarder

Store = tuple[str, Path]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("mlflow")
    return migrated_store(root / "mlflow.db"), root / "mlruns"


@pytest.fixture(scope="module")
def tracker(store: Store) -> Tracker:
    uri, artifacts = store
    return Tracker(uri, artifacts_dir=artifacts)


@pytest.fixture(scope="module")
def client(store: Store) -> MlflowClient:
    """An independent client: assertions read the backend, not the tracker's memory."""
    return MlflowClient(tracking_uri=store[0])


def _name() -> str:
    return f"pipe-{uuid.uuid4().hex[:8]}"


def _wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_pipeline_and_nested_steps_share_the_experiment(
    tracker: Tracker, client: MlflowClient, store: Store
) -> None:
    pipeline = _name()
    parent = tracker.start_pipeline(
        pipeline,
        run_name="nightly-1",
        params={"rows": 100, "cfg": {"a": [1, 2]}},
        tags={"team": "ds"},
        toolkit_run_id="tk-nested",
        description="**nightly** run",
    )
    steps = [tracker.start_step(parent, s, params={"i": i}) for i, s in enumerate(("prep", "fit"))]

    exp = client.get_experiment_by_name(pipeline)
    assert exp is not None
    assert exp.artifact_location.startswith(store[1].resolve().as_uri())
    run = client.get_run(parent)
    assert run.info.experiment_id == exp.experiment_id
    assert run.info.run_name == "nightly-1"
    assert run.data.params == {"rows": "100", "cfg": '{"a": [1, 2]}'}
    tags = run.data.tags
    assert tags["team"] == "ds"
    assert tags[tracking.TAG_RUN_ID] == "tk-nested"
    assert tags[tracking.TAG_KIND] == "pipeline"
    assert tags[tracking.MLFLOW_NOTE] == "**nightly** run"
    assert tracking.MLFLOW_PARENT_RUN_ID not in tags
    for step_run_id, name in zip(steps, ("prep", "fit"), strict=True):
        step = client.get_run(step_run_id)
        assert step.info.experiment_id == exp.experiment_id
        assert step.info.run_name == name
        assert step.data.tags[tracking.MLFLOW_PARENT_RUN_ID] == parent
        assert step.data.tags[tracking.TAG_STEP] == name
        assert step.data.tags[tracking.TAG_RUN_ID] == "tk-nested"  # inherited from the pipeline
        assert step.info.artifact_uri.startswith(exp.artifact_location)
    tracker.close_all("FINISHED")


def test_runs_are_dated_from_when_they_began(tracker: Tracker, client: MlflowClient) -> None:
    """A run opens its MLflow runs after MLflow's import and store (seconds): dated from then,
    MLflow and `toolkit runs list` showed durations seconds shorter than the run's."""
    began = int(time.time() * 1000) - 5_000
    parent = tracker.start_pipeline(_name(), run_name="dated", params={}, tags={}, start_time=began)
    step = tracker.start_step(parent, "s", params={}, start_time=began + 1)
    assert client.get_run(parent).info.start_time == began
    assert client.get_run(step).info.start_time == began + 1
    tracker.end(step, "FINISHED")
    tracker.end(parent, "FINISHED")


def test_parallel_steps_never_mix_metrics(tracker: Tracker, client: MlflowClient) -> None:
    parent = tracker.start_pipeline(_name(), run_name="par", params={}, tags={})
    n_threads, n_points = 4, 60
    run_ids: dict[int, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def step(i: int) -> None:
        try:
            run_id = tracker.start_step(parent, f"step{i}", params={"thread": i})
            run_ids[i] = run_id
            barrier.wait()
            # Many small batches so the threads really interleave at the store.
            for k in range(0, n_points, 5):
                batch = [("loss", i * 1000 + k + j, k + j, None) for j in range(5)]
                tracker.log_metrics(run_id, [*batch, (f"only_{i}", float(i), k, None)])
            tracker.end(run_id, "FINISHED")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=step, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, run_id in run_ids.items():
        history = client.get_metric_history(run_id, "loss")
        assert sorted(m.value for m in history) == [i * 1000 + k for k in range(n_points)]
        assert set(client.get_run(run_id).data.metrics) == {"loss", f"only_{i}"}
        assert client.get_run(run_id).data.params == {"thread": str(i)}
    tracker.end(parent, "FINISHED")


def test_close_all_leaves_no_run_running(tracker: Tracker, client: MlflowClient) -> None:
    pipeline = _name()
    parent = tracker.start_pipeline(pipeline, run_name="killed", params={}, tags={})
    done = tracker.start_step(parent, "done", params={})
    tracker.end(done, "FINISHED")
    running = [tracker.start_step(parent, f"s{i}", params={}) for i in range(3)]
    exp_id = tracker.experiment_id(pipeline)
    statuses = {r.info.run_id: r.info.status for r in client.search_runs([exp_id])}
    assert list(statuses.values()).count("RUNNING") == 4

    closed = tracker.close_all("KILLED", error=KeyboardInterrupt())

    assert set(closed) == {parent, *running}
    assert closed[-1] == parent  # steps are closed before their pipeline
    runs = client.search_runs([exp_id], run_view_type=ViewType.ALL)
    assert [r.info.status for r in runs].count("RUNNING") == 0
    statuses = {r.info.run_id: r.info.status for r in runs}
    assert statuses[done] == "FINISHED"
    assert all(statuses[r] == "KILLED" for r in [parent, *running])
    assert client.get_run(parent).data.tags[tracking.TAG_ERROR_TYPE] == "KeyboardInterrupt"
    assert tracker.close_all("KILLED") == []
    tracker.end(done, "FAILED")  # idempotent: an ended run is not touched again
    assert client.get_run(done).info.status == "FINISHED"


def test_an_error_inside_failing_ends_the_open_runs_failed_and_propagates(
    tracker: Tracker, client: MlflowClient
) -> None:
    """What monitor, feedback and shadow report wrap their logging in."""
    run_id = tracker.start_pipeline(_name(), run_name="interrupted", params={}, tags={})
    with pytest.raises(KeyboardInterrupt), tracker.failing():
        tracker.log_metrics(run_id, [("m", 1.0, 0, None)])
        raise KeyboardInterrupt
    assert client.get_run(run_id).info.status == "FAILED"
    finished = tracker.start_pipeline(_name(), run_name="fine", params={}, tags={})
    with tracker.failing():
        tracker.end(finished, "FINISHED")
    assert client.get_run(finished).info.status == "FINISHED"


def test_failed_step_gets_error_tags_and_duration(tracker: Tracker, client: MlflowClient) -> None:
    parent = tracker.start_pipeline(_name(), run_name="fail", params={}, tags={})
    step = tracker.start_step(parent, "boom", params={})
    tracker.end(step, "failed", error=ValueError("cell 3 raised"))
    tracker.end(parent, "FAILED", error="step 'boom' failed")
    run = client.get_run(step)
    assert run.info.status == "FAILED"
    assert run.data.tags[tracking.TAG_ERROR_TYPE] == "ValueError"
    assert run.data.tags[tracking.TAG_ERROR_MESSAGE] == "cell 3 raised"
    assert run.info.end_time >= run.info.start_time
    assert client.get_run(parent).data.tags[tracking.TAG_ERROR_MESSAGE] == "step 'boom' failed"
    with pytest.raises(ValueError, match="status"):
        tracker.end(parent, "RUNNING")


def test_batches_beyond_mlflow_limits_and_long_values(
    tracker: Tracker, client: MlflowClient
) -> None:
    parent = tracker.start_pipeline(_name(), run_name="big", params={}, tags={})
    params = {f"p{i:03d}": i for i in range(250)}
    params["long"] = "x" * 7000
    tracker.log_params(parent, params)
    tracker.set_tags(parent, {f"t{i:03d}": i for i in range(150)} | {"long": "y" * 9000})
    tracker.log_metrics(parent, [("m", float(i), i, 1_700_000_000_000 + i) for i in range(2500)])
    tracker.end(parent, "FINISHED")
    run = client.get_run(parent)
    assert len(run.data.params) == 251
    assert len(run.data.params["long"]) == tracking.MAX_PARAM_VALUE
    assert run.data.params["long"].endswith("[truncated]")
    assert len(run.data.tags["long"]) == tracking.MAX_TAG_VALUE
    assert sum(k.startswith("t") and k[1:].isdigit() for k in run.data.tags) == 150
    assert len(client.get_metric_history(parent, "m")) == 2500


def test_artifacts_land_under_the_artifacts_dir(
    tracker: Tracker, client: MlflowClient, store: Store, tmp_path: Path
) -> None:
    parent = tracker.start_pipeline(_name(), run_name="art", params={}, tags={})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("a")
    (tmp_path / "single.txt").write_text("s")
    tracker.log_artifact(parent, tmp_path / "out", "folder")
    tracker.log_artifact(parent, tmp_path / "single.txt")
    tracker.log_dict(parent, {"when": Path("/x"), "n": 1}, "meta/info.json")
    tracker.end(parent, "FINISHED")
    listed = {f.path for f in client.list_artifacts(parent)}
    assert listed == {"folder", "single.txt", "meta"}
    artifact_dir = Path(client.get_run(parent).info.artifact_uri.removeprefix("file://"))
    assert artifact_dir.is_relative_to(store[1].resolve())
    assert json.loads((artifact_dir / "meta" / "info.json").read_text()) == {"when": "/x", "n": 1}


def test_list_runs_and_get_run(tracker: Tracker) -> None:
    pipeline = _name()
    first = tracker.start_pipeline(pipeline, run_name="r1", params={}, tags={}, toolkit_run_id="a1")
    step = tracker.start_step(first, "prep", params={"k": "v"})
    tracker.log_metrics(step, [("acc", 0.9, None, None)])
    tracker.end(step, "FINISHED")
    tracker.end(first, "FINISHED")
    time.sleep(0.01)  # distinct start times: the newest-first order must be observable
    second = tracker.start_pipeline(
        pipeline, run_name="r2", params={}, tags={}, toolkit_run_id="a2"
    )
    tracker.end(second, "FAILED")

    runs = tracker.list_runs(pipeline)
    assert [r.run_id for r in runs] == [second, first]  # pipeline runs only, newest first
    assert [r.toolkit_run_id for r in runs] == ["a2", "a1"]
    assert tracker.list_runs(pipeline, max_results=1)[0].run_id == second
    assert tracker.list_runs("no-such-pipeline") == []
    assert {second, first} <= {r.run_id for r in tracker.list_runs(None, max_results=1000)}

    detail = tracker.get_run("a1")
    assert detail.run_id == first and detail.status == "FINISHED" and detail.pipeline == pipeline
    assert [(s.step, s.status, s.metrics) for s in detail.steps] == [
        ("prep", "FINISHED", {"acc": 0.9})
    ]
    assert detail.steps[0].duration_s is not None and detail.ui_url is None
    assert tracker.get_run(first) == detail
    assert tracker.get_run(step).run_id == first  # a step's id resolves to its pipeline run
    as_dict = detail.to_dict()
    json.dumps(as_dict)  # JSON-ready for `toolkit runs show --json`
    assert as_dict["steps"][0]["params"] == {"k": "v"}
    with pytest.raises(UsageError, match="no pipeline run"):
        tracker.get_run("does-not-exist")


def test_ui_url_only_for_http_servers(tracker: Tracker) -> None:
    remote = Tracker("http://127.0.0.1:5999/")
    assert remote.ui_url("abc", "7") == "http://127.0.0.1:5999/#/experiments/7/runs/abc"
    assert tracker.ui_url("abc", "7") is None


def test_check_connection(tracker: Tracker) -> None:
    tracker.check_connection()  # the SQLite store opens fine
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(TrackingError, match="not reachable"):
        Tracker(f"http://127.0.0.1:{port}").check_connection(timeout_s=2)
    assert time.monotonic() - started < 30  # not MLflow's minutes of retries


def test_backend_errors_become_tracking_errors(tracker: Tracker) -> None:
    with pytest.raises(TrackingError, match="could not log metrics"):
        tracker.log_metrics("0" * 32, [("m", 1.0, None, None)])


def test_metrics_forwarder_streams_while_the_step_runs(
    tracker: Tracker, client: MlflowClient, tmp_path: Path
) -> None:
    parent = tracker.start_pipeline(_name(), run_name="fwd", params={}, tags={})
    step = tracker.start_step(parent, "train", params={})
    events = tmp_path / "events.jsonl"
    forwarder = MetricsForwarder(tracker, step, events, poll_interval=0.05).start()

    def history() -> list[float]:
        return [m.value for m in client.get_metric_history(step, "loss")]

    with events.open("a") as out:
        for i in range(3):
            out.write(
                json.dumps({"kind": "metric", "key": "loss", "value": 1 / (i + 1), "step": i})
            )
            out.write("\n")
        out.write(json.dumps({"kind": "output", "name": "model", "path": "/x/model.skops"}) + "\n")
        out.flush()
        # Forwarded while the forwarder is still running, i.e. live, not at stop().
        assert _wait_for(lambda: len(history()) == 3)
        line = json.dumps({"kind": "metric", "key": "loss", "value": 0.1, "step": 3, "ts": 5})
        out.write(line[:10])  # a half-written line must wait for its end
        out.flush()
        time.sleep(0.3)
        assert len(history()) == 3
        out.write(line[10:] + "\n")
        out.flush()
        assert _wait_for(lambda: len(history()) == 4)
        out.write('{"kind": "metric", "key": "loss", "val')  # torn by a crash, never completed
        out.flush()

    got = forwarder.stop()
    assert forwarder.error is None
    assert [e["kind"] for e in got] == ["metric"] * 3 + ["output", "metric"]
    assert sorted(history()) == [0.1, 1 / 3, 0.5, 1.0]
    assert {m.step: m.timestamp for m in client.get_metric_history(step, "loss")}[3] == 5
    tracker.close_all("FINISHED")


def test_metrics_forwarder_skips_bad_events_and_reads_an_unterminated_final_line(
    tracker: Tracker, client: MlflowClient, tmp_path: Path
) -> None:
    parent = tracker.start_pipeline(_name(), run_name="fwd2", params={}, tags={})
    events = tmp_path / "events.jsonl"
    forwarder = MetricsForwarder(tracker, parent, events, poll_interval=10).start()
    lines = [
        {"kind": "metric", "key": "acc", "value": 0.5},
        "not json",
        {"kind": "metric", "key": "bad!key", "value": 1},  # MLflow would reject the whole batch
        {"kind": "metric", "key": "../up", "value": 1},
        {"kind": "metric", "key": "acc", "value": "high"},
        {"kind": "metric", "key": "acc", "value": 0.75},  # written without a final newline
    ]
    events.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines))
    got = forwarder.stop()
    assert forwarder.error is None
    assert [e["value"] for e in got] == [0.5, 1, 1, "high", 0.75]
    assert sorted(m.value for m in client.get_metric_history(parent, "acc")) == [0.5, 0.75]
    assert set(client.get_run(parent).data.metrics) == {"acc"}
    tracker.close_all("FINISHED")


def _leaky_notebook(path: Path, secret: str) -> None:
    v4 = nbformat.v4
    injected = v4.new_code_cell(
        f'db_password = "{secret}"\n', metadata={"tags": ["injected-parameters"]}
    )
    cell = v4.new_code_cell("connect(db_password)")
    cell.outputs = [
        v4.new_output("stream", name="stderr", text=f"login with {secret} failed\n"),
        v4.new_output("error", ename="E", evalue=secret, traceback=[f"E: {secret}"]),
    ]
    nb = v4.new_notebook(cells=[injected, cell])
    nb.metadata["papermill"] = {"parameters": {"db_password": secret}}
    nbformat.write(nb, str(path))


def test_secret_never_reaches_the_tracking_store(store: Store, tmp_path: Path) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    params = {"db_password": secret, "rows": 5}
    redactor = Redactor.from_params(params, patterns=DEFAULT_SECRET_PATTERNS)
    # A second tracker on the shared store, with the redaction hook set.
    tracker = Tracker(store[0], artifacts_dir=store[1], redact=redactor)
    parent = tracker.start_pipeline(
        _name(),
        run_name="secret",
        params=redact_params(params, patterns=DEFAULT_SECRET_PATTERNS),
        tags={"dsn": f"postgres://u:{secret}@db"},
    )
    step = tracker.start_step(parent, "load", params={"note": f"uses {secret}"})
    local = tmp_path / "run" / "load.ipynb"
    local.parent.mkdir()
    _leaky_notebook(local, secret)
    logged = scrub_notebook(
        local, tmp_path / "scrubbed" / "load.ipynb", redactor, patterns=DEFAULT_SECRET_PATTERNS
    )
    html = render_html(logged, tmp_path / "scrubbed" / "load.html")
    tracker.log_artifact(step, logged, "notebook")
    tracker.log_artifact(step, html, "notebook")
    tracker.log_dict(step, {"contract": {"evalue": secret}}, "contracts/load.json")
    tracker.log_text(step, f"Traceback: {secret}\n", "logs/error.txt")
    tracker.set_tags(step, {"last_error": secret})
    tracker.end(step, "FAILED", error=RuntimeError(f"auth failed for {secret}"))
    tracker.end(parent, "FAILED")

    assert secret in local.read_text()  # the local run folder keeps its original notebook
    assert "<script src=" not in html.read_text()  # the offline render needs no CDN
    needle = secret.encode()
    db = Path(store[0].removeprefix("sqlite:///"))
    for path in db.parent.glob(db.name + "*"):  # the DB plus any -journal / -wal file
        assert needle not in path.read_bytes(), path
    artifact_files = [p for p in store[1].rglob("*") if p.is_file()]
    assert len(artifact_files) >= 4
    for path in artifact_files:
        assert needle not in path.read_bytes(), path
    run = MlflowClient(tracking_uri=store[0]).get_run(step)
    assert run.data.tags["last_error"] == REDACTED
    assert run.data.params["note"] == f"uses {REDACTED}"
