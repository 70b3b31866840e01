"""Render an executed notebook to one standalone HTML file (for reviewers and the MLflow UI).

nbconvert's ``lab`` template inlines its CSS, but its page head still loads require.js and
MathJax from cdnjs, plus MermaidJS (only when a diagram is present) and the widget manager from
unpkg (only when the notebook stores widget state). Offline or air-gapped viewers then wait on
those requests, and every view tells a CDN that somebody opened the report. With
``offline=True`` (the default) those script tags are left out: the page renders fully from the
file alone; only LaTeX stays as source text and widgets stay static.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

from toolkit.core.fsutil import atomic_write_text

# nbconvert's lab template minus its CDN scripts: a template file of ours, loaded by nbconvert.
_OFFLINE_NAME = "toolkit_offline.html.j2"
_OFFLINE_DIR = Path(__file__).parent / "nbconvert"


def render_html(
    notebook: Path,
    html_path: Path,
    *,
    exclude_input: bool = False,
    offline: bool = True,
    title: str | None = None,
) -> Path:
    """Write ``notebook`` (an executed ``.ipynb``) as standalone HTML to ``html_path``.

    Inputs are shown by default: a reviewer needs the code next to its outputs.
    ``exclude_input=True`` gives a report-style page. Images are embedded, so the single file is
    the whole report.
    """
    import nbformat  # lazy: nbconvert + its jinja/mistune/bleach stack costs ~0.3 s

    nb = nbformat.read(str(notebook), as_version=4)
    if title:
        nb.metadata["title"] = title
    with _RENDERING:
        body, _resources = _exporter(exclude_input, offline).from_notebook_node(
            nb, resources={"metadata": {"name": title or Path(notebook).stem}}
        )
    atomic_write_text(Path(html_path), body)
    return Path(html_path)


# One exporter per kind of page, kept: a new exporter compiles its templates again (nbconvert's
# lab template and the ones it extends), 0.3 s of a 0.35 s render of the example's notebooks.
# Renders take turns on it: nbconvert does not say its exporters are thread-safe.
_RENDERING = threading.Lock()


@functools.cache
def _exporter(exclude_input: bool, offline: bool) -> Any:
    from jinja2 import FileSystemLoader
    from nbconvert import HTMLExporter

    options: dict[str, object] = {
        "template_name": "lab",
        "exclude_input": exclude_input,
        "embed_images": True,
    }
    if offline:
        options["extra_loaders"] = [FileSystemLoader(str(_OFFLINE_DIR))]
        options["template_file"] = _OFFLINE_NAME
    return HTMLExporter(**options)
