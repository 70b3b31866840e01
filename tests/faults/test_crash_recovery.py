"""kill -9 at points of a run: the wreckage is found, closed and can be resumed.

The orchestrator (or one of its kernels) is killed with SIGKILL, so no clean-up code runs.
Afterwards ``toolkit runs list`` reports the run as dead, ``toolkit runs repair`` closes its
MLflow runs KILLED (tagged) and writes a summary ``interrupted``, the next run of the pipeline
does the same on its own (stale lock), and ``--resume`` finishes it. The killed run is a real
process; the commands that find and repair it run in the test's process (``support.cli``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import run_here
from support.procs import (
    cell_running,
    children,
    cmdline,
    kill_daemons,
    kill_group,
    start_toolkit,
    wait_for,
)
from support.projects import mini_project, tracking_uri
from support.stores import run_statuses, run_tags, running_runs

SPEC = """
name: crash
steps:
  - {name: first, notebook: ../notebooks/sleeps.ipynb, parameters: {seconds: 3}, outputs: {out: first.txt}}
  - {name: second, notebook: ../notebooks/sleeps.ipynb, inputs: {}, parameters: {seconds: 30}, outputs: {out: second.txt}}
"""


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    # A migrated store (copied, see support.template_store) spares each killed run MLflow's
    # migrations; the earliest kill point keeps MLflow creating it, so a kill that lands while
    # the store is being made stays covered.
    callspec = getattr(request.node, "callspec", None)
    early = callspec is not None and callspec.params.get("point") == "after the plan is written"
    mini_project(tmp_path, SPEC, ("sleeps",), name="crash", store=not early)
    return tmp_path


def _run_dirs(project: Path) -> list[Path]:
    base = project / "runs" / "crash"
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.exists() else []


def _has(pattern: str, project: Path) -> Callable[[], bool]:
    return lambda: any(list(d.glob(pattern)) for d in _run_dirs(project))


def _tracked(project: Path) -> Callable[[], bool]:
    """The pipeline's MLflow run is open (some run is RUNNING in the store)."""
    return lambda: bool(running_runs(tracking_uri(project)))


KILL_POINTS: dict[str, Callable[[Path], Callable[[], bool]]] = {
    "after the plan is written": lambda p: _has("plan.json", p),
    "once the MLflow run is open": _tracked,
    "while the first step executes": lambda p: _has("notebooks/.first.partial.ipynb", p),
    "while the second step executes": lambda p: _has("notebooks/.second.partial.ipynb", p),
}


def _kill_orchestrator(project: Path, point: str) -> Path:
    proc = start_toolkit(["run", "pipelines/crash.yaml"], project)
    try:
        wait_for(
            lambda: KILL_POINTS[point](project)() or proc.poll() is not None,
            timeout=240,
            what=point,
        )
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        kill_group(proc)  # the orphaned kernels too
    (run_dir,) = _run_dirs(project)
    assert not (run_dir / "summary.json").exists()
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_of_the_orchestrator_is_detected_and_repaired(project: Path, point: str) -> None:
    """kill -9 of the orchestrator at this point: `runs list` says it died, `runs repair`
    closes its MLflow runs KILLED with a tag and writes a summary 'interrupted'."""
    run_dir = _kill_orchestrator(project, point)
    uri = tracking_uri(project)
    listed = run_here(project, "runs", "list")
    left_running = running_runs(uri)
    if left_running:  # the run was tracked: the list must say it died
        assert "DIED" in listed.stdout and run_dir.name in listed.stderr, listed
    repaired = run_here(project, "runs", "repair", "--json")
    assert repaired.returncode == 0, repaired.stderr
    found = json.loads(repaired.stdout)
    assert [f["run_id"] for f in found] == [run_dir.name]
    assert sorted(found[0]["mlflow_runs"]) == sorted(left_running)
    assert running_runs(uri) == []
    for run_id in left_running:
        assert run_statuses(uri)[run_id] == "KILLED"
        assert "toolkit.interrupted" in run_tags(uri, run_id)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["exit_code"] == 130
    again = run_here(project, "runs", "repair", "--json")
    assert json.loads(again.stdout) == []  # nothing left to repair


@pytest.mark.slow
def test_the_next_run_repairs_a_dead_run_through_its_stale_lock(project: Path) -> None:
    """kill -9, then simply run again: the new run closes the dead one's MLflow runs and
    writes its summary, then runs normally."""
    dead = _kill_orchestrator(project, "while the first step executes")
    result = run_here(project, "run", "pipelines/crash.yaml", "-p", "second.seconds=0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"run {dead.name} had died" in result.stderr
    assert json.loads((dead / "summary.json").read_text())["status"] == "interrupted"
    assert running_runs(tracking_uri(project)) == []


@pytest.mark.slow
def test_resume_finishes_a_run_killed_with_kill_9(project: Path) -> None:
    """`--resume RUN_ID` of a run killed by kill -9 (never repaired) works, and `--run-id`
    with its id points at `--resume`."""
    dead = _kill_orchestrator(project, "while the second step executes")
    same_id = run_here(project, "run", "pipelines/crash.yaml", "--run-id", dead.name)
    assert same_id.returncode == 2 and f"--resume {dead.name}" in same_id.stderr
    resumed = run_here(
        project, "run", "pipelines/crash.yaml", "--resume", dead.name, "-p", "second.seconds=0",
        "--json",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout)
    assert summary["run_id"] == dead.name and summary["status"] == "succeeded"
    assert (dead / "data" / "second.txt").exists() or any(dead.rglob("second.txt"))
    assert running_runs(tracking_uri(project)) == []


def _kernels_of(proc: subprocess.Popen) -> list[int]:
    """The orchestrator's kernels: the one running the step, and any finished one still
    shutting down (killing that one too changes nothing)."""
    return [pid for pid in children(proc.pid) if "ipykernel" in cmdline(pid)]


@pytest.mark.slow
def test_kill_9_of_a_kernel_fails_the_step_and_closes_everything(project: Path) -> None:
    """kill -9 of the kernel running a step: the step fails naming the kernel (exit 1), its
    executed notebook is kept, no MLflow run stays RUNNING."""
    proc = start_toolkit(
        ["run", "pipelines/crash.yaml", "--json", "--quiet", "--workers", "1"], project
    )
    try:
        runs = project / "runs" / "crash"
        wait_for(lambda: cell_running(runs, "second"), timeout=240, what="step 2's cell to run")
        kernels = wait_for(lambda: _kernels_of(proc), timeout=60, what="the kernel")
        for pid in kernels:  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=180)
    finally:
        kill_group(proc)
    assert proc.returncode == 1, err[-2000:]
    summary = json.loads(out)
    second = next(s for s in summary["steps"] if s["name"] == "second")
    assert second["status"] == "failed", second
    # papermill reports a killed kernel either as dead or as one that stopped answering.
    error = second["error"]
    assert error["kind"] == "dead_kernel" or "kernel" in error["message"].lower(), error
    assert second["notebook"] and Path(second["notebook"]).exists()
    assert running_runs(tracking_uri(project)) == []


@pytest.mark.slow
def test_kill_9_with_the_daemon_tracking_leaves_no_run_running(project: Path) -> None:
    """Outside CI the engine daemon does the run's MLflow calls. kill -9 of the orchestrator
    mid-step: the daemon sees its session end without a goodbye and ends the run's MLflow runs
    KILLED within seconds, before anyone runs ``toolkit runs repair``."""
    folder = tempfile.mkdtemp(prefix="tkd-")  # a daemon of this test's own
    env = {"TOOLKIT_NO_DAEMON": "", "TOOLKIT_HELPER": "1", "TOOLKIT_DAEMON_DIR": folder}
    proc = start_toolkit(["run", "pipelines/crash.yaml", "--quiet"], project, env)
    uri = tracking_uri(project)
    try:
        runs = project / "runs" / "crash"
        wait_for(lambda: cell_running(runs, "second"), timeout=240, what="step 2's cell to run")
        # The pipeline's run and the step's (a new daemon imports MLflow first: seconds).
        wait_for(lambda: len(running_runs(uri)) == 2, timeout=60, what="2 runs open")
        open_runs = running_runs(uri)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        wait_for(lambda: running_runs(uri) == [], timeout=30, what="the daemon to end them")
    finally:
        kill_group(proc)
        kill_daemons(project / ".toolkit" / "logs" / "engine-daemon.log")
        shutil.rmtree(folder, ignore_errors=True)
    statuses = run_statuses(uri)
    assert [statuses[run] for run in open_runs] == ["KILLED", "KILLED"]
    assert "killed" in run_tags(uri, open_runs[0])["toolkit.error.message"]
