"""The MLflow-free reader of a SQLite store gives exactly what the MLflow client path gives.

One real store is built by the module through the toolkit's tracker and registry (MLflow
itself): pipeline runs of two pipelines with steps, params, tags and metrics (a NaN, a metric
logged at several steps), start-time ties, a deleted run, a deleted experiment, a run left
RUNNING by a dead process, and a registered model with a policy, promotions and a rollback.
Both paths then answer the same questions and are compared field by field (as JSON text, so
key order and NaN count too).
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from support.template_store import migrated_store

from toolkit.cli.main import main
from toolkit.commands.releases import recorded_history
from toolkit.gates.evaluation import evaluate_gates
from toolkit.release.identity import os_identity
from toolkit.release.registry import PolicyRecord, Registry
from toolkit.specs.models import ReleaseSpec
from toolkit.tracking import sqlite_reader
from toolkit.tracking.client import Tracker
from toolkit.tracking.sqlite_reader import open_reader
from toolkit.tracking.vocabulary import RunSummary

MODEL = "reader_clf"
POLICY = PolicyRecord(ReleaseSpec(require_approval=False), "pipelines/r.yaml", "1" * 64)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("reader")
    uri = migrated_store(root / "mlflow.db", artifact_root=root / "mlruns")  # made by MLflow
    tracker = Tracker(uri, artifacts_dir=root / "mlruns")
    for i in range(4):
        pipeline = "alpha" if i % 2 else "beta"
        parent = tracker.start_pipeline(
            pipeline, run_name=f"run-{i}", params={"seed": i, "cfg": {"a": [i]}},
            tags={"team": "ds", "toolkit.host": "elsewhere"}, toolkit_run_id=f"tk-{i}",
        )  # fmt: skip
        for s in ("prep", "fit"):
            step = tracker.start_step(parent, s, params={"rows": 10 * i})
            tracker.log_metrics(step, [("loss", 1.0 / (i + 1), 0, None), ("loss", 0.5, 1, None)])
            tracker.end(step, "FINISHED", metrics=[("auc", 0.9, None, None)])
        tracker.log_metrics(parent, [("score", float("nan"), None, None), ("n", 3.0, 2, None)])
        tracker.end(parent, "FAILED" if i == 2 else "FINISHED", error="boom" if i == 2 else None)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # Start-time ties (MLflow breaks them by run id), a run without a start time, a deleted run.
    exp = client.get_experiment_by_name("alpha").experiment_id
    tie = [
        client.create_run(
            exp, start_time=1_700_000_000_000 if n < 3 else None, run_name=f"tie-{n}",
            tags={"toolkit.kind": "pipeline", "toolkit.run_id": f"tie-{n}"},
        ).info.run_id
        for n in range(4)
    ]  # fmt: skip
    client.set_terminated(tie[0], "FINISHED", end_time=1_700_000_003_500)
    client.delete_run(tie[1])
    # A pipeline run whose process died on this machine (``runs list`` shows DIED).
    dead = tracker.start_pipeline(
        "alpha", run_name="dead", params={}, toolkit_run_id="tk-dead",
        tags={"toolkit.host": socket.gethostname(), "toolkit.pid": str(_dead_pid())},
    )  # fmt: skip
    assert dead
    gone = tracker.start_pipeline("gamma", run_name="g", params={}, tags={})
    tracker.end(gone, "FINISHED")
    client.delete_experiment(client.get_experiment_by_name("gamma").experiment_id)
    # A registered model with a policy, two promotions and a rollback.
    registry = Registry(uri, admins=[os_identity().name])
    run_id = client.create_run(exp).info.run_id
    client.set_terminated(run_id, "FINISHED")
    model_uri = f"runs:/{run_id}/model"  # the registry reads no model: none is logged
    for version in (1, 2):
        report = evaluate_gates([], {}, None, True, step="evaluate")
        registry.register(
            MODEL, model_uri=model_uri, run_id=run_id, gate_report=report, policy=POLICY,
            metrics_run_id=run_id,
        )  # fmt: skip
        registry.promote(MODEL, version, by="dave", reason=f"release {version}")
    registry.rollback(MODEL, by="erin", reason="latency")
    return uri, root


def _json(runs: list[RunSummary]) -> str:
    return json.dumps([r.to_dict() for r in runs], default=str)


def test_list_runs_matches_mlflow(store: tuple[str, Path]) -> None:
    uri, root = store
    tracker = Tracker(uri, artifacts_dir=root / "mlruns")
    reader = open_reader(uri)
    assert reader is not None
    with reader:
        for pipeline in (None, "alpha", "beta", "gamma", "missing"):
            for limit in (1, 3, 20, 1000):
                fast = reader.list_runs(pipeline, max_results=limit)
                slow = tracker.list_runs(pipeline, max_results=limit)
                assert _json(fast) == _json(slow), (pipeline, limit)
        everything = reader.list_runs(None, max_results=1000)
    assert {"tie-0", "tie-2", "tie-3", "tk-dead"} <= {r.toolkit_run_id for r in everything}
    assert len(everything) == 4 + 3 + 1  # the deleted run and the deleted experiment's are not


def test_release_history_matches_the_registry(store: tuple[str, Path]) -> None:
    uri, _ = store
    registry = Registry(uri)
    recorded = recorded_history(uri, MODEL)
    assert recorded is not None
    entries = recorded.releases(MODEL)
    assert [e.action for e in entries][-3:] == ["registered", "promoted", "rolled_back"]
    assert [e.to_dict() for e in entries] == [e.to_dict() for e in registry.releases(MODEL)]
    record = recorded.policy_record(MODEL)
    assert record is not None and record == registry.policy_record(MODEL)
    assert recorded_history(uri, "no_such_model") is None  # the registry words that error


def test_only_verified_sqlite_stores_are_read(store: tuple[str, Path], tmp_path: Path) -> None:
    uri, root = store
    assert open_reader("http://127.0.0.1:5000") is None
    assert open_reader(f"sqlite:///{tmp_path / 'absent.db'}") is None
    assert open_reader(f"{uri}?mode=ro") is None
    copy = tmp_path / "other.db"
    shutil.copy2(root / "mlflow.db", copy)
    with sqlite3.connect(copy) as con:
        con.execute("UPDATE alembic_version SET version_num = 'f00dfeed'")
    assert open_reader(f"sqlite:///{copy}") is None
    assert recorded_history(f"sqlite:///{copy}", MODEL) is None
    assert "f00dfeed" not in sqlite_reader.VERIFIED_REVISIONS


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "list"],
        ["runs", "list", "--json", "-n", "50"],
        ["runs", "list", "alpha"],
        ["releases", MODEL],
        ["releases", MODEL, "--json"],
        ["releases", MODEL, "--at", "2100-01-01"],
        ["releases", "no_such_model"],
    ],
)
def test_commands_print_the_same_either_way(
    store: tuple[str, Path],
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri, _ = store
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    fast = _cli(argv, capsys)
    opened: list[Any] = []
    monkeypatch.setattr(sqlite_reader, "open_reader", lambda u: opened.append(u))
    slow = _cli(argv, capsys)
    assert opened, "the second call must have taken the MLflow path"
    assert fast == slow
    if argv[:2] == ["runs", "list"] and len(argv) == 2:
        assert "DIED" in fast[1] and "tk-dead" in fast[2]
