"""Release governance against ``mlflow server --app-name basic-auth`` on loopback, two people.

user-a trains (registers) a model whose policy forbids self-approval. The reviewer is whoever
the server authenticated, not a flag: user-a cannot approve it, nor name user-b to do it;
user-b can. The server's permissions apply (user-c, with only READ, is refused cleanly) and an
unauthenticated request is refused. One server for the module; slow (~10 s to start)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

# tests/ is on sys.path (pytest's rootdir import of tests/conftest.py), so tests/support is too.
from support.servers import AuthServer, mlflow_auth_server

from toolkit.cli.main import main
from toolkit.gates.evaluation import evaluate_gates
from toolkit.readiness.record import ReadinessRecord
from toolkit.release.registry import PolicyRecord, Registry
from toolkit.specs.models import ReleaseSpec

pytestmark = pytest.mark.slow
MODEL = "auth_clf"
POLICY = ReleaseSpec(approvers=["user-a", "user-b", "user-c"], forbid_self_approval=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with mlflow_auth_server(tmp_path_factory.mktemp("auth-server"), store=True) as running:
        for user in ("user-a", "user-b", "user-c"):
            running.add_user(user)
        yield running


@pytest.fixture(scope="module")
def trained(server: AuthServer) -> str:
    """user-a's pipeline run: a run, a logged model, a version registered with the policy."""
    import numpy as np
    from mlflow import MlflowClient

    with server.as_user("user-a"):
        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        experiment = client.create_experiment("train")  # user-a gets MANAGE on it
        run_id = client.create_run(experiment).info.run_id
        registry = Registry(server.url)
        model = DummyClassifier(strategy="constant", constant=1).fit(np.zeros((4, 1)), [0, 1] * 2)
        uri = registry.log_sklearn_model(run_id, model)
        report = evaluate_gates(["auc >= 0.5"], {"auc": 0.9}, None, True, step="fit")
        info = registry.register(
            MODEL,
            model_uri=uri,
            run_id=run_id,
            gate_report=report,
            policy=PolicyRecord(POLICY, "pipelines/train.yaml", "0" * 64),
            # As a run records it: reviewers promote from their own checkout, without the spec.
            readiness=ReadinessRecord(
                "train", MODEL, "draft", (), (), (), "pipelines/train.yaml", "0" * 64
            ),
        )
        client.set_terminated(run_id, "FINISHED")
    # user-a created the model (MANAGE); reviewers get EDIT, as a team would grant them.
    server.grant_model("user-b", MODEL, "EDIT")
    return info.tags["toolkit.triggered_by"]


@pytest.fixture
def cli(
    server: AuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    """``cli(user, *args) -> (exit code, stdout, stderr)``: the toolkit command line run with
    ``user``'s MLflow credentials (None: none at all)."""
    (tmp_path / "pyproject.toml").write_text("[tool.toolkit]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)

    def run(user: str | None, *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with server.as_user(user):
            code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_the_trainer_is_the_authenticated_user(trained: str, server: AuthServer) -> None:
    assert trained == "user-a"
    with server.as_user("user-b"):
        info = Registry(server.url).get_version(MODEL, 1)
    assert info.tags["toolkit.identity"] == "mlflow-auth"
    assert "toolkit.registered_by" not in info.tags  # nobody acted for anyone


def test_two_people_review_on_an_authenticating_server(trained: str, cli) -> None:
    # user-a trained it: no self-approval, and naming user-b is an override only admins have.
    code, _, err = cli("user-a", "review", "approve", MODEL, "candidate")
    assert code == 2 and "'user-a' cannot review" in err and "self-approval is forbidden" in err
    code, _, err = cli("user-a", "review", "approve", MODEL, "candidate", "--reviewer", "user-b")
    assert code == 2 and "you are 'user-a' (mlflow-auth)" in err and "admin override" in err

    # No credentials, or wrong ones: refused before anything is read or written.
    code, _, err = cli(None, "review", "approve", MODEL, "candidate")
    assert code == 2 and "did not authenticate you" in err and "MLFLOW_TRACKING_USERNAME" in err

    # user-c is an approver by the policy, but the server only lets them read the model.
    code, _, err = cli("user-c", "review", "approve", MODEL, "candidate", "--note", "lgtm")
    assert code == 2 and "refused to let user-c" in err and "PERMISSION_DENIED" in err
    assert "internal error" not in err

    code, out, err = cli("user-b", "review", "approve", MODEL, "candidate", "--note", "checked")
    assert code == 0, err
    assert f"approved {MODEL} v1 by user-b; approvals 1/1" in out
    code, out, err = cli("user-b", "promote", MODEL, "candidate")
    assert code == 0, err

    code, out, _ = cli("user-c", "releases", MODEL, "--json")  # READ is enough to audit
    history = [(e["action"], e["by"], e["identity"]) for e in json.loads(out)]
    assert history == [
        ("registered", "user-a", "mlflow-auth"),
        ("approved", "user-b", "mlflow-auth"),
        ("promoted", "user-b", "mlflow-auth"),
    ]
