"""``toolkit reproduce`` on committed mini-projects: a temporary worktree of the recorded commit,
the user's tree left alone, and verdicts that say what was compared."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest
from conftest import MakeProject

from toolkit.cli.main import main
from toolkit.core.settings import load_settings
from toolkit.tracking.client import Tracker

# The seed lives in an ignored data folder: git does not have it, reproduce must find it.
SPEC = """
name: repro
steps:
  - name: a
    notebook: ../notebooks/ok.ipynb
    inputs: {inp: {path: ../data/seed.txt}}
    outputs: {out: a.txt}
"""
IGNORED = "runs/\nmlruns/\nmlflow.db\n.toolkit/\ndata/\n"


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def commit_project(spec: Path, ignored: str = IGNORED) -> Path:
    root = spec.parents[1]
    (root / ".gitignore").write_text(ignored)
    (root / "uv.lock").write_text("version = 1\n# a stand-in lock: its hash is recorded\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "mini")
    return root


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert out.strip(), f"exit {code}, no JSON; stderr: {err}"
    return code, json.loads(out)


def tracker_of(root: Path) -> Tracker:
    settings = load_settings(root)
    return Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir)


def test_reproduce_checks_the_commit_out_beside_the_users_tree(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_project(SPEC, store=True)
    (spec.parents[1] / "data").mkdir()
    (spec.parents[1] / "data" / "seed.txt").write_text("seed;")
    root = commit_project(spec)
    monkeypatch.chdir(root)
    code, summary = run_json(capsys, "run", str(spec), "--quiet", "-p", "x=4")
    assert code == 0
    original = summary["run_id"]
    tracker = tracker_of(root)
    first = tracker.get_run(original)
    assert first.tags["toolkit.lock.sha256"] == first.tags["toolkit.lock.sha256"].lower()
    env = tracker.read_json(first.run_id, "environment.json")
    assert env["lock"]["file"] == "uv.lock"
    assert env["lock"]["sha256"] == first.tags["toolkit.lock.sha256"]
    assert env["kernel_interpreter"]["executable"]

    # The user is mid-edit: a changed notebook that is not committed. Reproduce must run the
    # recorded commit's notebook, and leave the edit exactly where it is.
    nb = root / "notebooks" / "ok.ipynb"
    edited = nb.read_text().replace('label = \\"a\\"', 'label = \\"edited\\"')
    assert edited != nb.read_text()
    nb.write_text(edited)
    before = git(root, "status", "--porcelain")
    worktrees = git(root, "worktree", "list")
    code, report = run_json(capsys, "reproduce", original)
    assert code == 0, report
    assert report["verdict"] == "identical" and report["headline"] == "identical"
    assert git(root, "status", "--porcelain") == before and nb.read_text() == edited
    assert git(root, "worktree", "list") == worktrees  # the temporary worktree is gone
    assert report["commit"] == git(root, "rev-parse", "HEAD").strip()
    compared = {(c["kind"], c["step"], c["key"]): c for c in report["comparisons"]}
    assert compared[("metric", "a", "x")]["original"] == 4.0
    assert compared[("fingerprint", "a", "output.out")]["verdict"] == "identical"
    assert compared[("step", "a", "status")]["new"] == "succeeded"
    assert compared[("environment", "", "packages")]["verdict"] == "identical"
    assert "duration_s" in report["skipped_metrics"]

    # Recorded beside the original: same runs dir, same store, linked both ways.
    new_dir = root / "runs" / "repro" / report["new_run"]
    assert (new_dir / "data" / "a.txt").read_text() == "seed;a:4;"
    new = tracker.get_run(report["new_run"])
    assert new.tags["toolkit.reproduces"] == first.run_id
    assert new.tags["toolkit.reproduce.verdict"] == "identical"
    assert tracker.get_run(original).tags["toolkit.reproduced_by"] == new.run_id
    page = (root / "runs" / "repro" / original / "report.html").read_text()
    assert "Latest reproduction" in page and report["new_run"] in page

    # An environment difference (the recorded file says another version) is reported, and
    # fails the verdict only with --strict-env.
    env["packages"]["pyyaml"] = "0.0.1"
    tracker.log_dict(first.run_id, env, "environment.json")
    assert main(["reproduce", original]) == 0
    text = capsys.readouterr().out
    assert "package pyyaml" in text and "0.0.1 ->" in text and "IDENTICAL" in text
    code, strict = run_json(capsys, "reproduce", original, "--strict-env")
    assert code == 8 and strict["verdict"] == "differing"
    changed = [c for c in strict["comparisons"] if c["key"] == "package pyyaml"]
    assert changed[0]["original"] == "0.0.1" and changed[0]["verdict"] == "differing"


def test_untracked_file_makes_the_run_dirty_and_reproduce_refuses_it(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_project(
        SPEC.replace("    inputs: {inp: {path: ../data/seed.txt}}\n", ""), store=True
    )
    root = commit_project(spec)
    monkeypatch.chdir(root)
    (root / "helper.py").write_text("# not committed: the commit would not have it\n")
    code, summary = run_json(capsys, "run", str(spec), "--quiet")
    assert code == 0
    run = tracker_of(root).get_run(summary["run_id"])
    assert run.tags["git.dirty"] == "true"
    assert main(["reproduce", summary["run_id"]]) == 2
    err = capsys.readouterr().err
    assert "uncommitted or untracked changes" in err and "--allow-dirty" in err
    code, report = run_json(capsys, "reproduce", summary["run_id"], "--allow-dirty")
    assert code == 0 and report["verdict"] == "identical"
    assert any("dirty tree" in n for n in report["notes"])


def test_nothing_to_compare_is_its_own_outcome(
    make_project: MakeProject,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = make_project(
        "name: quiet\nsteps:\n  - {name: talk, notebook: ../notebooks/talk.ipynb}\n",
        notebooks=(),
        store=True,
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('hello', n)"),
    ]
    nbformat.write(nb, spec.parents[1] / "notebooks" / "talk.ipynb")
    root = commit_project(spec)
    monkeypatch.chdir(root)
    code, summary = run_json(capsys, "run", str(spec), "--quiet")
    assert code == 0
    assert main(["reproduce", summary["run_id"]]) == 8
    text = capsys.readouterr().out
    assert "NOTHING TO COMPARE" in text and "IDENTICAL" not in text
    assert "step.log_metric" in text and "outputs:" in text


def test_a_failed_run_reproduces_its_failure(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_project(
        "name: broken\nsteps:\n  - {name: boom, notebook: ../notebooks/raises.ipynb}\n",
        notebooks=("raises",),
        store=True,
    )
    root = commit_project(spec)
    monkeypatch.chdir(root)
    code, summary = run_json(capsys, "run", str(spec), "--quiet")
    assert code == 1
    code, report = run_json(capsys, "reproduce", summary["run_id"])
    assert code == 0 and report["verdict"] == "reproduced_failure"
    assert report["headline"] == "reproduced the failure"
    status = next(c for c in report["comparisons"] if c["kind"] == "step")
    assert status["original"] == status["new"] == "failed: ValueError"


def test_changed_outside_input_missing_commit_and_unknown_runs(
    make_project: MakeProject,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    outside = tmp_path / "shared-data" / "seed.txt"
    outside.parent.mkdir()
    outside.write_text("v1;")
    spec = make_project(SPEC.replace("../data/seed.txt", str(outside)), store=True)
    root = commit_project(spec)
    monkeypatch.chdir(root)
    code, summary = run_json(capsys, "run", str(spec), "--quiet")
    assert code == 0
    original = summary["run_id"]

    outside.write_text("v2;")
    assert main(["reproduce", original]) == 2
    err = capsys.readouterr().err
    assert "changed since run" in err and str(outside) in err and "--allow-changed-inputs" in err
    code, report = run_json(capsys, "reproduce", original, "--allow-changed-inputs")
    assert code == 8 and report["verdict"] == "differing"
    assert any("inputs changed" in n for n in report["notes"])

    # Unknown ids and runs of another pipeline: exit 2 with a did-you-mean.
    assert main(["reproduce", original[:-1] + "x"]) == 2
    assert f"did you mean '{original}'" in capsys.readouterr().err
    assert main(["reproduce", original, "--pipeline", "other"]) == 2
    assert "a run of pipeline 'repro', not 'other'" in capsys.readouterr().err

    # The recorded commit is not in this clone (as after a shallow clone): exit 2, how to fetch.
    tracker = tracker_of(root)
    missing = "0123456789abcdef0123456789abcdef01234567"
    tracker.set_tags(tracker.get_run(original).run_id, {"git.commit": missing})
    assert main(["reproduce", original]) == 2
    err = capsys.readouterr().err
    assert missing in err and f"git fetch origin {missing}" in err
