"""``toolkit releases MODEL --at TIMESTAMP``: the champion at a moment, replayed from the
release history a real MLflow registry (SQLite in tmp_path) keeps, across a promote, a second
promote and a rollback."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier
from support.template_store import migrated_store

from toolkit.cli.main import main
from toolkit.gates.evaluation import evaluate_gates
from toolkit.release.history import champion_at
from toolkit.release.identity import os_identity
from toolkit.release.registry import PolicyRecord, Registry
from toolkit.specs.models import ReleaseSpec

NAME = "history_clf"
OPEN = PolicyRecord(ReleaseSpec(require_approval=False), "pipelines/test.yaml", "0" * 64)


def tick() -> datetime:
    """A moment strictly between two registry actions (entries are timed to the millisecond)."""
    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)
    return moment


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Registry, list[datetime]]:
    """v1 promoted, v2 promoted, rolled back to v1; the moments before and between."""
    root = tmp_path_factory.mktemp("history")
    uri = migrated_store(root / "mlflow.db", artifact_root=root / "art")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("h", artifact_location=(root / "art").as_uri())
    registry = Registry(uri, admins=[os_identity().name])
    run_id = client.create_run(experiment).info.run_id
    client.set_terminated(run_id, "FINISHED")
    model = DummyClassifier(strategy="constant", constant=0).fit(np.zeros((2, 1)), [0, 1])
    model_uri = registry.log_sklearn_model(run_id, model)  # one model, two versions: cheaper
    moments = [tick()]
    for constant in (0, 1):
        report = evaluate_gates([], {}, None, True, step="evaluate")
        registry.register(
            NAME, model_uri=model_uri, run_id=run_id, gate_report=report, policy=OPEN,
            metrics_run_id=run_id,
        )  # fmt: skip
        moments.append(tick())  # registered, not promoted
        registry.promote(NAME, constant + 1, by="dave", reason=f"release {constant + 1}")
        moments.append(tick())
    registry.rollback(NAME, by="erin", reason="latency regression")
    moments.append(tick())
    return uri, registry, moments


def test_the_champion_at_each_moment(history: tuple[str, Registry, list[datetime]]) -> None:
    _, registry, (before, registered, one, _, two, back) = history
    entries = registry.releases(NAME)
    assert [champion_at(NAME, entries, m).version for m in (before, registered)] == [None, None]
    first = champion_at(NAME, entries, one)
    assert (first.version, first.action, first.by, first.reason) == (
        "1", "promoted", "dave", "release 1",
    )  # fmt: skip
    assert champion_at(NAME, entries, two).version == "2"
    rolled = champion_at(NAME, entries, back)
    assert (rolled.version, rolled.action, rolled.by) == ("1", "rolled_back", "erin")
    assert rolled.since == entries[-1].at
    # At the very millisecond of the rollback, it has happened.
    assert champion_at(NAME, entries, datetime.fromisoformat(entries[-1].at)).version == "1"
    just_before = datetime.fromisoformat(entries[-1].at) - timedelta(milliseconds=1)
    assert champion_at(NAME, entries, just_before).version == "2"


def test_releases_at_on_the_command_line(
    history: tuple[str, Registry, list[datetime]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri, _, (before, _, one, _, two, back) = history
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["releases", NAME, "--at", two.isoformat(), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["version"], found["action"], found["model"]) == ("2", "promoted", NAME)
    naive = back.replace(tzinfo=None).isoformat()  # no zone: UTC, as the history records
    assert main(["releases", NAME, "--at", naive]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{NAME}: v1 was champion at ") and "rolled_back at " in text
    assert "by erin: latency regression" in text
    assert main(["releases", NAME, "--at", before.isoformat()]) == 0
    assert "no champion at" in capsys.readouterr().out
    assert main(["releases", NAME, "--at", "last tuesday"]) == 2
    assert "--at 'last tuesday' is not an ISO 8601 date or time" in capsys.readouterr().err
    assert main(["releases", "no_such_model", "--at", one.isoformat()]) == 2
