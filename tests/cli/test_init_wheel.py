"""The built wheel works outside this repository: install it, ``toolkit init``, run the example.

Everything the test installs (and the project's ``uv lock``) comes from the uv cache that ``make install`` filled (``--offline``),
pinned to ``uv.lock`` through an exported constraints file, so it resolves nothing afresh and
touches no network. It runs nothing from the source tree: the venv, the project and the cwd all
live in ``tmp_path``, and ``PYTHONPATH`` is cleared.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _uv() -> str:
    local = REPO / ".cache" / "uv" / "bin" / "uv"
    if local.is_file():
        return str(local)
    found = shutil.which("uv")
    if found is None:
        pytest.fail("uv is missing: `make install` bootstraps it into .cache/uv")
    return found


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str | Path], cwd: Path, env: dict[str, str], timings: dict[str, tuple[float, float]],
         label: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    start, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    # Wall time and CPU time: on a shared machine the CPU seconds are the comparable figure.
    timings[label] = (round(time.perf_counter() - start, 1), round(_children_cpu() - cpu, 1))
    assert proc.returncode == 0, (
        f"{label} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


def test_wheel_installs_in_a_fresh_venv_and_its_init_project_runs(tmp_path: Path) -> None:
    uv = _uv()
    timings: dict[str, tuple[float, float]] = {}  # label: (wall s, cpu s)
    # No PYTHONPATH or VIRTUAL_ENV of this checkout (nor PYTHONDONTWRITEBYTECODE: the venv's
    # first commands compile what later ones import).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    env.pop("JUPYTER_PATH", None)
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter-data")  # nothing lands in ~ either way
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"

    dist = tmp_path / "dist"
    _run([uv, "build", "--offline", "--wheel", "-o", dist, REPO], REPO, env, timings, "build")
    (wheel,) = dist.glob("nbgate-*-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "toolkit" / "templates").rglob("*")
        if p.is_file() and not {"__pycache__", ".ipynb_checkpoints"} & set(p.parts)
    }
    assert "toolkit/templates/step.ipynb" in shipped
    assert shipped <= names, f"templates missing from the wheel: {sorted(shipped - names)}"

    constraints = tmp_path / "constraints.txt"
    _run(
        [uv, "export", "--frozen", "--no-hashes", "--no-emit-project", "-o", constraints],
        REPO, env, timings, "export",
    )  # fmt: skip
    venv = tmp_path / "venv"
    _run([uv, "venv", "--offline", "-q", "--python", sys.executable, venv], tmp_path, env,
         timings, "venv")  # fmt: skip
    python, toolkit = venv / "bin" / "python", venv / "bin" / "toolkit"
    _run(
        [uv, "pip", "install", "--offline", "-q", "--python", python, "-c", constraints, wheel],
        tmp_path, env, timings, "install",
    )  # fmt: skip
    where = _run([python, "-c", "import toolkit; print(toolkit.__file__)"], tmp_path, env,
                 timings, "import")  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    work = tmp_path / "work"
    work.mkdir()
    init = _run([toolkit, "init", "demo"], work, env, timings, "init")
    project = work / "demo"
    kernel = json.loads((venv / "share/jupyter/kernels/demo/kernel.json").read_text())
    assert kernel["argv"][0] == str(python), init.stdout  # this venv's Python, in this venv

    ran = _run([toolkit, "run", "pipelines/example.yaml", "--json", "--quiet"], project, env,
               timings, "run")  # fmt: skip
    summary = json.loads(ran.stdout)
    assert summary["status"] == "succeeded"
    (step,) = summary["steps"]
    assert step["metrics"]["rows"] == 13 and step["metrics"]["kept"] == 12
    assert step["mlflow_run_id"]  # tracked in the project's own MLflow store
    assert (project / "mlflow.db").is_file()
    written = json.loads((Path(summary["run_dir"]) / "data" / "summary.json").read_text())
    assert written["kept"] == 12
    assert summary["gates"]["passed"] is True
    # The lock the project's README describes resolves, with nbgate from the wheel it came from.
    _run([uv, "lock", "--offline", "-q"], project, env, timings, "lock")
    lock = (project / "uv.lock").read_text()
    assert 'name = "nbgate"' in lock and wheel.name in lock
    wall, cpu = (round(sum(t[i] for t in timings.values()), 1) for i in (0, 1))
    print(f"wheel test (wall s, cpu s): {timings}; total {wall} s wall, {cpu} s cpu")
