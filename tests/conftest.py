"""Shared fixtures: isolated Jupyter/MLflow state and mini-projects copied into tmp_path."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.reliability import pytest_addoption, pytest_collection_finish  # noqa: F401

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]

# Kernels inherit the environment: keep their runtime files and MLflow's telemetry out of $HOME.
_STATE = Path(tempfile.mkdtemp(prefix="toolkit-tests-"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ["IPYTHONDIR"] = str(_STATE / "ipython")
os.environ["JUPYTER_RUNTIME_DIR"] = str(_STATE / "jupyter-runtime")
for _var in ("MLFLOW_TRACKING_URI", "TOOLKIT_RUNS_DIR", "TOOLKIT_EXPECTATIONS_DIR"):
    os.environ.pop(_var, None)


MakeProject = Callable[..., Path]


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """Build a mini-project: pyproject.toml, fixture notebooks, and one pipeline spec.

    Returns a function ``(spec_yaml, notebooks=(...), name="p") -> spec path``. Notebook names
    refer to ``tests/fixtures/notebooks``; the spec's notebook paths are relative to
    ``pipelines/``, e.g. ``../notebooks/ok.ipynb``.
    """

    def build(spec: str, notebooks: tuple[str, ...] = ("ok",), name: str = "p") -> Path:
        root = tmp_path / "project"
        (root / "notebooks").mkdir(parents=True, exist_ok=True)
        (root / "pipelines").mkdir(exist_ok=True)
        pyproject = root / "pyproject.toml"
        if not pyproject.exists():
            pyproject.write_text('[project]\nname = "mini"\n[tool.toolkit]\n')
        for nb in notebooks:
            shutil.copy(FIXTURES / "notebooks" / f"{nb}.ipynb", root / "notebooks")
        path = root / "pipelines" / f"{name}.yaml"
        path.write_text(textwrap.dedent(spec))
        return path

    return build


def copy_example(dest: Path) -> Path:
    """Copy the shipped example project (specs, notebooks, contracts) into ``dest``."""
    for name in ("notebooks", "pipelines", "expectations"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, dest / name)
    shutil.copy(REPO / "pyproject.toml", dest)
    return dest


@pytest.fixture
def example_project(tmp_path: Path) -> Path:
    """A fresh copy of the example project, as a new user would have it."""
    return copy_example(tmp_path / "example")


@pytest.fixture(scope="session")
def raw_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's raw table as a CSV extract, the way the ingest notebook would write it."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    df = bunch.frame.rename(columns=lambda c: c.replace(" ", "_"))
    df["diagnosis"] = df.pop("target").map(dict(enumerate(bunch.target_names)))
    df.insert(0, "patient_id", [f"P{i:04d}" for i in range(len(df))])
    path = tmp_path_factory.mktemp("raw") / "raw.csv"
    df.to_csv(path, index=False)
    return path


_STARTUP_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``(url, artifacts_destination)`` of a private MLflow server, stopped after the session."""
    root = tmp_path_factory.mktemp("mlflow-server")
    artifacts = root / "artifacts"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # One worker and no job runner: ~2 processes and ~4 s to ready instead of ~16 and ~15 s.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    log_file = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=root,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so killpg reaches every child
    )
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log_file.flush()
                tail = (root / "server.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"mlflow server did not become healthy (rc={proc.poll()}):\n{tail}")
            time.sleep(0.2)
        yield url, artifacts
    finally:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log_file.close()
