"""The shipped example project, end to end, as a user runs it: a fresh copy and the real CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def example_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("example")
    for name in ("notebooks", "pipelines", "expectations"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "pyproject.toml", root)
    return root


@pytest.mark.slow
def test_example_training_pipeline_runs_end_to_end(example_project: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit", "run", "pipelines/train.yaml", "--json"],
        cwd=example_project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert [s["name"] for s in summary["steps"]] == ["ingest", "features", "train", "evaluate"]
    assert {s["status"] for s in summary["steps"]} == {"succeeded"}
    metrics = summary["steps"][3]["metrics"]
    assert metrics["roc_auc"] > 0.95
    assert Path(summary["run_dir"], "data", "predictions.parquet").exists()
