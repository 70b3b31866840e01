"""Model releases against a real MLflow registry on SQLite: gates, review, promotion, rollback,
audit history, bad input and concurrent promotions. One database per module (the first
migration costs ~1.4 s); every test uses its own model name."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier
from support.template_store import migrated_store

from toolkit.core.errors import ExitCode, GateFailed, RegistryError
from toolkit.gates.evaluation import evaluate_gates
from toolkit.release.identity import os_identity
from toolkit.release.registry import CANDIDATE, CHAMPION, PolicyRecord, Registry, lock_path
from toolkit.specs.models import ReleaseSpec

CHECKS = ["roc_auc >= 0.9", "roc_auc >= champion.roc_auc - 0.01", "predict_p95_ms <= 20"]
POLICY = ReleaseSpec(approvers=["alice", "bob"], forbid_self_approval=True)
OPEN = ReleaseSpec(require_approval=False)
X = np.zeros((4, 2))
# The scenarios below need several people on one machine: the test's OS user is a release admin
# and records each decision for a named person (an override, recorded as such). The identity
# rules themselves are tested in test_registry_governance.py.
ME = os_identity().name


@dataclass
class Env:
    """A registry, a client on the same backend and a cache of logged models."""

    uri: str
    registry: Registry
    client: MlflowClient
    experiment_id: str
    models: dict[int, str] = field(default_factory=dict)

    def run(self, metrics: dict[str, float] | None = None, *, finish: bool = True) -> str:
        run_id = self.client.create_run(self.experiment_id).info.run_id
        for key, value in (metrics or {}).items():
            self.client.log_metric(run_id, key, value)
        if finish:
            self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def model_uri(self, constant: int) -> str:
        """A logged model that always predicts ``constant``: which one loads tells versions apart."""
        if constant not in self.models:
            estimator = DummyClassifier(strategy="constant", constant=constant)
            estimator.fit(X, [0, 1, 0, 1])
            self.models[constant] = self.registry.log_sklearn_model(self.run(), estimator)
        return self.models[constant]

    def release(
        self,
        name: str,
        metrics: dict[str, float],
        *,
        constant: int = 0,
        checks: list[str] = CHECKS,
        triggered_by: str = "carol",
        policy: ReleaseSpec | PolicyRecord = POLICY,
        run_status: str = "FINISHED",
    ):
        """What the runner does after the gates step: evaluate against the champion, register."""
        champion_version, champion = self.registry.champion_metrics(name)
        report = evaluate_gates(
            checks,
            metrics,
            champion if champion_version else None,
            True,
            step="evaluate",
            champion_version=champion_version,
        )
        metrics_run = self.run(metrics, finish=False)
        info = self.registry.register(
            name,
            model_uri=self.model_uri(constant),
            run_id=metrics_run,
            gate_report=report,
            policy=policy
            if isinstance(policy, PolicyRecord)
            else PolicyRecord(policy, "pipelines/test.yaml", "0" * 64),
            metrics_run_id=metrics_run,
            triggered_by=triggered_by,
            toolkit_run_id=f"20261125-{name}",
            git_commit="0123abc",
            data_fingerprints={"features.train": "sha256:aa", "raw data.csv": "sha256:bb"},
        )
        # Like the runner: the run that registered the version ends after registering it.
        if run_status != "RUNNING":
            self.client.set_terminated(metrics_run, run_status)
        return info

    def state(self, name: str) -> tuple[dict[str, str], dict[str, str]]:
        """Aliases and registered-model tags: what a refused request must leave untouched."""
        model = self.client.get_registered_model(name)
        return {k: str(v) for k, v in model.aliases.items()}, dict(model.tags)


def make_env(root: Path, uri: str) -> Env:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    location = (root / "artifacts").as_uri() if uri.startswith("sqlite") else None
    experiment_id = client.create_experiment("releases", artifact_location=location)
    return Env(uri, Registry(uri, admins=[ME]), client, experiment_id)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("registry")
    return make_env(root, migrated_store(root / "mlflow.db"))


@pytest.fixture
def champion_loader(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``load(name)``: the prediction of ``models:/NAME@champion``, loaded the standard way."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env.uri)

    def load(name: str) -> int:
        model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
        return int(model.predict(X[:1])[0])

    yield load


GOOD = {"roc_auc": 0.95, "predict_p95_ms": 12.0}


def full_release_path(env: Env, name: str, load) -> None:
    """Register, approve, promote, a second release, roll back: the whole life of a model."""
    registry = env.registry
    v1 = env.release(name, GOOD, constant=0)
    assert v1.version == "1" and v1.aliases == (CANDIDATE,)
    assert v1.gates is not None and v1.gates.passed
    assert v1.gates.results[1].note == "no champion yet"
    for key, value in {
        "toolkit.run_id": f"20261125-{name}",
        "toolkit.triggered_by": "carol",
        "git.commit": "0123abc",
        "toolkit.data.features.train": "sha256:aa",
        "toolkit.gates.passed": "true",
    }.items():
        assert v1.tags[key] == value
    assert v1.tags["toolkit.mlflow_run_id"] == v1.run_id
    (raw_key,) = (k for k in v1.tags if k.startswith("toolkit.data.raw"))
    assert raw_key.startswith("toolkit.data.raw_data.csv-")  # a valid tag key, still distinct

    (waiting,) = registry.candidates(name, policy=POLICY)
    assert waiting.version.version == "1" and waiting.champion_version is None
    assert waiting.ready is False and "0 of 1 required approval(s)" in waiting.problems[0]

    with pytest.raises(RegistryError, match="0 of 1 required approval"):
        registry.promote(name, "1", policy=POLICY, by="dave")
    review = registry.review(name, "1", decision="approved", reviewer="alice", policy=POLICY)
    assert review.promotable and review.approvals == ("alice",)
    promoted = registry.promote(name, 1, policy=POLICY, by="dave", reason="first release")
    assert (promoted.from_version, promoted.to_version, promoted.forced) == (None, "1", False)
    assert load(name) == 0
    assert registry.get_version(name, 1).aliases == (CHAMPION,)  # candidate alias moved on
    assert registry.champion_metrics(name) == ("1", {"roc_auc": 0.95, "predict_p95_ms": 12.0})
    assert registry.candidates(name) == []

    # A worse model fails the champion gate: nothing registered.
    with pytest.raises(GateFailed, match=r"roc_auc >= champion\.roc_auc - 0\.01"):
        env.release(name, {"roc_auc": 0.92, "predict_p95_ms": 12.0}, constant=1)
    assert [int(v.version) for v in env.client.search_model_versions(f"name='{name}'")] == [1]

    v2 = env.release(name, {"roc_auc": 0.97, "predict_p95_ms": 9.0}, constant=1)
    assert v2.version == "2" and v2.gates.champion_version == "1"
    (waiting,) = registry.candidates(name, policy=POLICY)
    assert waiting.champion_metrics == {"roc_auc": 0.95, "predict_p95_ms": 12.0}
    assert waiting.comparison_rows()[0] == ("roc_auc >= 0.9", 0.97, 0.95, True)
    assert waiting.links["model_uri"] == f"models:/{name}/2"
    assert waiting.links["toolkit.mlflow_run_id"] == v2.run_id
    registry.review(name, 2, decision="approved", reviewer="bob", note="lgtm", policy=POLICY)
    registry.promote(name, 2, policy=POLICY, by="dave")
    assert load(name) == 1

    back = registry.rollback(name, by="erin", reason="latency regression in prod")
    assert (back.from_version, back.to_version) == ("2", "1")
    assert load(name) == 0
    assert registry.get_version(name, 1).aliases == (CHAMPION,)

    history = registry.releases(name)
    assert [(e.action, e.from_version, e.to_version, e.by) for e in history] == [
        ("admins_recorded", None, None, "carol"),  # with the policy, by the first registration
        ("registered", None, "1", "carol"),
        ("approved", None, "1", "alice"),
        ("promoted", None, "1", "dave"),
        ("registered", None, "2", "carol"),
        ("approved", None, "2", "bob"),
        ("promoted", "1", "2", "dave"),
        ("rolled_back", "2", "1", "erin"),
    ]
    assert history[-1].reason == "latency regression in prod"
    assert history[5].reason == "lgtm"
    assert [e.seq for e in history] == list(range(1, 9))
    assert all(e.at.endswith("+00:00") for e in history)

    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback(name, by="erin", reason="again")
    forward = registry.rollback(name, to="2", by="erin", reason="false alarm")
    assert (forward.from_version, forward.to_version) == ("1", "2")
    assert load(name) == 1


def test_full_release_path(env: Env, champion_loader) -> None:
    full_release_path(env, "clf", champion_loader)


def test_failed_gates_register_nothing(env: Env) -> None:
    with pytest.raises(GateFailed) as caught:
        env.release("never", {"roc_auc": 0.5, "predict_p95_ms": 50.0})
    assert caught.value.exit_code == ExitCode.GATE
    assert "roc_auc >= 0.9" in str(caught.value) and "predict_p95_ms <= 20" in str(caught.value)
    with pytest.raises(RegistryError, match="'f1' was never logged; step 'evaluate' logged"):
        env.release("never", GOOD, checks=["f1 >= 0.5"])
    with pytest.raises(GateFailed):  # a report given as a dict, as read back from a run folder
        report = evaluate_gates(["roc_auc > 0.99"], GOOD, None, None).to_dict()
        env.registry.register(
            "never", model_uri=env.model_uri(0), run_id=env.run(), gate_report=report
        )
    assert [m.name for m in env.client.search_registered_models("name='never'")] == []


def test_bad_requests_are_refused_and_change_nothing(env: Env) -> None:
    registry, name = env.registry, "guarded"
    env.release(name, GOOD, triggered_by="alice")
    registry.review(name, 1, decision="approved", reviewer="bob", policy=POLICY)
    registry.promote(name, 1, policy=POLICY, by="bob")
    env.release(name, GOOD)  # v2, triggered by carol
    env.release(name, GOOD)  # v3
    registry.review(name, 3, decision="rejected", reviewer="bob", note="leaks ids", policy=POLICY)
    env.release(name, GOOD, triggered_by="alice")  # v4
    before = env.state(name)
    maybe: Any = "maybe"

    refused = {
        "no registered model 'guardd'": lambda: registry.promote("guardd", 1, policy=OPEN, by="x"),
        "has no version 9; versions: 4, 3, 2, 1": lambda: registry.get_version(name, 9),
        "must be a number": lambda: registry.promote(name, "latest", policy=OPEN, by="x"),
        "the approvers are alice, bob": lambda: registry.review(
            name, 2, decision="approved", reviewer="mallory", policy=POLICY
        ),
        "self-approval is forbidden": lambda: registry.review(
            name, 4, decision="approved", reviewer="alice", policy=OPEN
        ),
        "'approved' or 'rejected'": lambda: registry.review(
            name,
            2,
            decision=maybe,
            reviewer="bob",
            policy=POLICY,
        ),
        "needs a reviewer": lambda: registry.review(
            name, 2, decision="approved", reviewer=" ", policy=OPEN
        ),
        "0 of 1 required approval": lambda: registry.promote(name, 2, policy=POLICY, by="x"),
        "rejected by bob (leaks ids)": lambda: registry.promote(name, 3, policy=OPEN, by="x"),
        "already the champion": lambda: registry.promote(name, 1, policy=OPEN, by="x"),
        "forced promotion needs a reason": lambda: registry.promote(
            name, 2, policy=POLICY, by="x", force=True
        ),
        "has no previous champion": lambda: registry.rollback(name, by="x", reason="r"),
        "v2 was never champion": lambda: registry.rollback(name, to=2, by="x", reason="r"),
        "needs a reason": lambda: registry.rollback(name, by="x", reason=""),
    }
    for message, request in refused.items():
        with pytest.raises(RegistryError, match=re.escape(message)) as caught:
            request()
        assert caught.value.exit_code == ExitCode.USAGE
        assert env.state(name) == before, message
        assert env.registry.get_version(name, 4).reviews == ()

    with pytest.raises(RegistryError) as caught:
        registry.releases("guardd")
    assert caught.value.hint == "did you mean 'guarded'?"


def test_rejected_candidate_loses_its_alias_and_leaves_the_review_list(env: Env) -> None:
    name = "rejectable"
    env.release(name, GOOD)
    env.release(name, GOOD)
    assert [c.version.version for c in env.registry.candidates(name)] == ["2", "1"]
    env.registry.review(name, 2, decision="rejected", reviewer="bob", policy=POLICY)
    assert CANDIDATE not in env.state(name)[0]
    assert [c.version.version for c in env.registry.candidates(name)] == ["1"]
    assert env.registry.get_version(name, 2).reviews[0].decision == "rejected"


def test_min_approvals_counts_distinct_reviewers_and_respects_the_policy(env: Env) -> None:
    name, policy = "two-keys", ReleaseSpec(min_approvals=2, forbid_self_approval=True)
    env.release(name, GOOD, triggered_by="carol", policy=policy)
    first = env.registry.review(name, 1, decision="approved", reviewer="alice", policy=policy)
    again = env.registry.review(name, 1, decision="approved", reviewer="alice", policy=policy)
    assert (first.approvals, again.approvals, again.required) == (("alice",), ("alice",), 2)
    assert not again.promotable
    with pytest.raises(RegistryError, match="1 of 2 required"):
        env.registry.promote(name, 1, policy=policy, by="carol")
    # An approval counts only while its reviewer is allowed by the policy in force.
    done = env.registry.review(name, 1, decision="approved", reviewer="bob", policy=policy)
    assert done.promotable and set(done.approvals) == {"alice", "bob"}
    narrower = policy.model_copy(update={"approvers": ["bob", "zoe"]})
    with pytest.raises(RegistryError, match=r"1 of 2 required approval.*from bob, zoe"):
        env.registry.promote(name, 1, policy=narrower, by="carol")
    assert env.registry.promote(name, 1, policy=policy, by="carol").to_version == "1"


def test_forced_promotion_records_what_it_overrode(env: Env) -> None:
    name = "forced"
    env.release(name, GOOD)
    entry = env.registry.promote(name, 1, policy=POLICY, by="ops", force=True, reason="hotfix")
    assert entry.forced and entry.reason == "hotfix"
    assert entry.overrides == ("it has 0 of 1 required approval(s) from alice, bob",)
    assert env.registry.releases(name)[-1] == entry
    assert env.state(name)[0][CHAMPION] == "1"


def test_history_is_append_only(env: Env) -> None:
    name = "audited"
    env.release(name, GOOD, policy=OPEN)
    snapshots = [env.state(name)[1]]
    env.registry.promote(name, 1, policy=OPEN, by="a")
    snapshots.append(env.state(name)[1])
    env.release(name, GOOD, policy=OPEN)
    env.registry.promote(name, 2, policy=OPEN, by="a")
    env.registry.rollback(name, by="a", reason="r")
    snapshots.append(env.state(name)[1])
    for older, newer in itertools.pairwise(snapshots):
        assert len(newer) > len(older)
        assert {k: newer[k] for k in older} == older  # nothing rewritten, nothing deleted
    entries = [json.loads(v) for k, v in snapshots[-1].items() if k.startswith("toolkit.release.")]
    assert sorted(e["action"] for e in entries) == [
        "admins_recorded", "promoted", "promoted", "registered", "registered", "rolled_back"
    ]  # fmt: skip


def test_a_move_interrupted_after_its_entry_is_completed_by_the_next_one(env: Env) -> None:
    """A client died after writing "promoted 1 -> 2" but before moving the alias: the entry is
    the write-ahead record, so the next operation first completes it."""
    name = "interrupted"
    _registered(env, name, 2)
    env.registry.promote(name, 1, policy=OPEN, by="a")
    seq = len(env.registry.releases(name)) + 1
    entry = {"action": "promoted", "from": "1", "to": "2", "by": "crashed", "at": "2026-11-25"}
    env.client.set_registered_model_tag(
        name, f"toolkit.release.{seq:08d}-0dead0", json.dumps(entry)
    )
    assert env.state(name)[0][CHAMPION] == "1"  # the alias never moved

    back = env.registry.rollback(name, by="ops", reason="undo the half-done promotion")
    assert (back.from_version, back.to_version) == ("2", "1")
    moves = _assert_consistent(env, name, 3)
    assert [(m.by, m.to_version) for m in moves] == [("a", "1"), ("crashed", "2"), ("ops", "1")]


def test_results_serialise_to_json(env: Env) -> None:
    name = "jsonable"
    version = env.release(name, GOOD)
    review = env.registry.review(name, 1, decision="approved", reviewer="bob", policy=POLICY)
    (candidate,) = env.registry.candidates(name, policy=POLICY)
    entry = env.registry.promote(name, 1, policy=POLICY, by="bob")
    for result in (version, review, candidate, entry):
        data = json.loads(json.dumps(result.to_dict()))
        assert data
    assert json.loads(json.dumps(version.to_dict()))["gates"]["passed"] is True
    assert candidate.to_dict()["ready"] is True
    assert entry.to_dict()["to_version"] == "1"


def test_champion_metrics_before_any_release(env: Env) -> None:
    assert env.registry.champion_metrics("not-yet") == (None, {})
    env.release("not-yet", GOOD)
    assert env.registry.champion_metrics("not-yet") == (None, {})


def test_lock_file_lives_next_to_the_sqlite_database(env: Env) -> None:
    path = lock_path(env.uri, "clf")
    assert path.parent == Path(env.uri.removeprefix("sqlite:///")).parent / ".toolkit-locks"
    assert lock_path(env.uri, "clf") != lock_path(env.uri, "clf2")


# --- concurrency -----------------------------------------------------------------------------


def _registered(env: Env, name: str, count: int) -> None:
    for _ in range(count):
        env.release(name, GOOD, policy=OPEN)


def _assert_consistent(env: Env, name: str, expected_promotions: int) -> list:
    moves = [e for e in env.registry.releases(name) if e.action in ("promoted", "rolled_back")]
    assert len(moves) == expected_promotions  # no entry lost
    assert env.state(name)[0][CHAMPION] == moves[-1].to_version  # alias agrees with history
    return moves


def _promote_all_at_once(env: Env, name: str, versions: list[int], *, local_lock: bool) -> None:
    barrier = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def promote(version: int) -> None:
        registry = Registry(env.uri, local_lock=local_lock)  # its own client, like another process
        barrier.wait()
        try:
            registry.promote(name, version, policy=OPEN)
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_concurrent_promotions_are_serialised_by_the_lock(env: Env) -> None:
    name = "race-locked"
    _registered(env, name, 6)
    _promote_all_at_once(env, name, [1, 2, 3, 4, 5, 6], local_lock=True)
    moves = _assert_consistent(env, name, 6)
    # Serialised: each promotion saw the previous one, so the chain of from/to is unbroken.
    assert [m.from_version for m in moves] == [None] + [m.to_version for m in moves[:-1]]
    assert sorted(m.to_version for m in moves) == ["1", "2", "3", "4", "5", "6"]


def test_concurrent_promotions_without_the_lock_still_settle(env: Env) -> None:
    """The lockless path (clients on different machines): interleavings may repeat a ``from``,
    but the alias always ends on the latest entry and no entry is lost."""
    name = "race-lockless"
    _registered(env, name, 12)
    done = 0
    for batch in ([1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]):
        _promote_all_at_once(env, name, batch, local_lock=False)
        done += len(batch)
        _assert_consistent(env, name, done)


def test_concurrent_promotions_across_processes(env: Env, tmp_path: Path) -> None:
    name = "race-processes"
    _registered(env, name, 2)
    go = tmp_path / "go"
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from toolkit.release.registry import Registry
        uri, name, version, go = sys.argv[1:]
        registry = Registry(uri)  # imports MLflow before waiting, so the starts line up
        Path(go + "." + version).touch()  # ready
        while not Path(go).exists():
            time.sleep(0.005)
        registry.promote(name, version)  # the model's recorded policy needs no approval
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, env.uri, name, str(v), str(go)], stderr=subprocess.PIPE
        )
        for v in (1, 2)
    ]
    try:
        # Generous: importing MLflow takes ~1 s idle, minutes on a loaded shared machine.
        deadline = time.monotonic() + 600
        while not all(Path(f"{go}.{v}").exists() for v in (1, 2)):  # every child is ready
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.01)
        go.touch()  # both promote at once
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err.decode()
    finally:
        for proc in procs:  # a failed wait must not leave children waiting for "go" forever
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    moves = _assert_consistent(env, name, 2)
    assert [m.from_version for m in moves] == [None] + [m.to_version for m in moves[:-1]]


def test_monitor_refuses_a_version_without_a_reference_profile(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolkit.cli.main import main

    env.release("unprofiled", GOOD)  # a bare estimator: registered without a guard or profile
    (tmp_path / "pyproject.toml").write_text("[tool.toolkit]\n")
    batch = tmp_path / "batch.csv"
    batch.write_text("a,b\n1,2\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env.uri)
    assert main(["monitor", "unprofiled", "--batch", str(batch), "--version", "1"]) == 2
    err = capsys.readouterr().err
    assert "unprofiled v1 has no reference profile" in err and "guard:" in err
