"""The fault-injection suite's own table: ``docs/reliability.md`` is generated from it.

Hooks registered by ``tests/conftest.py``.

``pytest tests/faults --collect-only -q --reliability-table=docs/reliability.md`` writes one row
per collected case (every parametrized id is its own case) with the test's docstring;
``tests/faults/test_reliability_doc.py`` fails when the file in the repository differs from what the suite
holds, so the table can never drift from the tests.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

HEADER = """# Reliability: the fault-injection suite

Generated from `tests/faults/` by `make reliability-doc` (do not edit by hand; `make test`
fails when this file is out of date). Every row is one case of the suite, run by `make test`
with real kernels, real MLflow stores and real processes; each asserts the invariants that
apply to it: the exit code, no MLflow run left `RUNNING`, no secret in any file, no row without
a decision, no model version usable from a failed run.
"""


THIS_CHECK = "test_reliability_doc.py"  # checks the table; not a fault case itself


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-table",
        metavar="PATH",
        help="write the table of fault cases (markdown) to PATH after collection",
    )


def _first_paragraph(doc: str | None) -> str:
    text = inspect.cleandoc(doc or "").split("\n\n")[0]
    return " ".join(text.split()).replace("|", "\\|")


def render_table(items: list[pytest.Item]) -> str:
    rows = []
    for item in items:
        path = Path(str(item.path)).name
        func = getattr(item, "function", None)
        case = getattr(item, "callspec", None)
        param = "-".join(str(v) for v in case.id.split("-")) if case is not None else ""
        name = getattr(func, "__name__", item.name)
        rows.append((path, name, param, _first_paragraph(getattr(func, "__doc__", ""))))
    rows.sort(key=lambda r: (r[0], r[1]))
    modules = sorted({r[0] for r in rows})
    lines = [HEADER, f"**{len(rows)} cases** in {len(modules)} modules.\n"]
    for module in modules:
        lines.append(f"\n## `{module}`\n")
        doc = _module_doc(items, module)
        if doc:
            lines.append(f"{doc}\n")
        lines.append("| # | case | fault | what must hold |")
        lines.append("|---|---|---|---|")
        number = 0
        for path, name, param, doc in rows:
            if path != module:
                continue
            number += 1
            lines.append(f"| {number} | `{name}` | {param.replace('|', '/') or '-'} | {doc} |")
    return "\n".join(lines) + "\n"


def _module_doc(items: list[pytest.Item], module: str) -> str:
    for item in items:
        if Path(str(item.path)).name == module:
            return _first_paragraph(getattr(item.module, "__doc__", ""))
    return ""


def pytest_collection_finish(session: pytest.Session) -> None:
    target = session.config.getoption("--reliability-table")
    if not target:
        return
    faults = Path(__file__).resolve().parents[1] / "faults"
    items = [
        i
        for i in session.items
        if faults in Path(str(i.path)).parents and Path(str(i.path)).name != THIS_CHECK
    ]
    Path(target).write_text(render_table(items), encoding="utf-8")
