"""Start-up stays light: planning and a fully cached run import neither GX nor MLflow.

Checked structurally, with ``python -X importtime`` in fresh processes (no timings asserted).
pandas is not on the list: the run's lineage record reads table shapes at the end of every run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, MakeProject
from support.cli import run_here

HEAVY = ("great_expectations", "mlflow", "papermill")

SPEC = """
name: light
steps:
  - name: a
    notebook: ../notebooks/ok.ipynb
    inputs: {inp: {path: ../data/orders.csv, contract: orders}}
    outputs: {out: a.txt}
"""


def _toolkit(root: Path, *args: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "toolkit", *args]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def _heavy_imports(stderr: str) -> set[str]:
    top = {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if "import time" in line}
    return {name for name in top if name in HEAVY}


@pytest.mark.slow
def test_plan_and_an_unchanged_run_do_not_import_the_engines(make_project: MakeProject) -> None:
    spec = make_project(SPEC, name="light", store=True)
    root = spec.parents[1]
    (root / "data").mkdir()
    shutil.copy(FIXTURES / "contracts" / "orders.csv", root / "data")
    (root / "expectations").mkdir()
    shutil.copy(FIXTURES / "contracts" / "orders.json", root / "expectations")

    # Fills the cache; only the processes checked below need to be fresh ones.
    first = run_here(root, "run", "pipelines/light.yaml", "--quiet")
    assert first.returncode == 0, first.stderr[-2000:]
    assert _heavy_imports(_toolkit(root, "--help", importtime=True).stderr) == set()

    plan = _toolkit(root, "plan", "pipelines/light.yaml", importtime=True)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert _heavy_imports(plan.stderr) == set()

    again = _toolkit(root, "run", "pipelines/light.yaml", "--json", "--quiet", importtime=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert '"status": "cached"' in again.stdout
    assert _heavy_imports(again.stderr) == set()

    # The control: the same reading of ``-X importtime`` sees an engine a process does import
    # (the checks above can fail). papermill alone: one import costs ~1 s, all three ~9 s.
    control = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import papermill"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert control.returncode == 0 and _heavy_imports(control.stderr) == {"papermill"}
