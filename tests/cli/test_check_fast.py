"""`toolkit check` on a project with contracts stays light: once a suite file's exact bytes have
been validated, checking again imports neither Great Expectations nor MLflow nor papermill.

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
def test_check_with_contracts_does_not_import_the_engines_twice(
    make_project: MakeProject,
) -> None:
    spec = make_project(SPEC, name="light")
    root = spec.parents[1]
    (root / "data").mkdir()
    shutil.copy(FIXTURES / "contracts" / "orders.csv", root / "data")
    (root / "expectations").mkdir()
    shutil.copy(FIXTURES / "contracts" / "orders.json", root / "expectations")

    code, first = _imported(root, "check")
    assert code == 0 and "great_expectations" in first  # the control: GX validated it once
    code, again = _imported(root, "check")
    assert code == 0
    assert {"great_expectations", "mlflow", "papermill"} & again == set()

    # An edited suite is validated again.
    suite = root / "expectations" / "orders.json"
    suite.write_text(suite.read_text().replace("{", "{ ", 1))
    code, edited = _imported(root, "check")
    assert code == 0 and "great_expectations" in edited
