"""Mini-projects for end-to-end tests: a pyproject, fixture notebooks and one spec."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from support.template_store import migrated_store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "notebooks"


def mini_project(
    root: Path,
    spec: str,
    notebooks: dict[str, Path] | tuple[str, ...],
    name: str = "p",
    store: bool = False,
) -> Path:
    """Write ``root/pipelines/NAME.yaml`` (``spec``, dedented) with the notebooks it uses.

    ``notebooks``: names of ``tests/fixtures/notebooks`` files, or ``{name: path}``.
    Returns the spec's path; the project's MLflow store is ``root/mlflow.db``, which
    ``store=True`` creates migrated and empty (see ``template_store``) unless it exists.
    """
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "pipelines").mkdir(exist_ok=True)
    pyproject = root / "pyproject.toml"
    if not pyproject.exists():
        pyproject.write_text('[project]\nname = "mini"\n[tool.toolkit]\n')
    sources = (
        notebooks
        if isinstance(notebooks, dict)
        else {n: FIXTURES / f"{n}.ipynb" for n in notebooks}
    )
    for nb, src in sources.items():
        shutil.copy(src, root / "notebooks" / f"{nb}.ipynb")
    path = root / "pipelines" / f"{name}.yaml"
    path.write_text(textwrap.dedent(spec))
    if store and not (root / "mlflow.db").exists():
        migrated_store(root / "mlflow.db")
    return path


def tracking_uri(root: Path) -> str:
    return "sqlite:///" + (root / "mlflow.db").resolve().as_posix()
