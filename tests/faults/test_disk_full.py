"""A full disk is a clear error (exit 1, the path, "no space left"), never exit 70, and never
leaves a promotable model behind: registration comes only after the run's records are written.

The run folder lives on a small tmpfs that the training step itself fills, leaving a few
bytes free, so the writes after it (executed notebook, gates, summary, report) meet ENOSPC.
Needs root (or CAP_SYS_ADMIN) to mount; skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import run_here
from support.projects import mini_project, tracking_uri
from support.stores import model_versions, running_runs, usable_versions

NOTEBOOKS = Path(__file__).parent / "notebooks"
SPEC = """
name: full
steps:
  - name: fit
    notebook: ../notebooks/fit_tiny.ipynb
    parameters: {fill: "{fill}", reserve: {reserve}}
    outputs: {out: model.joblib}
model: {name: full_model, step: fit, output: out}
gates:
  step: fit
  checks: ["accuracy >= 0.5"]
"""


@contextlib.contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    mount = Path(tempfile.mkdtemp(prefix="toolkit-enospc-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


@pytest.mark.slow
@pytest.mark.parametrize("reserve", [0, 2048, 24576], ids=["0 B free", "2 KiB free", "24 KiB free"])
def test_disk_full_after_the_steps(tmp_path: Path, reserve: int) -> None:
    """The disk fills during the run with this much left: either the run fits and registers,
    or it fails with exit 1 naming the path and "no space left", with no usable model
    version, no MLflow run RUNNING, and no exit 70."""
    with small_tmpfs("4m") as runs_dir:
        spec = SPEC.replace("{fill}", str(runs_dir)).replace("{reserve}", str(reserve))
        mini_project(
            tmp_path, spec, {"fit_tiny": NOTEBOOKS / "fit_tiny.ipynb"}, name="full", store=True
        )
        env = {"TOOLKIT_RUNS_DIR": str(runs_dir)}
        result = run_here(tmp_path, "run", "pipelines/full.yaml", "--json", env=env)
        uri = tracking_uri(tmp_path)
        assert "this is a bug" not in result.stderr
        assert running_runs(uri) == []
        versions = model_versions(uri, "full_model")
        if reserve == 0:
            assert result.returncode == 1, result.stderr[-3000:]
        if result.returncode == 0:
            summary = json.loads(result.stdout)
            assert summary["registered"]["version"] in {v for v, _ in versions}
        else:
            assert result.returncode == 1, result.stderr[-3000:]
            assert "no space left" in result.stderr.lower()
            assert str(runs_dir) in result.stderr
            # Registered before the failure, a version is marked unusable, never left usable.
            assert usable_versions(uri, "full_model") == [], versions
