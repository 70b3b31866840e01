"""Promote and rollback at the same moment, from separate clients: the champion alias always
ends where the release history says, and every move that succeeded is in that history once.

A real MLflow registry on SQLite; each client is its own :class:`Registry` (as another process
would be), with the per-model file lock or without it (clients on different machines).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier
from support.template_store import migrated_store

from toolkit.core.errors import RegistryError
from toolkit.gates.evaluation import evaluate_gates
from toolkit.release.registry import CHAMPION, PolicyRecord, Registry
from toolkit.specs.models import ReleaseSpec

OPEN = PolicyRecord(ReleaseSpec(require_approval=False), "pipelines/race.yaml", "0" * 64)
MOVES = ("promoted", "rolled_back")


class Env:
    def __init__(self, root: Path) -> None:
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.experiment = self.client.create_experiment("race", (root / "art").as_uri())
        self.registry = Registry(self.uri)
        estimator = DummyClassifier(strategy="constant", constant=1).fit(
            np.zeros((4, 2)), [0, 1, 0, 1]
        )
        self.model_uri = self.registry.log_sklearn_model(self.finished_run(), estimator)

    def finished_run(self) -> str:
        run_id = self.client.create_run(self.experiment).info.run_id
        self.client.log_metric(run_id, "roc_auc", 0.95)
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def versions(self, name: str, count: int) -> None:
        report = evaluate_gates(
            ["roc_auc >= 0.5"], {"roc_auc": 0.95}, None, None, step="fit", champion_version=None
        )
        for _ in range(count):
            self.registry.register(
                name, model_uri=self.model_uri, run_id=self.finished_run(), gate_report=report,
                policy=OPEN,
            )  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("race")
    migrated_store(root / "mlflow.db")
    return Env(root)


def _at_once(env: Env, calls: list[Callable[[Registry], Any]], local_lock: bool) -> list[Any]:
    """Run each call on its own client, released together; return results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def work(i: int) -> None:
        registry = Registry(env.uri, local_lock=local_lock)
        barrier.wait()
        try:
            results[i] = calls[i](registry)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


SCENARIOS = {
    "promote v3 while rolling back to v1": [
        lambda r, n: r.promote(n, 3, policy=None),
        lambda r, n: r.rollback(n, reason="race"),
    ],
    "two rollbacks at once": [
        lambda r, n: r.rollback(n, reason="race a"),
        lambda r, n: r.rollback(n, reason="race b"),
    ],
    "promote v3, promote v1 and roll back at once": [
        lambda r, n: r.promote(n, 3, policy=None),
        lambda r, n: r.promote(n, 1, policy=None),
        lambda r, n: r.rollback(n, reason="race"),
    ],
}


@pytest.mark.parametrize("local_lock", [True, False], ids=["file lock", "no lock (other machines)"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_concurrent_promote_and_rollback_settle_consistently(
    env: Env, scenario: str, local_lock: bool
) -> None:
    """These moves at the same instant (champion v2, v1 before it): each either succeeds and
    is in the history once, or is refused with a RegistryError; the champion alias ends at the
    last move in the history."""
    name = f"race-{abs(hash((scenario, local_lock))) % 10**8}"
    env.versions(name, 3)
    env.registry.promote(name, 1)
    env.registry.promote(name, 2)
    calls = [lambda r, c=c: c(r, name) for c in SCENARIOS[scenario]]
    results = _at_once(env, calls, local_lock)
    unexpected = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, RegistryError)
    ]
    assert unexpected == []
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    assert succeeded, results
    moves = [e for e in env.registry.releases(name) if e.action in MOVES]
    assert len(moves) == 2 + len(succeeded)  # no move lost, none recorded twice
    champion = env.client.get_registered_model(name).aliases[CHAMPION]
    assert str(champion) == moves[-1].to_version
