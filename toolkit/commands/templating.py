"""Files the toolkit writes for users (notebooks, specs, a project), rendered from package data.

The templates live in ``toolkit/templates/`` and ship inside the wheel, so scaffolding works
wherever the package is installed. Notebook templates are real ``.ipynb`` files (open and edit
them in JupyterLab) whose cell sources are Jinja2 text; other templates are plain Jinja2 files
ending in ``.j2``. Nothing here is HTML, so autoescaping is off; values that land in Python or
YAML go through the ``py`` and ``yaml`` filters, which quote them for that language.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import yaml

from toolkit.specs.yaml12 import load_core

TEMPLATE_SUFFIX = ".j2"


def template(name: str) -> Traversable:
    """The packaged template ``name`` (a path below ``toolkit/templates/``)."""
    node = resources.files("toolkit").joinpath("templates")
    for part in name.split("/"):
        node = node.joinpath(part)
    return node


def walk(name: str, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    """Every file below the template folder ``name``, as ``(relative path, file)``, sorted."""
    for child in sorted(template(name).iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        rel = f"{prefix}{child.name}"
        if child.is_dir():
            yield from walk(f"{name}/{child.name}", f"{rel}/")
        else:
            yield rel, child


def yaml_scalar(value: object) -> str:
    """``value`` as a one-line YAML scalar: plain when it reads back unchanged, else quoted."""
    if not isinstance(value, str):
        return json.dumps(value, default=repr)  # a set or bytes default: shown, not crashed on
    try:
        # Specs are read by YAML 1.2 (``1e-3`` is a number), other tools by PyYAML's 1.1
        # (``on`` is a boolean): plain only where both read the string back.
        same = (
            yaml.safe_load(value) == value == load_core(value)
            and ": " not in value
            and " #" not in value
        )
    except yaml.YAMLError:
        same = False
    return value if same and value.strip() == value and value else json.dumps(value)


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Python, YAML and TOML, never HTML
    )
    env.filters["py"] = json.dumps  # a JSON string or number is also a Python literal
    env.filters["yaml"] = yaml_scalar
    return env


def render_string(source: str, context: Mapping[str, Any]) -> str:
    """Render one Jinja2 text with ``context``."""
    return str(_environment().from_string(source).render(**context))


def render_text(name: str, context: Mapping[str, Any]) -> str:
    """Render the packaged text template ``name`` (a ``.j2`` file) with ``context``."""
    return render_string(template(name).read_text(encoding="utf-8"), context)


def render_notebook(name: str, context: Mapping[str, Any], *, kernelspec: Mapping[str, Any]) -> str:
    """The packaged notebook ``name`` with each cell's source rendered, as nbformat 4 JSON text.

    A cell whose source renders empty is left out (a template's optional cell). Cells get new
    ids; their tags and other metadata come from the template; the notebook gets
    ``kernelspec``.
    """
    import nbformat

    data = json.loads(template(name).read_text(encoding="utf-8"))
    env = _environment()
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": dict(kernelspec), "language_info": {"name": "python"}}
    )
    for cell in data["cells"]:
        raw = cell.get("source", "")
        source = env.from_string("".join(raw) if isinstance(raw, list) else raw).render(**context)
        source = source.strip("\n")
        if not source.strip():
            continue
        make = nbformat.v4.new_code_cell
        if cell["cell_type"] == "markdown":
            make = nbformat.v4.new_markdown_cell
        nb.cells.append(make(source=source, metadata=dict(cell.get("metadata", {}))))
    nbformat.validate(nb)
    return str(nbformat.writes(nb)) + "\n"
