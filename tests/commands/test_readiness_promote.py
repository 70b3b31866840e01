"""`promote` through the real CLI on a real registry (SQLite): a pipeline at `production`
readiness that lacks any one control is refused (exit 4, naming it); `--force` is recorded in
the release history; and every promotion leaves a fresh model card on the version.

One version is registered for the whole module; each control is taken away by promoting with a
spec variant (`--pipeline`), so no model is trained per control."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import copy_example
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier
from support.readiness import REMOVE, variant

from toolkit.cli.main import main
from toolkit.core.errors import ExitCode
from toolkit.gates.evaluation import evaluate_gates
from toolkit.readiness.controls import Evidence
from toolkit.readiness.record import TAG_READINESS, at_registration
from toolkit.release.identity import os_identity
from toolkit.release.registry import PolicyRecord, Registry
from toolkit.specs.load import load_spec
from toolkit.specs.readiness_models import CONTROL_NAMES

MODEL = "breast_cancer_clf"
ME = os_identity().name


def register(
    root: Path,
    uri: str,
    *,
    verdict: str | None = "identical",
    spec_path: Path | None = None,
    record: bool = True,
) -> str:
    """What `toolkit run pipelines/train.yaml` (or ``spec_path``) leaves, minus the training: a
    finished run that logged the model and metrics, a version registered with the spec's
    policy and (unless ``record`` is false, as before it was recorded) its readiness at that
    moment, and (unless None) a reproduction verdict on the run."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("train")
    exp_id = exp.experiment_id if exp else client.create_experiment("train")
    run_id = client.create_run(exp_id, tags={"toolkit.kind": "pipeline"}).info.run_id
    client.log_metric(run_id, "roc_auc", 0.99)
    registry = Registry(uri)
    estimator = DummyClassifier(strategy="constant", constant=0).fit(np.zeros((4, 2)), [0, 1, 0, 1])
    model_uri = registry.log_sklearn_model(run_id, estimator)
    spec = load_spec(root / "pipelines" / "train.yaml")
    released = load_spec(spec_path or root / "pipelines" / "train.yaml")
    source = released.source.relative_to(root).as_posix()
    readiness = at_registration(released, root, (), source=source, run=run_id)
    info = registry.register(
        MODEL,
        model_uri=model_uri,
        run_id=run_id,
        gate_report=evaluate_gates(["roc_auc >= 0.95"], {"roc_auc": 0.99}, None, True),
        policy=PolicyRecord(spec.release, "pipelines/train.yaml", spec.content_hash),
        toolkit_run_id=f"run-{run_id[:6]}",
        git_commit="0123abc",
        data_fingerprints={"features.train": "ab" * 32},
        readiness=readiness if record else None,
    )
    client.set_terminated(run_id, "FINISHED")
    if verdict:
        client.set_tag(run_id, "toolkit.reproduce.verdict", verdict)
    return info.version


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = copy_example(tmp_path_factory.mktemp("promote") / "example", store=True)
    (root / "pyproject.toml").write_text(f'[tool.toolkit]\nrelease_admins = ["{ME}"]\n')
    (root / "uv.lock").write_text("# the project's dependency lock\n")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return root, uri, register(root, uri)


@pytest.fixture
def cli(project: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch, capsys):
    root, uri, _ = project
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.mark.parametrize("control", CONTROL_NAMES)
def test_promote_is_refused_when_a_required_control_is_missing(
    project: tuple[Path, str, str], cli, control: str
) -> None:
    root, uri, version = project
    removal = REMOVE[control]
    spec = variant(root, control, None if isinstance(removal, Evidence) else removal)
    lock, client = root / "uv.lock", MlflowClient(tracking_uri=uri)
    run_id = client.get_model_version(MODEL, version).run_id
    if control == "locked_environment":
        lock.rename(root / "uv.lock.away")
    if control == "reproduced":
        client.set_tag(run_id, "toolkit.reproduce.verdict", "differing")
    try:
        code, _, err = cli("promote", MODEL, version, "--pipeline", str(spec))
    finally:
        if control == "locked_environment":
            (root / "uv.lock.away").rename(lock)
        client.set_tag(run_id, "toolkit.reproduce.verdict", "identical")
    assert code == ExitCode.GATE, err
    assert "lacks required readiness controls" in err
    assert f"{control} (" in err and err.count(" (") >= 1
    assert "toolkit check --readiness" in err
    history = json.loads(cli("releases", MODEL, "--json")[1])
    assert "promoted" not in [e["action"] for e in history]


def test_a_ready_pipeline_is_held_by_its_review_policy_only(project, cli) -> None:
    _, _, version = project
    code, _, err = cli("promote", MODEL, version)  # the policy source: pipelines/train.yaml
    assert code == ExitCode.USAGE and "approval" in err and "readiness" not in err
    code, out, err = cli("check", "--readiness", "pipelines/train.yaml")
    assert code == 0, out + err
    assert "readiness production: ready (13 passed, 0 missing, 0 n/a)" in out


def test_force_is_recorded_with_the_readiness_it_overrode(project, cli) -> None:
    root, uri, _ = project
    version = register(root, uri, verdict=None)  # never reproduced
    code, _, err = cli("promote", MODEL, version)
    assert code == ExitCode.GATE and "reproduced (" in err
    code, out, err = cli(
        "promote", MODEL, version, "--force", "--reason", "incident 12 hotfix", "--json"
    )
    assert code == 0, err
    entry = json.loads(out)
    assert entry["forced"] is True and entry["reason"] == "incident 12 hotfix"
    assert any(o.startswith("readiness: reproduced (") for o in entry["overrides"])
    history = json.loads(cli("releases", MODEL, "--json")[1])
    assert history[-1]["overrides"] == entry["overrides"]


def test_every_promotion_logs_a_new_card_and_keeps_the_old(project, cli) -> None:
    root, uri, _ = project
    for version in (
        register(root, uri),
        register(root, uri),
    ):  # the first: a champion to roll back to
        code, _, err = cli(
            "review", "approve", MODEL, version, "--reviewer", "user-b", "--note", "ok"
        )
        assert code == 0, err
        assert cli("promote", MODEL, version)[0] == 0
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version(MODEL, version)
    latest = mv.tags["toolkit.card"]
    assert latest.startswith(f"runs:/{mv.run_id}/card/") and latest.endswith("-promoted.html")
    logged = sorted(a.path for a in client.list_artifacts(mv.run_id, "card"))
    events = [Path(p).stem.split("-", 1)[1] for p in logged if p.endswith(".md")]
    # A history, never overwritten (the runner logs the "registered" one; this test registers
    # through the registry directly).
    assert events == ["reviewed", "promoted"]
    out_file = root / "card.md"
    assert cli("card", MODEL, "champion", "-o", str(out_file))[0] == 0
    card = out_file.read_text()
    for heading in ("Identity", "Training data", "Evaluation", "Guard", "Review",
                    "Production so far", "Lineage"):  # fmt: skip
        assert f"\n## {heading}\n" in card
    assert "diagnostics-ml <diagnostics-ml@example.com>" in card
    assert "| user-b (recorded by" in card and "| approved |" in card
    assert "shadow evidence: none recorded" in card
    assert "Reproduce verdict:** identical" in card
    # A rollback refreshes the cards of both versions it moved between.
    code, out, err = cli("rollback", MODEL, "--reason", "recall dropped", "--json")
    assert code == 0, err
    back = json.loads(out)["to_version"]
    for moved in (version, back):
        tag = client.get_model_version(MODEL, moved).tags["toolkit.card"]
        assert tag.endswith("-rolled-back.html"), (moved, tag)
    code, out, _ = cli("card", MODEL, version)
    assert code == 0 and "| rolled_back | " in out and "recall dropped" in out


def test_a_version_from_before_cards_says_what_is_missing(project, cli) -> None:
    root, uri, _ = project
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = register(root, uri, verdict=None)
    version = client.get_model_version(MODEL, run_id)
    client.delete_run(version.run_id)  # its source run is gone: only the registry remains
    code, out, _ = cli("card", MODEL, run_id)
    assert code == 0
    assert "not in the store" in out and "contract results" in out


def lose(path: Path, how: str) -> None:
    if how == "deleted":
        path.unlink()
    else:  # a typo: the spec no longer loads
        path.write_text(path.read_text().replace("readiness:", "readines:"))


@pytest.mark.parametrize("how", ["deleted", "typo"])
def test_a_lost_spec_is_replaced_by_the_record_made_at_registration(project, cli, how) -> None:
    """The spec a version was registered from is gone or broken (another spec under pipelines/
    still releases the model, and must not stand in): the version's record decides, and only
    the reproduction is read again, from the store."""
    root, uri, _ = project
    ownerless = register(root, uri, spec_path=variant(root, f"{how}_ownerless", REMOVE["owner"]))
    ready_path = variant(root, f"{how}_ready", None)
    ready = register(root, uri, spec_path=ready_path, verdict=None)
    lose(root / "pipelines" / f"variant_{how}_ownerless.yaml", how)
    lose(ready_path, how)

    code, _, err = cli("promote", MODEL, ownerless)
    assert code == ExitCode.GATE, err
    assert "lacks required readiness controls: owner (no owner (at registration))" in err
    assert (
        f"read from the record made at registration from pipelines/variant_{how}_ownerless" in err
    )
    assert "reproduced (" not in err  # reproduced since: the store says so
    code, _, err = cli("promote", MODEL, ready)
    assert code == ExitCode.GATE and "reproduced (v" in err and "never reproduced" in err, err
    assert "owner" not in err

    client = MlflowClient(tracking_uri=uri)
    client.set_tag(client.get_model_version(MODEL, ready).run_id, "toolkit.reproduce.verdict",
                   "identical")  # fmt: skip
    code, _, err = cli("review", "approve", MODEL, ready, "--reviewer", "user-b")
    assert code == 0, err
    code, _, err = cli("promote", MODEL, ready)
    assert code == 0, err
    assert json.loads(cli("releases", MODEL, "--json")[1])[-1]["to_version"] == ready


def test_a_spec_edited_down_still_owes_what_it_required_at_registration(project, cli) -> None:
    root, uri, _ = project
    path = variant(root, "edited_down", None)
    version = register(root, uri, spec_path=path)
    data = yaml.safe_load(path.read_text())
    data["readiness"] = {"level": "draft"}
    del data["owner"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    code, _, err = cli("promote", MODEL, version)
    assert code == ExitCode.GATE, err
    assert "lacks required readiness controls: owner (no owner)" in err
    assert "held to what it required at registration (" in err
    # Named on the command line, the laxer spec is held to the same record: --pipeline can
    # tighten the release policy, never lower what the version owes.
    code, _, err = cli("promote", MODEL, version, "--pipeline", str(path))
    assert code == ExitCode.GATE, err
    assert "lacks required readiness controls: owner (no owner)" in err


def test_neither_spec_nor_record_refuses_and_force_is_recorded(project, cli) -> None:
    """A version registered before readiness was recorded (or by hand), promoted where its spec
    does not load; and a damaged record, which never reads as "nothing required"."""
    root, uri, _ = project
    version = register(root, uri, record=False)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_model_version_tag(MODEL, version, TAG_READINESS, '{"format": 1, "level": "none"}')
    code, _, err = cli("promote", MODEL, version)
    assert code == ExitCode.GATE and "is unreadable: unknown readiness level 'none'" in err, err
    client.delete_model_version_tag(MODEL, version, TAG_READINESS)

    spec = root / "pipelines" / "train.yaml"
    spec.rename(root / "train.yaml.away")
    try:
        code, _, err = cli("promote", MODEL, version)
        assert code == ExitCode.GATE, err
        assert "its readiness cannot be read (pipelines/train.yaml no longer loads here" in err
        assert "--pipeline SPEC" in err and "--force --reason" in err
        code, out, err = cli("promote", MODEL, version, "--force", "--reason", "restore", "--json")
    finally:
        (root / "train.yaml.away").rename(spec)
    assert code == 0, err
    entry = json.loads(out)
    assert (
        entry["forced"]
        and "readiness: unknown (pipelines/train.yaml no longer loads here; "
        "no readiness recorded at registration)"
        in entry["overrides"]
    )
    assert json.loads(cli("releases", MODEL, "--json")[1])[-1]["overrides"] == entry["overrides"]
