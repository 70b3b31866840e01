"""Messages a scheduler and a person can use: JSON for every outcome, the cell that was running,
the real text of errors papermill drops, no third-party chatter on stderr, `runs show` for a run
that reused every step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MakeProject
from support.cli import run_here

from toolkit.cli.main import main

FAILING = """
name: failing
steps:
  - {name: magic, notebook: ../notebooks/plain/unknown_line_magic.ipynb}
  - {name: slow, notebook: ../notebooks/sleeps.ipynb, parameters: {seconds: 120}, timeout: 20}
  - {name: dies, notebook: ../notebooks/dies.ipynb}
"""


def _toolkit(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_LOGGING_LEVEL", None)
    cmd = [sys.executable, "-m", "toolkit", *args]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)


def test_run_json_prints_an_object_for_usage_errors(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_project(
        "name: p\nsteps:\n  - {name: a, notebook: ../notebooks/ok.ipynb, kernel: nope}\n"
    )
    assert main(["run", str(spec), "--json", "--quiet"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "error" and out["exit_code"] == 2
    assert "unknown kernel 'nope'" in out["error"] and "python3" in out["error"]

    assert main(["run", str(spec), "--json", "--workers", "many"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["exit_code"]) == ("error", 2)


@pytest.mark.slow
def test_failures_name_the_cell_and_keep_the_real_message(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = make_project(FAILING, notebooks=("sleeps", "dies"))
    plain = Path(__file__).parents[1] / "fixtures" / "notebooks" / "plain"
    target = spec.parents[1] / "notebooks" / "plain"
    target.mkdir(parents=True)
    (target / "unknown_line_magic.ipynb").write_bytes(
        (plain / "unknown_line_magic.ipynb").read_bytes()
    )
    assert main(["run", str(spec), "--no-tracking", "--quiet", "--workers", "3"]) == 1
    text = capsys.readouterr().out
    assert "UsageError: Line magic function `%undefined-line-magic` not found" in text
    assert "timed out after" in text and "in cell 3 (time.sleep(seconds))" in text
    assert "the kernel died in cell 1 (import os)" in text


@pytest.mark.slow
def test_quiet_stderr_and_runs_show_for_a_fully_cached_run(make_project: MakeProject) -> None:
    spec = make_project(
        "name: quiet\nsteps:\n  - {name: a, notebook: ../notebooks/no_parameters_cell.ipynb,"
        " parameters: {unused: 1}}\n",
        notebooks=("no_parameters_cell",),
    )
    root = spec.parents[1]
    first = _toolkit(root, "run", "pipelines/p.yaml", "--quiet")
    assert first.returncode == 0, first.stderr
    # MLflow's table creation, papermill's "no parameters cell"/"unknown parameter" warnings,
    # the kernel's own log lines: none of them reach the terminal.
    for chatter in ("INFO", "database tables", "parameters", "IPKernelApp", "KeyboardInterrupt"):
        assert chatter not in first.stderr, first.stderr

    # What follows is about results, not a fresh process's stderr: in this process (support.cli).
    again = run_here(root, "run", "pipelines/p.yaml", "--quiet", "--json")
    summary = json.loads(again.stdout)
    assert [s["status"] for s in summary["steps"]] == ["cached"]
    shown = run_here(root, "runs", "show", summary["run_id"])
    assert shown.returncode == 0, shown.stderr
    assert summary["run_id"] in shown.stdout and "cached from run" in shown.stdout
