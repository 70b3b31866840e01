"""Read a notebook's ``parameters`` cell without starting a kernel.

The cell is parsed with :mod:`ast`, so reading parameters costs a JSON load and a parse, not a
kernel start (papermill's ``inspect_notebook`` would import papermill on the CLI's fast paths).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import NotebookError, did_you_mean
from toolkit.nbsource import read_notebook

PARAMETERS_TAG = "parameters"


@dataclass(frozen=True)
class NotebookParams:
    """What a notebook declares in its ``parameters`` cell."""

    path: Path
    defaults: dict[str, Any] = field(default_factory=dict)
    cell_index: int = 0
    kernel: str | None = None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.defaults)


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _strip_magics(source: str) -> str:
    # IPython magics and shell escapes are not Python; blank them so line numbers stay right.
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in source.splitlines())


def _literal(node: ast.expr, source: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return ast.get_source_segment(source, node)


def load_cells(path: Path) -> dict[str, Any]:
    """Load a notebook (``.ipynb`` or percent ``.py``) as plain JSON, with errors that name the
    file."""
    try:
        data = read_notebook(path)
    except FileNotFoundError as exc:
        hint = None
        if path.parent.is_dir():
            names = [p.name for p in (*path.parent.glob("*.ipynb"), *path.parent.glob("*.py"))]
            hint = did_you_mean(path.name, names)
        raise NotebookError(f"notebook not found: {path}", hint=hint) from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotebookError(f"cannot read notebook {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError(f"{path} is not a Jupyter notebook (no 'cells' list)")
    return data


def read_params(path: Path) -> NotebookParams:
    """Return the parameters a notebook declares.

    Raises:
        NotebookError: the notebook is missing, unreadable, has no cell tagged ``parameters``,
            or that cell is not valid Python.
    """
    nb = load_cells(path)
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    for index, cell in enumerate(nb["cells"]):
        tags = cell.get("metadata", {}).get("tags", []) or []
        if cell.get("cell_type") != "code" or PARAMETERS_TAG not in tags:
            continue
        source = _strip_magics(_source(cell))
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise NotebookError(
                f"{path}: the parameters cell (cell {index}) is not valid Python: "
                f"{exc.msg} on line {exc.lineno}"
            ) from exc
        defaults: dict[str, Any] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        defaults[target.id] = _literal(node.value, source)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                value = node.value
                defaults[node.target.id] = _literal(value, source) if value else None
        return NotebookParams(path=path, defaults=defaults, cell_index=index, kernel=kernel)
    raise NotebookError(
        f"{path} has no cell tagged 'parameters'",
        hint="in JupyterLab, select the cell with the defaults, open the property inspector "
        "(gear icon) and add the tag 'parameters'; without it papermill injects values at the "
        "top, where the notebook's own defaults overwrite them",
    )
