"""The runner with real Jupyter kernels: success, every kind of step failure, parallelism."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from conftest import MakeProject

from toolkit.core.errors import ExitCode
from toolkit.execute import RunRequest, run_pipeline
from toolkit.reports.summary import to_text

BRANCHES = """
name: branches
steps:
  - name: good
    notebook: ../notebooks/ok.ipynb
    parameters: {x: 7}
    outputs: {out: good.txt}
  - name: after_good
    notebook: ../notebooks/ok.ipynb
    inputs: {inp: good.out}
    outputs: {out: after_good.txt}
  - name: bad
    notebook: ../notebooks/raises.ipynb
    outputs: {out: bad.txt}
  - name: after_bad
    notebook: ../notebooks/ok.ipynb
    inputs: {inp: bad.out}
    outputs: {out: after_bad.txt}
"""


def test_failing_step_skips_only_its_downstream(make_project: MakeProject) -> None:
    report = run_pipeline(
        RunRequest(make_project(BRANCHES, notebooks=("ok", "raises"), store=True), workers=2)
    )
    status = {s.name: s.status for s in report.steps}
    assert status == {
        "good": "succeeded",
        "after_good": "succeeded",
        "bad": "failed",
        "after_bad": "skipped",
    }
    assert report.exit_code == ExitCode.STEP_FAILED
    assert report.step("after_bad").reason == "upstream step 'bad' failed"
    # The chain passed data along: after_good read good's output.
    assert Path(report.step("after_good").outputs["out"]).read_text() == "a:7;a:1;"
    assert report.step("good").metrics == {"x": 7.0}

    bad = report.step("bad")
    assert bad.error is not None
    assert bad.error["kind"] == "cell"
    assert bad.error["ename"] == "ValueError"
    assert "boom with x=1" in bad.error["evalue"]
    assert "ValueError" in bad.error["traceback"]
    assert "cell" in bad.error["message"]
    # The executed notebook is kept, with the error in it, for debugging.
    kept = json.loads(Path(bad.notebook).read_text())
    assert kept["metadata"]["papermill"]["exception"] is True
    summary = json.loads((Path(report.run_dir) / "summary.json").read_text())
    assert summary["exit_code"] == 1 and summary["steps"][2]["status"] == "failed"


def test_dead_kernel_and_missing_output_are_step_failures(make_project: MakeProject) -> None:
    spec = """
    name: failures
    steps:
      - {name: dies, notebook: ../notebooks/dies.ipynb}
      - name: lazy
        notebook: ../notebooks/writes_nothing.ipynb
        outputs: {out: never.txt}
    """
    report = run_pipeline(
        RunRequest(make_project(spec, notebooks=("dies", "writes_nothing"), store=True))
    )
    dies, lazy = report.step("dies"), report.step("lazy")
    assert dies.status == "failed" and dies.error["kind"] == "dead_kernel"
    assert "kernel died" in dies.error["message"]
    assert lazy.status == "failed" and lazy.error["kind"] == "missing_output"
    assert "out" in lazy.error["message"] and "never.txt" in lazy.error["message"]
    assert "parameter of that name: write to out (e.g. df.to_csv(out))" in lazy.error["hint"]
    assert lazy.notebook is not None and Path(lazy.notebook).exists()
    shown = to_text(report)  # what the terminal shows, under the step's failure
    assert "  hint: the notebook receives each output's absolute path" in shown


def test_a_project_kernel_not_installed_here_says_so_and_how_to_fix_it(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's own ``kernel:`` is checked with the spec (tests/plan); the project's kernel is
    met when a step starts: typically a project made by ``toolkit init`` in another Python."""
    spec = """
    name: elsewhere
    steps:
      - {name: only, notebook: ../notebooks/ok.ipynb}
    """
    path = make_project(spec, notebooks=("ok",), store=True)
    monkeypatch.setenv("TOOLKIT_KERNEL", "pyhton3")
    report = run_pipeline(RunRequest(path, track=False))
    only = report.step("only")
    assert report.exit_code == ExitCode.STEP_FAILED and only.status == "failed"
    assert "no Jupyter kernel named 'pyhton3' is installed for" in only.error["message"]
    assert only.error["hint"].startswith("did you mean 'python3'?")
    assert "toolkit init --kernel-only" in only.error["hint"]


def test_step_timeout_is_enforced(make_project: MakeProject) -> None:
    spec = """
    name: slow
    steps:
      - name: nap
        notebook: ../notebooks/sleeps.ipynb
        parameters: {seconds: 600}
        timeout: 2
    """
    report = run_pipeline(RunRequest(make_project(spec, notebooks=("sleeps",), store=True)))
    nap = report.step("nap")
    assert nap.status == "failed"
    assert nap.error["kind"] == "timeout"
    assert "timed out" in nap.error["message"]
    # Not a timing threshold: the step was stopped long before its notebook could end (a
    # loaded machine can take tens of seconds just to start the kernel).
    assert nap.duration is not None and nap.duration < 300
    assert report.exit_code == ExitCode.STEP_FAILED


@pytest.mark.slow
def test_independent_steps_overlap_with_two_workers(make_project: MakeProject) -> None:
    spec = """
    name: parallel
    steps:
      - {name: one, notebook: ../notebooks/sleeps.ipynb, parameters: {seconds: 3}, outputs: {out: one.txt}}
      - {name: two, notebook: ../notebooks/sleeps.ipynb, parameters: {seconds: 3}, outputs: {out: two.txt}}
    """
    report = run_pipeline(
        RunRequest(make_project(spec, notebooks=("sleeps",), store=True), workers=2)
    )
    one, two = report.step("one"), report.step("two")
    assert {one.status, two.status} == {"succeeded"}
    # Structural, not a timing threshold: each step started before the other ended.
    start1, end1 = datetime.fromisoformat(one.started_at), datetime.fromisoformat(one.ended_at)
    start2, end2 = datetime.fromisoformat(two.started_at), datetime.fromisoformat(two.ended_at)
    assert start1 < end2 and start2 < end1


def test_each_run_gets_its_own_folder(make_project: MakeProject) -> None:
    spec = "name: twice\nsteps:\n  - {name: a, notebook: ../notebooks/ok.ipynb, outputs: {out: a.txt}}\n"
    path = make_project(spec, store=True)
    first = run_pipeline(RunRequest(path))
    second = run_pipeline(RunRequest(path))
    assert first.run_dir != second.run_dir
    for report in (first, second):
        assert Path(report.run_dir, "notebooks", "a.ipynb").exists()
        assert Path(report.run_dir, "data", "a.txt").read_text() == "a:1;"


def test_retries_record_attempts(make_project: MakeProject, tmp_path: Path) -> None:
    spec = f"""
    name: flaky
    steps:
      - name: wobbly
        notebook: ../notebooks/flaky.ipynb
        parameters: {{marker: "{tmp_path / "marker"}"}}
        outputs: {{out: out.txt}}
        retries: 1
    """
    report = run_pipeline(RunRequest(make_project(spec, notebooks=("flaky",), store=True)))
    assert report.step("wobbly").status == "succeeded"
    assert report.step("wobbly").attempts == 2


def test_a_retry_starts_from_an_empty_folder_output(
    make_project: MakeProject, tmp_path: Path
) -> None:
    spec = f"""
    name: flaky_folder
    steps:
      - name: train
        notebook: ../notebooks/flaky_folder.ipynb
        parameters: {{marker: "{tmp_path / "marker"}"}}
        outputs: {{out: model}}
        retries: 1
    """
    path = make_project(spec, notebooks=("flaky_folder",))
    report = run_pipeline(RunRequest(path, track=False))
    assert report.exit_code == 0, report.step("train").error
    assert report.step("train").attempts == 2
    # The failed attempt's half-written file is gone: the folder is the second attempt's alone.
    model = Path(report.run_dir, "data", "model")
    assert sorted(p.name for p in model.iterdir()) == ["model.txt"]
