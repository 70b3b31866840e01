"""SIGTERM at any moment of a ``toolkit`` command ends it with exit 130 and no RUNNING run.

The moments are found from the process itself, not guessed with sleeps: the handler's
installation is read from ``/proc/PID/status``, the run's progress from its run folder.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.procs import catches_signal, kill_group, start_toolkit, wait_for
from support.projects import mini_project, tracking_uri
from support.stores import run_statuses, running_runs

SPEC = """
name: sig
steps:
  - {name: nap, notebook: ../notebooks/sleeps.ipynb, parameters: {seconds: 20}, outputs: {out: nap.txt}}
  - {name: after, notebook: ../notebooks/ok.ipynb, inputs: {inp: nap.out}, outputs: {out: after.txt}}
"""
QUICK = """
name: quick
steps:
  - {name: one, notebook: ../notebooks/ok.ipynb, outputs: {out: one.txt}}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signals")
    mini_project(root, SPEC, ("sleeps", "ok"), name="sig", store=True)
    mini_project(root, QUICK, ("ok",), name="quick")
    return root


def _runs(project: Path, pipeline: str) -> list[Path]:
    return sorted((project / "runs" / pipeline).glob("*")) if (project / "runs").exists() else []


def _handler_installed(proc: subprocess.Popen) -> Callable[[], bool]:
    return lambda: catches_signal(proc.pid, signal.SIGTERM)


def _partial(project: Path) -> Callable[[], bool]:
    return lambda: any(any(p.glob("notebooks/.nap.partial.ipynb")) for p in _runs(project, "sig"))


def _summary(project: Path, pipeline: str) -> Callable[[], bool]:
    return lambda: any((p / "summary.json").exists() for p in _runs(project, pipeline))


def _terminate(proc: subprocess.Popen, ready: Callable[[], object]) -> tuple[int, str, str]:
    """SIGTERM ``proc`` at the moment ``ready`` turns true (stopped first, so it cannot exit
    in between), then wait for it; returns ``(exit code, stdout, stderr)``."""
    try:
        wait_for(lambda: ready() or proc.poll() is not None, timeout=240, what="the kill point")
        proc.send_signal(signal.SIGSTOP)
        assert proc.poll() is None, "the command ended before the kill point was reached"
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=180)
        return proc.returncode, out, err
    finally:
        kill_group(proc)


CASES = {
    "check, as soon as it can handle signals": (["check"], "handler"),
    "plan, as soon as it can handle signals": (["plan", "pipelines/sig.yaml"], "handler"),
    "runs list, as soon as it can handle signals": (["runs", "list"], "handler"),
    "run, before the spec is loaded": (["run", "pipelines/sig.yaml"], "handler"),
    "run, while a step's kernel executes": (["run", "pipelines/sig.yaml", "--json"], "in-step"),
    "run, after its summary is written (closing MLflow runs, exiting)": (
        ["run", "pipelines/quick.yaml"],
        "after-summary",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_sigterm_at_any_moment_exits_130_and_leaves_no_running_run(
    project: Path, case: str
) -> None:
    """SIGTERM at this moment of the command: exit 130, no MLflow run left RUNNING, and a run
    folder (if any) with a summary that is not 'succeeded' unless the run had finished."""
    args, point = CASES[case]
    before = {p.name for p in _runs(project, "sig") + _runs(project, "quick")}
    proc = start_toolkit(args, project)
    ready = {
        "handler": _handler_installed(proc),
        "in-step": _partial(project),
        "after-summary": lambda: time.sleep(0) or _new_summary(project, before),
    }[point]
    code, out, err = _terminate(proc, ready)
    assert code == 130, err[-2000:]

    assert "interrupted" in err
    assert running_runs(tracking_uri(project)) == []
    for run_dir in _runs(project, "sig") + _runs(project, "quick"):
        if run_dir.name in before:
            continue
        summary = json.loads((run_dir / "summary.json").read_text())
        if point == "in-step":
            assert summary["status"] == "interrupted"
    if point == "in-step":  # the JSON summary still reaches stdout, the step's runs are closed
        printed = json.loads(out)
        assert printed["status"] == "interrupted"
        assert printed["steps"][0]["status"] == "interrupted"
        statuses = run_statuses(tracking_uri(project))
        pipeline, step = printed["mlflow_run_id"], printed["steps"][0]["mlflow_run_id"]
        assert statuses[pipeline] == statuses[step] == "KILLED"


def _new_summary(project: Path, before: set[str]) -> bool:
    return any(
        (p / "summary.json").exists() and p.name not in before for p in _runs(project, "quick")
    )
