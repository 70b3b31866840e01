"""Release admins are recorded with the model, on a real MLflow registry (SQLite), through the
real CLI: a ``pyproject.toml`` of one's own grants nothing on a model that records its admins,
changing them is governed and in the history, and a damaged list refuses (fail closed).

One OS user runs the tests, so "another person" is a name recorded by an admin override, and
"the team's admins" are a list that does not name the test's user."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from support.template_store import migrated_store
from test_registry import GOOD, Env, make_env

from toolkit.cli.main import main
from toolkit.core.errors import ExitCode, PermissionRefused
from toolkit.release.identity import os_identity
from toolkit.release.registry import PolicyRecord, Registry
from toolkit.specs.load import load_spec

ME = os_identity().name
TRAIN = f"""\
name: train
steps:
  - {{name: fit, notebook: ../notebooks/ok.ipynb, outputs: {{out: model.txt}}}}
model: {{name: MODEL, step: fit, output: out}}
gates: {{step: fit, checks: ["x >= 0"]}}
release: {{approvers: [{ME}, user-b], forbid_self_approval: true}}
"""
LOOSE = """\
name: loose
steps:
  - {name: fit, notebook: ../notebooks/ok.ipynb, outputs: {out: model.txt}}
model: {name: MODEL, step: fit, output: out}
gates: {step: fit, checks: ["x >= 0"]}
release: {require_approval: false}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("admins")
    return make_env(root, migrated_store(root / "mlflow.db"))


def project(root: Path, env: Env, admins: list[str], model: str) -> Path:
    """A project folder using the team's store through its own pyproject.toml (no env
    variable), with the training spec and a looser one for ``model``."""
    for folder in ("pipelines", "notebooks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    src = Path(__file__).parents[1] / "fixtures" / "notebooks" / "ok.ipynb"
    (root / "notebooks" / "ok.ipynb").write_bytes(src.read_bytes())
    listed = ", ".join(f'"{a}"' for a in admins)
    (root / "pyproject.toml").write_text(
        f'[tool.toolkit]\ntracking_uri = "{env.uri}"\nrelease_admins = [{listed}]\n'
    )
    (root / "pipelines" / "train.yaml").write_text(TRAIN.replace("MODEL", model))
    (root / "pipelines" / "loose.yaml").write_text(LOOSE.replace("MODEL", model))
    return root


def train(env: Env, root: Path, model: str, admins: list[str] | None) -> None:
    """What `toolkit run pipelines/train.yaml` in ``root`` leaves: a version trained by the OS
    user, its policy (and, when the registry knows its project's list, its admins) recorded."""
    spec = load_spec(root / "pipelines" / "train.yaml")
    record = PolicyRecord(spec.release, "pipelines/train.yaml", spec.content_hash)
    team = dataclasses.replace(env, registry=Registry(env.uri, admins=admins))
    team.release(model, GOOD, triggered_by=ME, policy=record)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def run(cwd: Path, *args: str) -> tuple[int, str, str]:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def history(env: Env, model: str) -> list[tuple[str, str | None, str]]:
    return [(e.action, e.by, e.reason) for e in env.registry.releases(model)]


def test_a_pyproject_of_ones_own_grants_nothing_on_a_model_with_recorded_admins(
    env: Env, tmp_path: Path, cli
) -> None:
    """The hole: a folder of one's own, naming oneself admin, pointing at the team's store.
    Before admins were recorded with the model, every command below succeeded."""
    model = "team_model"
    team = project(tmp_path / "team", env, ["ops-lead"], model)
    train(env, team, model, ["ops-lead"])
    mine = project(tmp_path / "mine", env, [ME], model)
    before = env.state(model)

    code, _, err = cli(mine, "review", "approve", model, "candidate", "--reviewer", "user-b")
    assert code == ExitCode.USAGE, err
    assert f"you are {ME!r}" in err and "admin override" in err
    assert f"the release admins recorded with {model!r} (ops-lead)" in err
    assert "this project's [tool.toolkit] release_admins names you" in err  # the hint says why
    code, _, err = cli(
        mine, "promote", model, "candidate", "--by", "user-b", "--force", "--reason", "x"
    )
    assert code == ExitCode.USAGE and "(ops-lead)" in err, err
    code, _, err = cli(mine, "rollback", model, "--by", "user-b", "--reason", "x")
    assert code == ExitCode.USAGE and "(ops-lead)" in err, err
    code, _, err = cli(
        mine, "policy", model, "--set-from", "pipelines/loose.yaml", "--reason", "faster"
    )
    assert code == ExitCode.USAGE and "would loosen the release policy" in err, err
    assert "(ops-lead)" in err
    code, _, err = cli(mine, "policy", model, "--set-admins", ME, "--reason", "me too")
    assert code == ExitCode.USAGE, err
    assert "may be changed only by its release admins (ops-lead)" in err
    assert env.state(model) == before  # nothing written
    # What counts is shown, with the project's list that does not.
    code, out, _ = cli(mine, "policy", model)
    assert code == 0 and "release admins: ops-lead; this project's [tool.toolkit] " in out
    assert f"({ME}) differ and do not count" in out
    # Acting as oneself is no override and still works: the policy decides.
    code, _, err = cli(mine, "review", "approve", model, "candidate")
    assert code == ExitCode.USAGE and "self-approval is forbidden" in err


def test_a_recorded_admin_changes_the_admins_and_the_history_says_so(
    env: Env, tmp_path: Path, cli
) -> None:
    model = "handover"
    team = project(tmp_path / "team", env, [ME], model)
    train(env, team, model, [ME])
    assert env.registry.release_admins(model) == (ME,)
    assert history(env, model)[0][:2] == ("admins_recorded", ME)
    assert f"release admins: {ME} (this project's" in history(env, model)[0][2]

    code, _, err = cli(team, "policy", model, "--set-admins", "ops-lead")
    assert code == ExitCode.USAGE and "--set-admins needs --reason" in err
    code, _, err = cli(team, "policy", model, "--set-admins", " , ", "--reason", "x")
    assert code == ExitCode.USAGE and "at least one name" in err
    code, out, err = cli(
        team, "policy", model, "--set-admins", f"{ME},ops-lead", "--reason", "ops on call"
    )
    assert code == 0, err
    assert out.startswith(f"admins_changed: {model} - -> - by {ME}")
    assert f"ops on call - release admins: {ME}, ops-lead (were {ME})" in out
    assert env.registry.release_admins(model) == (ME, "ops-lead")
    # The new admin list is in force: the override works, and is recorded as one.
    code, out, err = cli(team, "review", "approve", model, "candidate", "--reviewer", "user-b")
    assert code == 0, err
    # Handing over entirely: the project's list still names me, the model's no longer does.
    code, _, err = cli(team, "policy", model, "--set-admins", "ops-lead", "--reason", "handover")
    assert code == 0, err
    code, _, err = cli(team, "promote", model, "candidate", "--by", "user-b")
    assert code == ExitCode.USAGE and "recorded with 'handover' (ops-lead)" in err, err
    code, _, err = cli(team, "policy", model, "--set-admins", ME, "--reason", "take it back")
    assert code == ExitCode.USAGE and "only by its release admins (ops-lead)" in err
    code, out, _ = cli(team, "releases", model, "--json")
    changes = [e for e in json.loads(out) if e["action"] == "admins_changed"]
    assert [(e["by"], e["identity"]) for e in changes] == [(ME, "os-user")] * 2
    assert changes[-1]["reason"] == f"handover - release admins: ops-lead (were {ME}, ops-lead)"
    code, out, _ = cli(team, "policy", model, "--json")
    assert json.loads(out)["release_admins"] == ["ops-lead"]


DAMAGES = ["{not json", '"ops-lead"', '["ops-lead", 7]', "[]"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_admins_tag_refuses_and_only_the_creator_records_it_again(
    env: Env, tmp_path: Path, cli, damage: str
) -> None:
    model = f"damaged-{DAMAGES.index(damage)}"
    team = project(tmp_path / "team", env, [ME], model)
    train(env, team, model, [ME])
    env.client.set_registered_model_tag(model, "toolkit.admins", damage)
    before = env.state(model)
    code, _, err = cli(team, "review", "approve", model, "candidate", "--reviewer", "user-b")
    assert code == ExitCode.USAGE and "are unreadable" in err and "--set-admins" in err, err
    code, _, err = cli(team, "policy", model, "--set-from", "pipelines/loose.yaml", "--reason", "x")
    assert code == ExitCode.USAGE and "are unreadable" in err, err
    code, _, err = cli(team, "policy", model)
    assert code == ExitCode.USAGE and "are unreadable" in err
    with pytest.raises(PermissionRefused, match="unreadable"):
        env.registry.release_admins(model)
    assert env.state(model) == before
    # Whoever first registered the model records them again, in the history.
    code, out, err = cli(team, "policy", model, "--set-admins", ME, "--reason", "repaired")
    assert code == 0 and out.startswith("admins_recorded:"), err
    code, _, err = cli(team, "review", "approve", model, "candidate", "--reviewer", "user-b")
    assert code == 0, err


def test_an_unreadable_policy_is_recorded_again_by_a_release_admin_only(
    env: Env, tmp_path: Path, cli
) -> None:
    """A damaged policy tag refuses every release (fails closed). Its hint named a command that
    does not exist, and `policy --set-from` failed on the very tag it was to replace: nothing
    could repair it. A recorded admin now can, in the history; anyone else is refused."""
    model, theirs = "damaged_policy", "damaged_policy_of_ops"
    team = project(tmp_path / "team", env, [ME], model)
    train(env, team, model, [ME])
    ops = project(tmp_path / "ops", env, ["ops-lead"], theirs)
    train(env, ops, theirs, ["ops-lead"])  # trained by me, but ops-lead is its admin
    for name in (model, theirs):
        env.client.set_registered_model_tag(name, "toolkit.policy", "{not json")
    code, _, err = cli(team, "review", "approve", model, "candidate", "--reviewer", "user-b")
    assert code == ExitCode.USAGE and "is unreadable" in err, err
    assert f"toolkit policy {model} --set-from SPEC --reason TEXT" in err  # a real command
    before = env.state(theirs)
    code, _, err = cli(ops, "policy", theirs, "--set-from", "pipelines/train.yaml", "--reason", "x")
    assert code == ExitCode.USAGE and "replace the unreadable release policy" in err, err
    assert "only the release admins recorded with" in err and "(ops-lead)" in err
    assert env.state(theirs) == before
    code, out, err = cli(
        team, "policy", model, "--set-from", "pipelines/train.yaml", "--reason", "repaired"
    )
    assert code == 0 and out.startswith("policy_changed:"), err
    code, _, err = cli(team, "review", "approve", model, "candidate", "--reviewer", "user-b")
    assert code == 0, err


def test_a_model_without_recorded_admins_has_none_but_what_its_creator_records(
    env: Env, tmp_path: Path, cli
) -> None:
    """Registered before admins were recorded (or by a registry that did not know its
    project's list): no override and no loosening, whatever a project says, until whoever
    first registered it records a list, explicitly or by acting as an admin of their project."""
    model = "legacy_admins"
    train(env, project(tmp_path / "team", env, [ME], model), model, None)
    assert env.registry.release_admins(model) is None
    assert [a for a, _, _ in history(env, model)] == ["registered"]
    elsewhere = project(tmp_path / "elsewhere", env, ["ops-lead"], model)  # does not name me
    code, _, err = cli(elsewhere, "review", "approve", model, "candidate", "--reviewer", "user-b")
    assert code == ExitCode.USAGE and f"recorded with {model!r} (none are)" in err, err
    assert f"whoever first registered {model!r} records them once" in err
    code, _, err = cli(
        elsewhere, "policy", model, "--set-from", "pipelines/loose.yaml", "--reason", "x"
    )
    assert code == ExitCode.USAGE and "(none are)" in err, err
    code, out, _ = cli(elsewhere, "policy", model)
    assert "release admins: none recorded (only whoever first registered" in out
    assert [a for a, _, _ in history(env, model)] == ["registered"]
    # I registered it first: I record the list, in the history.
    code, out, err = cli(elsewhere, "policy", model, "--set-admins", ME, "--reason", "upgrade")
    assert code == 0 and out.startswith("admins_recorded:"), err
    assert "upgrade - release admins: " + ME in out
    code, _, err = cli(elsewhere, "review", "approve", model, "candidate", "--reviewer", "user-b")
    assert code == 0, err

    # Someone else registered it first: they, not I, record the list.
    other = "other_legacy"
    team = project(tmp_path / "other", env, [ME], other)
    train(env, team, other, None)
    first = {"action": "registered", "from": None, "to": "0", "by": "alice", "at": "2026-01-01"}
    env.client.set_registered_model_tag(
        other, "toolkit.release.00000000-00000000", json.dumps(first)
    )
    code, _, err = cli(team, "review", "approve", other, "candidate", "--reviewer", "user-b")
    assert code == ExitCode.USAGE and "(none are)" in err, err
    code, _, err = cli(team, "policy", other, "--set-admins", ME, "--reason", "mine now")
    assert code == ExitCode.USAGE and "whoever first registered it (alice)" in err, err
    assert env.registry.release_admins(other) is None

    # The creator acting as an admin of their project records that project's list first.
    third = "first_override"
    team = project(tmp_path / "third", env, [ME, "ops-lead"], third)
    train(env, team, third, None)
    code, out, err = cli(team, "review", "approve", third, "candidate", "--reviewer", "user-b")
    assert code == 0, err
    assert [a for a, _, _ in history(env, third)] == ["registered", "admins_recorded", "approved"]
    assert env.registry.release_admins(third) == (ME, "ops-lead")


def test_pipeline_records_the_projects_admins_with_a_missing_policy(
    env: Env, tmp_path: Path, cli
) -> None:
    """A model with neither policy nor admins (registered by hand): ``--pipeline`` naming the
    spec that releases it records both, in the history."""
    model = "by_hand"
    team = project(tmp_path / "team", env, [ME, "ops-lead"], model)
    train(env, team, model, None)
    for key in ("toolkit.policy", "toolkit.policy.source", "toolkit.policy.spec_sha256"):
        env.client.delete_registered_model_tag(model, key)
    code, _, err = cli(team, "review", "approve", model, "1", "--pipeline", "pipelines/train.yaml")
    assert code == ExitCode.USAGE and "self-approval is forbidden" in err
    assert [a for a, _, _ in history(env, model)] == [
        "registered", "policy_recorded", "admins_recorded"
    ]  # fmt: skip
    assert env.registry.release_admins(model) == (ME, "ops-lead")
