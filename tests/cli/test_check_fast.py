"""`toolkit check` on a project with contracts stays light: it checks the suites without importing
Great Expectations (nor MLflow nor papermill), the first time and after an edit alike; only a
type GX does not ship (a typo) is asked of GX, for its did-you-mean.

Checked structurally with ``python -X importtime`` in fresh processes; no timing is asserted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, MakeProject

SPEC = """
name: light
steps:
  - name: a
    notebook: ../notebooks/ok.ipynb
    inputs: {inp: {path: ../data/orders.csv, contract: orders}}
    outputs: {out: a.txt}
"""


def _imported(root: Path, *args: str) -> tuple[int, set[str]]:
    cmd = [sys.executable, "-X", "importtime", "-m", "toolkit", *args]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    names = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    return done.returncode, names


@pytest.mark.slow
def test_check_with_contracts_does_not_import_the_engines(
    make_project: MakeProject,
) -> None:
    spec = make_project(SPEC, name="light")
    root = spec.parents[1]
    (root / "data").mkdir()
    shutil.copy(FIXTURES / "contracts" / "orders.csv", root / "data")
    (root / "expectations").mkdir()
    shutil.copy(FIXTURES / "contracts" / "orders.json", root / "expectations")

    for _ in range(2):
        code, names = _imported(root, "check")
        assert code == 0
        assert {"great_expectations", "mlflow", "papermill"} & names == set()

    # An edited suite is checked again, still without GX.
    suite = root / "expectations" / "orders.json"
    suite.write_text(suite.read_text().replace("{", "{ ", 1))
    code, edited = _imported(root, "check")
    assert code == 0 and "great_expectations" not in edited

    # A misspelt type is not one GX ships: GX is asked, and names the type it meant.
    suite.write_text(suite.read_text().replace("to_not_be_null", "to_not_be_nul", 1))
    cmd = [sys.executable, "-m", "toolkit", "check"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "did you mean 'expect_column_values_to_not_be_null'" in done.stderr
