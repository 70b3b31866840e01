"""Release governance that holds, on a real MLflow registry (SQLite) through the real CLI.

The policy is bound to the model (recorded at registration), ``--pipeline`` only tightens it, a
broken spec never means "no policy", the reviewer is the OS user (naming someone else is an
admin override, recorded), and a version whose run did not finish is never releasable.
Each finding of the adversarial review that these close has its own test below."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.template_store import migrated_store

# Shared scenario helpers (tests/release is on sys.path: pytest's default rootdir import).
from test_registry import GOOD, OPEN, Env, make_env

from toolkit.cli.main import main
from toolkit.core.errors import ExitCode, PermissionRefused, RegistryError
from toolkit.release.identity import os_identity
from toolkit.release.registry import PolicyRecord, Registry, tighten
from toolkit.specs.load import load_spec
from toolkit.specs.models import ReleaseSpec

ME = os_identity().name
STRICT = ReleaseSpec(approvers=[ME, "user-b", "user-c"], forbid_self_approval=True)
TRAIN = f"""\
name: train
steps:
  - {{name: fit, notebook: ../notebooks/ok.ipynb, outputs: {{out: model.txt}}}}
model: {{name: MODEL, step: fit, output: out}}
gates: {{step: fit, checks: ["x >= 0"]}}
release: {{approvers: [{ME}, user-b, user-c], forbid_self_approval: true}}
"""
SCORE = """\
name: score
steps:
  - {name: score, notebook: ../notebooks/ok.ipynb}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("governance")
    return make_env(root, migrated_store(root / "mlflow.db"))


@pytest.fixture
def project(
    tmp_path: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, pytest.MonkeyPatch]:
    """A project whose commands use the module's registry; no release admins configured."""
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "notebooks").mkdir()
    src = Path(__file__).parents[1] / "fixtures" / "notebooks" / "ok.ipynb"
    (tmp_path / "notebooks" / "ok.ipynb").write_bytes(src.read_bytes())
    (tmp_path / "pyproject.toml").write_text("[tool.toolkit]\n")
    (tmp_path / "pipelines" / "score.yaml").write_text(SCORE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env.uri)
    return tmp_path, monkeypatch


def toolkit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def trained_by_me(env: Env, root: Path, name: str, **kwargs: object) -> None:
    """What `toolkit run pipelines/train.yaml` leaves: a version trained by the OS user, with
    the spec's policy recorded on the model."""
    spec_path = root / "pipelines" / "train.yaml"
    spec_path.write_text(TRAIN.replace("MODEL", name))
    spec = load_spec(spec_path)
    record = PolicyRecord(spec.release, "pipelines/train.yaml", spec.content_hash)
    env.release(name, GOOD, triggered_by=ME, policy=record, **kwargs)


def actions(env: Env, name: str) -> list[str]:
    return [e.action for e in env.registry.releases(name)]


def test_finding1_a_spec_without_a_policy_cannot_bypass_the_models(
    env: Env, project: tuple[Path, pytest.MonkeyPatch], capsys: pytest.CaptureFixture[str]
) -> None:
    """user-a (here: the OS user) trained the model; naming a spec with no policy used to let
    them approve and promote it themselves."""
    root, _ = project
    trained_by_me(env, root, "bound")
    code, _, err = toolkit(
        capsys, "review", "approve", "bound", "candidate", "--pipeline", "pipelines/score.yaml"
    )
    assert code == ExitCode.USAGE, err
    assert "self-approval is forbidden" in err
    code, _, err = toolkit(
        capsys, "promote", "bound", "candidate", "--pipeline", "pipelines/score.yaml"
    )
    assert code == ExitCode.USAGE and "0 of 1 required approval(s)" in err
    assert actions(env, "bound") == ["admins_recorded", "registered"]
    # The policy is on the model, with the spec it came from.
    code, out, _ = toolkit(capsys, "policy", "bound", "--json")
    recorded = json.loads(out)
    assert recorded["policy"] == STRICT.model_dump(mode="json")
    assert recorded["spec_sha256"] == load_spec(root / "pipelines" / "train.yaml").content_hash


def test_finding2_a_broken_spec_and_a_free_text_reviewer_are_refused(
    env: Env, project: tuple[Path, pytest.MonkeyPatch], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = project
    trained_by_me(env, root, "typo")
    spec = root / "pipelines" / "train.yaml"
    spec.write_text(spec.read_text().replace("release:", "relase:"))  # the typo
    code, _, err = toolkit(
        capsys, "review", "approve", "typo", "candidate", "--pipeline", str(spec)
    )
    assert code == ExitCode.USAGE and "train.yaml" in err and "relase" in err
    code, _, err = toolkit(
        capsys, "promote", "typo", "candidate", "--pipeline", "pipelines/missing.yaml"
    )
    assert code == ExitCode.USAGE and "missing.yaml" in err
    # Without --pipeline the broken spec is irrelevant: the model's own policy applies.
    code, _, err = toolkit(capsys, "review", "approve", "typo", "candidate")
    assert code == ExitCode.USAGE and "self-approval is forbidden" in err
    # The reviewer is the OS user; another name is an admin override, which only the model's
    # recorded release admins have.
    env.registry.set_admins("typo", ["ops-lead"], reason="ops owns its releases")
    for args in (
        ("review", "approve", "typo", "candidate", "--reviewer", "user-b"),
        ("promote", "typo", "candidate", "--by", "user-b", "--force", "--reason", "x"),
    ):
        code, _, err = toolkit(capsys, *args)
        assert code == ExitCode.USAGE, args
        assert f"you are {ME!r}" in err and "admin override" in err
    assert actions(env, "typo") == ["admins_recorded", "registered", "admins_changed"]


def test_an_admin_override_is_recorded_and_shown(
    env: Env, project: tuple[Path, pytest.MonkeyPatch], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = project
    (root / "pyproject.toml").write_text(f'[tool.toolkit]\nrelease_admins = ["{ME}"]\n')
    trained_by_me(env, root, "override")
    code, out, err = toolkit(
        capsys, "review", "approve", "override", "candidate", "--reviewer", "user-b"
    )
    assert code == 0, err
    assert f"by user-b (recorded by {ME}: admin override)" in out
    assert toolkit(capsys, "promote", "override", "1")[0] == 0
    trained_by_me(env, root, "override")  # v2, promoted by force
    code, _, err = toolkit(
        capsys, "promote", "override", "2", "--force", "--reason", "hotfix for incident 7"
    )
    assert code == 0, err
    assert toolkit(capsys, "rollback", "override", "--reason", "hotfix broke scoring")[0] == 0
    code, out, _ = toolkit(capsys, "releases", "override", "--json")
    history = {e["action"] + e["to_version"]: e for e in json.loads(out) if e["to_version"]}
    approved, promoted = history["approved1"], history["promoted1"]
    assert (approved["by"], approved["recorded_by"], approved["identity"]) == (
        "user-b",
        ME,
        "os-user",
    )
    assert (promoted["by"], promoted["forced"], promoted["recorded_by"]) == (ME, False, None)
    forced = history["promoted2"]
    assert forced["forced"] is True and forced["by"] == ME
    assert forced["overrides"] == ["it has 0 of 1 required approval(s) from " + ", ".join(
        STRICT.approvers
    )]  # fmt: skip
    assert history["rolled_back1"]["forced"] is False and history["rolled_back1"]["by"] == ME
    code, out, _ = toolkit(capsys, "releases", "override")
    assert f"promoted (FORCED): override 1 -> 2 by {ME}" in out
    assert out.startswith(f"policy: 1 approval(s), from {ME}, user-b")


@pytest.mark.parametrize("status", ["FAILED", "KILLED", "RUNNING"])
def test_finding5_a_version_from_an_unfinished_run_is_not_releasable(
    env: Env,
    project: tuple[Path, pytest.MonkeyPatch],
    capsys: pytest.CaptureFixture[str],
    status: str,
) -> None:
    root, _ = project
    (root / "pyproject.toml").write_text(f'[tool.toolkit]\nrelease_admins = ["{ME}"]\n')
    name = f"from-{status.lower()}"
    trained_by_me(env, root, name, run_status=status)
    code, _, err = toolkit(capsys, "review", "approve", name, "1", "--reviewer", "user-b")
    assert code == ExitCode.USAGE and f"cannot approve {name!r} v1" in err and status in err
    code, _, err = toolkit(capsys, "promote", name, "1", "--force", "--reason", "ship it")
    assert code == ExitCode.USAGE and status in err and "not even with --force" in err
    assert actions(env, name) == ["admins_recorded", "registered"]
    (view,) = env.registry.candidates(name)
    assert status in view.problems[0] and not view.ready


def test_a_version_marked_unusable_is_not_releasable(
    env: Env, project: tuple[Path, pytest.MonkeyPatch], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = project
    trained_by_me(env, root, "unusable")
    env.registry.mark_unusable("unusable", 1, reason="run summary could not be written")
    code, _, err = toolkit(capsys, "promote", "unusable", "1", "--force", "--reason", "x")
    assert code == ExitCode.USAGE and "marked unusable (run summary could not be written)" in err
    with pytest.raises(RegistryError, match="cannot approve 'unusable' v1: it was marked"):
        env.registry.review("unusable", 1, decision="approved", reviewer="user-b")
    assert env.registry.candidates("unusable") == []
    assert "candidate" not in env.state("unusable")[0]
    assert actions(env, "unusable") == ["admins_recorded", "registered", "marked_unusable"]


def test_a_run_stopped_inside_its_registration_withdraws_the_version_it_never_heard_of(
    env: Env, project: tuple[Path, pytest.MonkeyPatch]
) -> None:
    """A SIGTERM inside MLflow's registration call: the version exists, the run's report has
    no number for it. The run's withdrawal finds it by the MLflow run it came from; a version
    of another run is left alone."""
    root, _ = project
    trained_by_me(env, root, "stopped")
    trained_by_me(env, root, "stopped")
    versions = {str(v.version): v.run_id for v in env.registry._versions("stopped")}
    assert sorted(versions) == ["1", "2"] and versions["1"] != versions["2"]
    marked = env.registry.withdraw_run("stopped", versions["2"], reason="run r interrupted")
    assert marked == ["2"]
    assert "candidate" not in env.state("stopped")[0]
    assert [c.version.version for c in env.registry.candidates("stopped")] == ["1"]
    assert actions(env, "stopped") == [
        "admins_recorded", "registered", "registered", "marked_unusable"
    ]  # fmt: skip


def test_pipeline_policy_only_tightens_the_recorded_one(env: Env) -> None:
    name, registry = "tight", env.registry
    recorded = ReleaseSpec(min_approvals=2, approvers=["alice", "bob", "carol"])
    env.release(name, GOOD, triggered_by="alice", policy=recorded)
    # A looser policy (no approval needed, anyone may approve) changes nothing.
    first = registry.review(name, 1, decision="approved", reviewer="alice", policy=OPEN)
    assert first.required == 2 and not first.promotable
    with pytest.raises(RegistryError, match="1 of 2 required approval"):
        registry.promote(name, 1, policy=OPEN)
    with pytest.raises(PermissionRefused, match="the approvers are alice, bob, carol"):
        registry.review(name, 1, decision="approved", reviewer="mallory", policy=ReleaseSpec())
    # A stricter one applies: narrower approvers, more approvals, self-approval forbidden.
    narrower = ReleaseSpec(approvers=["bob", "zed"])
    with pytest.raises(PermissionRefused, match=r"the approvers are bob$"):
        registry.review(name, 1, decision="approved", reviewer="carol", policy=narrower)
    with pytest.raises(RegistryError, match="share no approver"):
        registry.review(name, 1, decision="approved", reviewer="bob", policy=ReleaseSpec(
            approvers=["zed"]
        ))  # fmt: skip
    second = registry.review(name, 1, decision="approved", reviewer="bob")
    assert second.promotable
    with pytest.raises(RegistryError, match="2 of 3 required"):
        registry.promote(name, 1, policy=ReleaseSpec(min_approvals=3))
    # alice trained it: the recorded policy lets her approve, a spec forbidding it does not.
    no_self = ReleaseSpec(forbid_self_approval=True)
    assert tighten(recorded, no_self).forbid_self_approval
    with pytest.raises(PermissionRefused, match="self-approval is forbidden"):
        registry.review(name, 1, decision="approved", reviewer="alice", policy=no_self)
    with pytest.raises(RegistryError, match="1 of 2 required"):
        registry.promote(name, 1, policy=no_self)
    assert registry.promote(name, 1).to_version == "1"


def test_runs_tighten_the_recorded_policy_and_only_an_admin_loosens_it(env: Env) -> None:
    name = "evolving"
    base = ReleaseSpec(approvers=["alice", "bob"])
    env.release(name, GOOD, policy=base)
    env.release(name, GOOD, policy=OPEN)  # a looser spec: the recorded policy stays
    assert env.registry.policy(name) == base
    stricter = ReleaseSpec(approvers=["alice"], forbid_self_approval=True)
    env.release(name, GOOD, policy=stricter)
    assert env.registry.policy(name) == stricter
    assert actions(env, name).count("policy_tightened") == 1

    # The first registration recorded its project's admins with the model: they count, not
    # the list of whoever asks (here none at all).
    assert env.registry.release_admins(name) == (ME,)
    back = PolicyRecord(base, "pipelines/train.yaml", "1" * 64)
    entry = Registry(env.uri).record_policy(name, back, reason="team decision #12")
    assert entry.action == "policy_changed" and entry.recorded_by is None
    assert env.registry.policy(name) == base
    env.registry.set_admins(name, ["ops-lead"], reason="ops owns releases now")
    looser = PolicyRecord(OPEN, "pipelines/loose.yaml", "2" * 64)
    with pytest.raises(PermissionRefused, match=r"recorded with 'evolving' \(ops-lead\) may"):
        env.registry.record_policy(name, looser, reason="no more reviews")
    assert env.registry.policy(name) == base


def test_a_model_without_a_recorded_policy_fails_closed(
    env: Env, project: tuple[Path, pytest.MonkeyPatch], capsys: pytest.CaptureFixture[str]
) -> None:
    """Models registered before policies were bound to models, or with a damaged policy."""
    root, _ = project
    trained_by_me(env, root, "legacy")
    for key in ("toolkit.policy", "toolkit.policy.source", "toolkit.policy.spec_sha256"):
        env.client.delete_registered_model_tag("legacy", key)
    code, _, err = toolkit(capsys, "promote", "legacy", "1", "--force", "--reason", "x")
    assert code == ExitCode.USAGE and "no recorded release policy" in err and "--pipeline" in err
    code, _, err = toolkit(capsys, "review", "approve", "legacy", "1")
    assert code == ExitCode.USAGE and "no recorded release policy" in err
    # The spec that releases this model records its policy (in the history), then applies.
    code, _, err = toolkit(
        capsys, "review", "approve", "legacy", "1", "--pipeline", "pipelines/train.yaml"
    )
    assert code == ExitCode.USAGE and "self-approval is forbidden" in err
    assert env.registry.policy("legacy") == STRICT
    assert actions(env, "legacy") == ["admins_recorded", "registered", "policy_recorded"]

    env.client.set_registered_model_tag("legacy", "toolkit.policy", "{not json")
    code, _, err = toolkit(capsys, "promote", "legacy", "1", "--force", "--reason", "x")
    assert code == ExitCode.USAGE and "unreadable" in err


def test_spec_text_of_the_policy() -> None:
    """The policy text `releases` prints (rendered from the recorded record)."""
    record = PolicyRecord(STRICT, "pipelines/train.yaml", "ab" * 32)
    text = record.describe()
    assert text.startswith(f"1 approval(s), from {ME}, user-b, user-c, self-approval forbidden")
    assert "pipelines/train.yaml" in text and "abababababab" in text
    assert json.loads(record.tags()["toolkit.policy"]) == STRICT.model_dump(mode="json")
