"""``toolkit reproduce`` on a committed mini-project: identical, refused when dirty, differing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import MakeProject

from toolkit.cli import main

SPEC = """
name: repro
steps:
  - name: a
    notebook: ../notebooks/ok.ipynb
    outputs: {out: a.txt}
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def test_reproduce_reports_identical_then_refuses_a_dirty_tree(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_project(SPEC)
    root = spec.parents[1]
    (root / ".gitignore").write_text("runs/\nmlruns/\nmlflow.db\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "mini")
    monkeypatch.chdir(root)
    assert main(["run", str(spec), "--json", "--quiet", "-p", "x=4"]) == 0
    original = json.loads(capsys.readouterr().out)["run_id"]

    assert main(["reproduce", original, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "identical"
    kinds = {(c["kind"], c["key"]) for c in report["comparisons"]}
    assert ("metric", "x") in kinds and ("fingerprint", "output.out") in kinds
    assert "duration_s" in report["skipped_metrics"]

    # A changed notebook makes the tree dirty: refused, with the reason and the way out.
    nb = root / "notebooks" / "ok.ipynb"
    nb.write_text(nb.read_text().replace('label = \\"a\\"', 'label = \\"b\\"'))
    assert main(["reproduce", original]) == 2
    err = capsys.readouterr().err
    assert "uncommitted changes" in err and "--allow-dirty" in err

    # Forced through, the changed code gives a different output: reported as differing.
    assert main(["reproduce", original, "--allow-dirty", "--json"]) == 8
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "differing"
    assert any(
        c["kind"] == "fingerprint" and c["verdict"] == "differing" for c in report["comparisons"]
    )


def test_reproduce_unknown_run(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(make_project(SPEC).parents[1])
    assert main(["reproduce", "no-such-run"]) == 2
    assert "no pipeline run 'no-such-run'" in capsys.readouterr().err
