"""Shared fixtures: isolated Jupyter/MLflow state and mini-projects copied into tmp_path."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.data import breast_cancer_raw
from support.reliability import pytest_addoption, pytest_collection_finish  # noqa: F401
from support.servers import shared_tracking_server
from support.template_store import migrated_store

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]

# Kernels inherit the environment: keep their runtime files and MLflow's telemetry out of $HOME.
_STATE = Path(tempfile.mkdtemp(prefix="toolkit-tests-"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ["IPYTHONDIR"] = str(_STATE / "ipython")
os.environ["JUPYTER_RUNTIME_DIR"] = str(_STATE / "jupyter-runtime")
# A run with the engine helper on would leave the project's helper daemon running for its idle
# time: the tests that exercise it turn it back on, and stop it.
os.environ["TOOLKIT_NO_DAEMON"] = "1"
# New MLflow stores are copies of a template (toolkit.core.sqlite_store): this checkout's, not $HOME's.
os.environ["TOOLKIT_CACHE_DIR"] = str(REPO / ".cache" / "toolkit")
for _var in ("MLFLOW_TRACKING_URI", "TOOLKIT_RUNS_DIR", "TOOLKIT_EXPECTATIONS_DIR"):
    os.environ.pop(_var, None)


MakeProject = Callable[..., Path]

# The files that take longest (--durations of a full run). `make test` runs --dist loadfile
# --no-loadscope-reorder: workers get whole files in collection order, so these start at once
# instead of one of them starting last and the suite waiting on it alone. xdist gives a worker
# its next file as soon as 2 of its tests are left, so each one-test Airflow file comes before a
# many-test file: the first three go to three workers. Then the rest of the files over ~20 s,
# longest first, wherever their folder sorts (shadow/ and tracking/ come late): what is left for
# the end is short files that even out the workers. Only an order: a renamed or missing file
# just runs in its usual place.
SLOW_FILES = (
    "tests/e2e/test_example_pipeline.py",
    "tests/execute/test_airflow_retries.py",
    "tests/execute/test_airflow.py",
    "tests/faults/test_crash_recovery.py",
    "tests/release/test_registry_auth.py",
    "tests/faults/test_release_records.py",
    "tests/shadow/test_shadow_e2e.py",
    "tests/faults/test_helper_faults.py",
    "tests/cli/test_fast_start.py",
    "tests/cli/test_check_fast.py",
    "tests/faults/test_disk_full.py",
    "tests/cli/test_init_wheel.py",
    "tests/cli/test_messages.py",
    "tests/tracking/test_notebook_mlflow.py",
    "tests/faults/test_signals.py",
    "tests/faults/test_scoring_faults.py",
    "tests/shadow/test_shadow_bundle.py",
    "tests/faults/test_reliability_doc.py",
    "tests/release/test_registry_server.py",
    "tests/execute/test_dask.py",
    "tests/tracking/test_tracking_server.py",
    "tests/release/test_registry.py",
    "tests/execute/test_cache.py",
    "tests/commands/test_reproduce.py",
    "tests/tracking/test_tracking_pipeline.py",
    "tests/tracking/test_run_diff.py",
    "tests/gates/test_gates_pipeline.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the slowest files first; a stable sort keeps every file's own test order."""
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """Build a mini-project: pyproject.toml, fixture notebooks, and one pipeline spec.

    Returns a function ``(spec_yaml, notebooks=(...), name="p", store=False) -> spec path``.
    Notebook names refer to ``tests/fixtures/notebooks``; the spec's notebook paths are relative
    to ``pipelines/``, e.g. ``../notebooks/ok.ipynb``. ``store=True`` puts a migrated, empty
    MLflow store where the project's default one goes (``mlflow.db``), sparing the run MLflow's
    migrations; a test about creating the store leaves it False.
    """

    def build(
        spec: str, notebooks: tuple[str, ...] = ("ok",), name: str = "p", store: bool = False
    ) -> Path:
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
        if store and not (root / "mlflow.db").exists():
            migrated_store(root / "mlflow.db")
        return path

    return build


def copy_example(dest: Path, store: bool = False) -> Path:
    """Copy the shipped example project (specs, notebooks, contracts) into ``dest``.

    ``store=True``: with a migrated, empty MLflow store at its default path (``mlflow.db``).
    """
    for name in ("notebooks", "pipelines", "expectations"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, dest / name)
    shutil.copy(REPO / "pyproject.toml", dest)
    if store:
        migrated_store(dest / "mlflow.db")
    return dest


@pytest.fixture
def example_project(tmp_path: Path) -> Path:
    """A fresh copy of the example project, as a new user would have it."""
    return copy_example(tmp_path / "example")


@pytest.fixture(scope="session")
def raw_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's raw table as a CSV extract, the way the ingest notebook would write it."""
    path = tmp_path_factory.mktemp("raw") / "raw.csv"
    breast_cancer_raw().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``(url, artifacts_destination)`` of a private MLflow server, stopped after the session.

    Under pytest-xdist, the workers of this run share one (``shared_tracking_server``): the
    parent of a worker's base temp folder is this run's own."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with shared_tracking_server(shared / "shared-mlflow-server") as served:
        yield served
