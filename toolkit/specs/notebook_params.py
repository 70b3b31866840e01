"""Read what a notebook declares as parameters without starting a kernel.

The cell is parsed with :mod:`ast`, so reading parameters costs a JSON load and a parse, not a
kernel start (papermill's ``inspect_notebook`` would import papermill on the CLI's fast paths).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from toolkit.core.errors import NotebookError, did_you_mean
from toolkit.specs.notebook_source import read_notebook

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"  # papermill's cell of values, replaced on each run


@dataclass(frozen=True)
class NotebookParams:
    """What a notebook declares: its ``parameters`` cell, or papermill's no-cell fallback.

    A notebook with no cell tagged ``parameters`` is *open*: papermill injects any value at the
    top, as it does, and the notebook's own ``try: x / except NameError: x = ...`` or
    ``if "x" not in globals(): x = ...`` defaults are its declared parameters.
    """

    path: Path
    defaults: dict[str, Any] = field(default_factory=dict)
    cell_index: int | None = 0
    kernel: str | None = None
    open: bool = False

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.defaults)

    def accepts(self, name: str) -> bool:
        """Whether a value for ``name`` may be injected (an open notebook takes any name)."""
        return self.open or name in self.defaults


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
    file. This is the one place a notebook file is read (keys, imports, parameters go through it).
    """
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


def code_cells(nb: Mapping[str, Any]) -> list[tuple[int, str, list[str]]]:
    """``(index, source, tags)`` of each code cell, magics blanked."""
    found = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "code":
            tags = cell.get("metadata", {}).get("tags", []) or []
            found.append((index, _strip_magics(_source(cell)), list(tags)))
    return found


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _names_checked_in_globals(test: ast.expr) -> set[str]:
    """``"x" not in globals()`` (or ``locals()``/``dir()``) -> {"x"}; ``and``/``or`` of those."""
    if isinstance(test, ast.BoolOp):
        return set().union(*(_names_checked_in_globals(v) for v in test.values))
    if (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.NotIn)
        and isinstance(test.left, ast.Constant)
        and isinstance(test.left.value, str)
        and isinstance(test.comparators[0], ast.Call)
        and isinstance(test.comparators[0].func, ast.Name)
        and test.comparators[0].func.id in {"globals", "locals", "dir", "vars"}
    ):
        return {test.left.value}
    return set()


def _catches_name_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(k, ast.Name) and k.id == "NameError" for k in kinds)


def _assignments(body: list[ast.stmt], source: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node in body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = _literal(node.value, source)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found[node.target.id] = _literal(node.value, source) if node.value else None
    return found


def guarded_defaults(node: ast.stmt, source: str) -> dict[str, Any]:
    """Defaults a statement gives only when the name was not injected, papermill-style.

    ``try: x`` / ``except NameError: x = 1`` and ``if "x" not in globals(): x = 1`` both
    keep an injected ``x``: they are declared defaults, not overwrites.
    """
    if isinstance(node, ast.Try):
        probed = {n.id for s in node.body for n in ast.walk(s) if isinstance(n, ast.Name)}
        found: dict[str, Any] = {}
        for handler in node.handlers:
            if handler.type is not None and _catches_name_error(handler):
                found.update(
                    {k: v for k, v in _assignments(handler.body, source).items() if k in probed}
                )
        return found
    if isinstance(node, ast.If):
        checked = _names_checked_in_globals(node.test)
        return {k: v for k, v in _assignments(node.body, source).items() if k in checked}
    return {}


def unconditional_names(node: ast.stmt) -> set[str]:
    """Names a top-level statement always binds (so an injected value above is lost)."""
    if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        # ``x = Path(x)`` transforms the injected value rather than replacing it.
        used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
        return {
            n.id
            for t in targets
            for n in ast.walk(t)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id not in used
        }
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    return set()


# read_params per (path, inode, size, mtime): a pipeline often runs one notebook in many steps,
# and parsing it again for each took 9 ms a step (200 steps of one notebook: 1.8 s of `plan`).
_PARAMS_MEMO: dict[tuple[str, int, int, int], NotebookParams] = {}


def read_params(path: Path) -> NotebookParams:
    """Return the parameters a notebook declares.

    With a cell tagged ``parameters``, its assignments; without one, the notebook is open
    (values are injected at the top, as papermill does) and declares its guarded defaults.

    Raises:
        NotebookError: the notebook is missing or unreadable, or its parameters cell is not
            valid Python.
    """
    try:
        st = path.stat()
    except OSError:
        return _read_params(path)  # raises the NotebookError that names the problem
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _PARAMS_MEMO:
        _PARAMS_MEMO[key] = _read_params(path)
    found = _PARAMS_MEMO[key]
    return replace(found, defaults=dict(found.defaults))  # callers get a dict of their own


def _read_params(path: Path) -> NotebookParams:
    nb = load_cells(path)
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    cells = code_cells(nb)
    for index, source, tags in cells:
        if PARAMETERS_TAG not in tags:
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise NotebookError(
                f"{path}: the parameters cell (cell {index}) is not valid Python: "
                f"{exc.msg} on line {exc.lineno}"
            ) from exc
        defaults = _assignments(tree.body, source)
        for node in tree.body:
            defaults.update(guarded_defaults(node, source))
        return NotebookParams(path=path, defaults=defaults, cell_index=index, kernel=kernel)
    guarded: dict[str, Any] = {}
    for _, source, _ in cells:
        parsed = _parse(source)
        for node in parsed.body if parsed else ():
            for key, value in guarded_defaults(node, source).items():
                guarded.setdefault(key, value)
    return NotebookParams(path=path, defaults=guarded, cell_index=None, kernel=kernel, open=True)


def overwritten(params: NotebookParams, injected: set[str] | frozenset[str]) -> dict[str, int]:
    """Injected names that a later unconditional top-level statement rebinds: ``{name: cell}``.

    Values are injected right after the ``parameters`` cell, or at the top when there is none;
    a plain ``x = 1`` below that point silently wins over the value the pipeline passed.
    """
    after = -1 if params.cell_index is None else params.cell_index
    found: dict[str, int] = {}
    for index, source, tags in code_cells(load_cells(params.path)):
        # An executed notebook's own injected cell is replaced by the new one, as papermill does.
        if index <= after or INJECTED_TAG in tags:
            continue
        tree = _parse(source)
        for node in tree.body if tree else ():
            for name in unconditional_names(node) & set(injected):
                found.setdefault(name, index)
    return found


def mentions_module(path: Path, module: str) -> bool:
    """Whether any code cell mentions ``module`` (e.g. imports mlflow); False if unreadable."""
    try:
        cells = code_cells(load_cells(path))
    except NotebookError:
        return False
    pattern = re.compile(rf"\b{re.escape(module)}\b")
    return any(pattern.search(source) for _, source, _ in cells)
