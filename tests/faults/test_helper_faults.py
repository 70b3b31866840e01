"""The engine helper (the process that checks a run's contracts and renders its notebooks for
MLflow) crashes: the run never notices.

The daemon (the helper kept warm between runs, the default) is killed with SIGKILL at each point
where it holds work: with a check received but nothing validated, with a check's result files
written but the reply not yet sent, while rendering a step's notebook to log it, with the run's
first MLflow call received, with a step's MLflow run opened but its id not yet sent. Every time the
orchestrator does the rest itself and the run ends exactly like one that never had a helper: same
exit code, same contract results, one model version registered and usable, no MLflow run left
RUNNING; the next run starts another daemon. The daemon's render process, killed at every
render, costs the run its renders (done by the run instead) and nothing else. The helper a run
starts for itself
(``TOOLKIT_HELPER=1`` without a daemon) is killed at one of those points, and never outlives its
orchestrator, even one killed with kill -9.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_here
from support.procs import (
    children,
    cmdline,
    daemon_pids,
    kill_daemons,
    kill_group,
    start_toolkit,
    wait_for,
)
from support.projects import mini_project, tracking_uri
from support.stores import (
    child_runs,
    model_tags,
    model_versions,
    running_runs,
    usable_versions,
    version_tags,
)

from toolkit.execute.engine_helper import FAULT_ENV, FAULT_POINTS

NOTEBOOKS = Path(__file__).parent / "notebooks"
SPEC = """
name: helper
steps:
  - name: make
    notebook: ../notebooks/table.ipynb
    parameters: {rows: 20}
    inputs:
      inp: {path: ../seed.csv, contract: tiny}
    outputs:
      out: {path: table.csv, contract: tiny}
  - {name: fit, notebook: ../notebooks/fit_tiny.ipynb, outputs: {out: model.joblib}}
model: {name: helper_model, step: fit, output: out}
gates:
  step: fit
  checks: ["accuracy >= 0.5"]
"""
SUITE = {
    "name": "tiny",
    "expectations": [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["id", "score"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "score", "min_value": 0, "max_value": 100},
            "severity": "warning",
        },
    ],
}
# What a contract result says about the data; paths and times differ from run to run.
VERDICT = ("target", "direction", "suite", "on_fail", "success", "blocking", "status", "failures")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("helper")
    # Registration records them with the model, wherever it runs (this process, the helper).
    (root / "pyproject.toml").write_text(
        '[project]\nname = "mini"\n[tool.toolkit]\nrelease_admins = ["ops-lead"]\n'
    )
    mini_project(
        root,
        SPEC,
        {"table": NOTEBOOKS / "table.ipynb", "fit_tiny": NOTEBOOKS / "fit_tiny.ipynb"},
        name="helper",
    )
    (root / "expectations").mkdir()
    (root / "expectations" / "tiny.json").write_text(json.dumps(SUITE))
    (root / "seed.csv").write_text("id,score\n0,-1\n1,0.1\n2,0.2\n")
    return root


def _run(project: Path, env: dict[str, str], *, withdrawn: int = 0) -> dict[str, Any]:
    """Run the pipeline: it succeeds, registers exactly one usable version (``withdrawn``
    more, unusable: registered by a helper that died before saying so), leaves nothing
    RUNNING."""
    uri = tracking_uri(project)
    before = len(model_versions(uri, "helper_model"))
    usable_before = len(usable_versions(uri, "helper_model"))
    result = run_here(project, "run", "pipelines/helper.yaml", "--force", "--json", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert running_runs(uri) == []
    versions = model_versions(uri, "helper_model")
    assert len(versions) == before + 1 + withdrawn  # none lost, none doubled
    assert len(usable_versions(uri, "helper_model")) == usable_before + 1
    assert str(summary["registered"]["version"]) in usable_versions(uri, "helper_model")
    assert json.loads(model_tags(uri, "helper_model")["toolkit.admins"]) == ["ops-lead"]
    return summary


def _verdicts(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"step": s["name"], **{k: c.get(k) for k in VERDICT}, "stats": c.get("statistics")}
        for s in summary["steps"]
        for c in s["contracts"]
    ]


@pytest.fixture(scope="module")
def without_helper(project: Path) -> dict[str, Any]:
    return _run(project, {})  # the helper is off unless TOOLKIT_HELPER=1


# The points where the helper holds work. Killed before it holds any ("start", "warm-up"), the
# orchestrator meets the same dead pipe at its first request as at these; that hand-back is
# tested in tests/execute/test_engine_helper.py, without a pipeline run (~25 s of CPU each).
HOLDING_WORK = ("check-received", "check-written", "logging")
# The daemon also does the run's MLflow calls: killed before the first one is done, and after
# it opened a step's run whose id never reached the run (which must adopt it, not open another).
TRACKING = ("track-received", "track-done:start_step")
# ... and the registry's: killed with a version registered but the run not told, which must
# leave that version unusable and register its own.
RELEASE = ("release-done:register",)
assert set(HOLDING_WORK) <= set(FAULT_POINTS), "a fault point was renamed: update HOLDING_WORK"
assert {p.split(":")[0] for p in TRACKING + RELEASE} <= set(FAULT_POINTS), "update TRACKING"


def _assert_like_without_helper(summary: dict[str, Any], without: dict[str, Any], project: Path):
    """The run succeeded exactly as one without a helper: same contract results (the warning
    there, not blocking, with its result files), gates passed, every step run carries its
    notebook rendered."""
    assert summary["status"] == "succeeded" and summary["exit_code"] == 0
    assert _verdicts(summary) == _verdicts(without)
    assert [c["direction"] for s in summary["steps"] for c in s["contracts"]] == [
        "inputs",
        "outputs",
    ]
    failures = summary["steps"][0]["contracts"][1]["failures"]
    assert failures and failures[0]["column"] == "score"
    for entry in summary["steps"][0]["contracts"]:
        assert Path(entry["json"]).exists() and Path(entry["html"]).exists()
    assert summary["gates"]["passed"] is True
    for step in summary["steps"]:
        run_id = step["mlflow_run_id"]
        assert run_id and list(project.rglob(f"{run_id}/artifacts/notebook/{step['name']}.html"))


@pytest.fixture(scope="module")
def daemon_dir(project: Path) -> Iterator[str]:
    """A private folder for this file's daemons; every daemon they started is stopped after."""
    folder = tempfile.mkdtemp(prefix="tkd-")
    try:
        yield folder
    finally:
        kill_daemons(project / ".toolkit" / "logs" / "engine-daemon.log")
        shutil.rmtree(folder, ignore_errors=True)


# The daemon (the helper kept warm between runs) is the default: it is killed at every point.
# Each killed run leaves a dead socket behind, which the next run (the next point) meets first.
@pytest.mark.slow
@pytest.mark.parametrize("point", HOLDING_WORK + TRACKING + RELEASE)
def test_a_daemon_killed_at_any_point_changes_nothing_and_the_next_run_starts_another(
    project: Path, without_helper: dict[str, Any], daemon_dir: str, point: str
) -> None:
    """The daemon is SIGKILLed at this point: the run ends like one without a helper, one
    usable version registered, no MLflow run RUNNING. Every run after a kill finds the dead
    daemon's socket and starts another."""
    env = {
        "TOOLKIT_HELPER": "1",
        "TOOLKIT_NO_DAEMON": "",
        "TOOLKIT_DAEMON_IDLE": "120",  # a daemon still alive after its run was not killed
        "TOOLKIT_DAEMON_DIR": daemon_dir,
        FAULT_ENV: point,
    }
    log = project / ".toolkit" / "logs" / "engine-daemon.log"
    before = daemon_pids(log)
    summary = _run(project, env, withdrawn=int(point in RELEASE))
    started = daemon_pids(log)[len(before) :]
    assert len(started) == 1  # the run started a daemon (any earlier one was killed) ...
    wait_for(lambda: not _alive(started[0]), timeout=15, what="the killed daemon to be gone")
    _assert_like_without_helper(summary, without_helper, project)  # ... and lost nothing
    assert "Traceback" not in log.read_text()
    # One MLflow run per step, each the one the summary names: none opened twice, none lost.
    steps = child_runs(tracking_uri(project), summary["mlflow_run_id"])
    assert [(name, status) for name, status, _ in steps] == [
        ("fit", "FINISHED"),
        ("make", "FINISHED"),
    ]
    assert {run for _, _, run in steps} == {s["mlflow_run_id"] for s in summary["steps"]}


@pytest.mark.slow
def test_a_render_process_killed_changes_nothing_and_the_daemon_serves_on(
    project: Path, without_helper: dict[str, Any], daemon_dir: str
) -> None:
    """The daemon renders notebooks in a process of its own, killed here at every render: the
    run renders them itself and ends like one without a helper, while the daemon lives on and
    does the rest: it registers the version, whose model card it refreshes after its answer."""
    env = {
        "TOOLKIT_HELPER": "1",
        "TOOLKIT_NO_DAEMON": "",
        "TOOLKIT_DAEMON_IDLE": "120",
        "TOOLKIT_DAEMON_DIR": daemon_dir,
        FAULT_ENV: "render-process",
    }
    log = project / ".toolkit" / "logs" / "engine-daemon.log"
    before = daemon_pids(log)
    summary = _run(project, env)
    _assert_like_without_helper(summary, without_helper, project)
    (daemon,) = daemon_pids(log)[len(before) :]
    assert _alive(daemon)  # it served the run to the end: the release too
    uri, version = tracking_uri(project), str(summary["registered"]["version"])
    card = wait_for(
        lambda: version_tags(uri, "helper_model", version).get("toolkit.card"),
        timeout=30,
        what="the daemon to refresh the model card",
    )
    assert str(card).startswith("runs:/") and "registered" in str(card)
    os.kill(daemon, signal.SIGKILL)


@pytest.mark.slow
def test_a_per_run_helper_killed_with_its_work_done_changes_nothing(
    project: Path, without_helper: dict[str, Any]
) -> None:
    """Without a daemon, TOOLKIT_HELPER=1 starts a helper for the run alone. Killed with a
    check's result files written and its reply not sent (the hand-back the daemon's points
    exercise too), the run ends like one without a helper."""
    summary = _run(project, {"TOOLKIT_HELPER": "1", FAULT_ENV: "check-written"})
    _assert_like_without_helper(summary, without_helper, project)


def _helpers_of(proc: subprocess.Popen) -> list[int]:
    return [pid for pid in children(proc.pid) if "engine_helper" in cmdline(pid)]


@pytest.mark.slow
def test_the_helper_dies_with_an_orchestrator_killed_by_kill_9(project: Path) -> None:
    """kill -9 of the orchestrator while its helper works: the helper exits on its own within
    seconds (it watches its parent), it never lingers behind a dead run."""
    proc = start_toolkit(
        ["run", "pipelines/helper.yaml", "--force"], project, {"TOOLKIT_HELPER": "1"}
    )
    try:
        helpers = wait_for(lambda: _helpers_of(proc), timeout=120, what="the helper")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for pid in helpers:  # type: ignore[union-attr]
            wait_for(lambda pid=pid: not _alive(pid), timeout=15, what=f"helper {pid} to exit")
    finally:
        kill_group(proc)
    run_here(project, "runs", "repair")  # the dead run's MLflow runs: not this test's
    assert running_runs(tracking_uri(project)) == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
