"""The design rules that import-linter cannot see (docs/architecture.md).

- every ``toolkit`` import resolves, the function-level ones included: they run only when their
  code path does, so a module moved or split can leave one broken that no other test reaches;
- no module over 400 lines, one job each;
- no underscore name imported from another module;
- ``__init__`` files only re-export;
- no HTML built outside ``toolkit/reports`` (pages are autoescaped Jinja2 templates there).
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "toolkit"
MAX_LINES = 400
# Modules still over the budget while they are being split. The list may only shrink: the test
# fails for a module listed here that fits, so an entry can't outlive its split.
OVER_BUDGET: set[str] = set()


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "templates" not in p.parts)


def notebook_sources() -> Iterator[tuple[str, str]]:
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text()).get("cells", [])
        for i, cell in enumerate(cells):
            if cell.get("cell_type") != "code":
                continue
            src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            # magics and shell escapes are not Python
            lines = ("pass" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.split("\n"))
            yield f"{path.relative_to(ROOT)}#cell{i}", "\n".join(lines)


def toolkit_imports(text: str) -> Iterator[tuple[int, str, list[str]]]:
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "toolkit":
                yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "toolkit":
                    yield node.lineno, alias.name, []


def unresolved(module: str, names: list[str]) -> str | None:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return f"import {module}: {exc}"
    for name in names:
        if name == "*" or hasattr(mod, name):
            continue
        try:
            importlib.import_module(f"{module}.{name}")
        except ImportError:
            return f"{module} has no {name}"
    return None


def test_every_toolkit_import_resolves_function_level_ones_included() -> None:
    sources = [(str(p.relative_to(ROOT)), p.read_text()) for p in package_modules()]
    sources += list(notebook_sources())
    bad = []
    for where, text in sources:
        for line, module, names in toolkit_imports(text):
            problem = unresolved(module, names)
            if problem:
                bad.append(f"{where}:{line}: {problem}")
    assert not bad, "imports that fail when their code path runs:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_one_job_under_the_line_budget(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    name = path.relative_to(PACKAGE).as_posix()
    if name in OVER_BUDGET:
        assert lines > MAX_LINES, (
            f"{name} fits in {MAX_LINES} lines now: remove it from OVER_BUDGET"
        )
    else:
        assert lines <= MAX_LINES, f"{name} has {lines} lines (> {MAX_LINES}): split it"


def test_no_underscore_name_is_imported_from_another_module() -> None:
    bad = []
    for path in package_modules():
        for line, module, names in toolkit_imports(path.read_text()):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                bad.append(f"{path.relative_to(ROOT)}:{line}: from {module} import {private}")
    assert not bad, "make these names public or keep them in their module:\n" + "\n".join(bad)


def test_init_files_only_re_export() -> None:
    allowed = (ast.Import, ast.ImportFrom, ast.Expr, ast.Assign, ast.AnnAssign)
    bad = []
    for path in PACKAGE.rglob("__init__.py"):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, allowed):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {type(node).__name__}")
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if [ast.unparse(t) for t in targets] not in (["__all__"], ["__version__"]):
                    bad.append(
                        f"{path.relative_to(ROOT)}:{node.lineno}: assigns {ast.unparse(node)}"
                    )
    assert not bad, "__init__ files hold code:\n" + "\n".join(bad)


HTML_TAG = re.compile(r"<(div|table|span|svg|section|tr|td|p|html|ul|li|h[1-6])[\s>]")


def is_documented(node: ast.AST) -> bool:
    body = getattr(node, "body", None)
    return (
        isinstance(body, list)
        and bool(body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )


def test_no_html_is_built_outside_reports() -> None:
    bad = []
    for path in package_modules():
        if PACKAGE / "reports" in path.parents:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree) if is_documented(n)}
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and id(node) not in docstrings and HTML_TAG.search(text):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, "HTML outside toolkit/reports (use a template there):\n" + "\n".join(bad)


def documented_block(heading: str) -> list[str]:
    """The lines of the first code block under ``## heading`` in docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1]
    return section.split("```", 2)[1].strip("\n").splitlines()


def test_architecture_page_shows_the_layers_lint_imports_checks() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")
    checked = [
        " : ".join(f"toolkit.{m.strip()}" for m in row.split(":")) for row in layers["layers"]
    ]
    assert documented_block("Layers") == checked, "docs/architecture.md's layers != pyproject.toml"


def test_architecture_page_lists_every_module_in_its_folder() -> None:
    rows = documented_block("Folder map")[1:]
    documented: dict[str, set[str]] = {}
    folder = ""
    for row in rows:
        if re.match(r"^  \S+/", row):
            folder = row.split()[0].rstrip("/")
        elif row.startswith("    ") and folder:
            # "lineage (datafiles, machine)": a package and its modules
            names = re.sub(r"\(([^)]*)\)", lambda m: m.group(0).replace(",", ";"), row.strip())
            documented[folder] = {n.strip().split(" ")[0] for n in names.split(",") if n.strip()}
    actual = {
        d.name: {p.stem if p.suffix else p.name for p in d.iterdir() if is_module(p)}
        for d in PACKAGE.iterdir()
        if d.is_dir() and (d / "__init__.py").exists()
    }
    stale = {
        folder: {"not in toolkit/": sorted(documented.get(folder, set()) - names),
                 "not in the doc": sorted(names - documented.get(folder, set()))}
        for folder, names in actual.items()
        if documented.get(folder) != names
    }  # fmt: skip
    assert not stale and set(documented) == set(actual), (
        f"docs/architecture.md's folder map: {stale}"
    )


def is_module(path: Path) -> bool:
    if path.suffix == ".py":
        return path.name != "__init__.py"
    return path.is_dir() and (path / "__init__.py").exists()
