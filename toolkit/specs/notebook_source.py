"""Read any notebook a step names into nbformat v4 JSON: ``.ipynb``, or a ``.py`` percent script.

A ``.py`` file in jupytext's percent format (``# %%`` cells, ``# %% tags=["parameters"]``) is a
notebook a reviewer can read in a pull request. An ``.ipynb`` paired with one (jupytext's
``formats: ipynb,py:percent`` metadata) takes its code from the ``.py``, as Jupyter does when it
opens a paired notebook, and a spec naming ``X.ipynb`` runs ``X.py`` when only the text file was
committed (the ``.ipynb`` ignored, as pairing setups often do).

Everything that reads a step's code goes through :func:`read_notebook`: parameters, cache keys,
kernel preloads and execution all see the same cells. jupytext is imported only for text files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TEXT_FORMAT = "py:percent"
TEXT_SUFFIX = ".py"
#: What papermill needs to pick a kernel and translate parameters when jupytext wrote no
#: kernelspec; the runner passes its own kernel name anyway.
DEFAULT_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def is_text(path: Path) -> bool:
    return Path(path).suffix.lower() == TEXT_SUFFIX


def _paired_text(path: Path) -> Path | None:
    """The ``.py`` twin an ``.ipynb`` takes its code from, if it has one."""
    twin = path.with_suffix(TEXT_SUFFIX)
    if not twin.is_file():
        return None
    if not path.exists():
        return twin
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError, AttributeError):
        return None
    formats = str((meta.get("jupytext") or {}).get("formats", ""))
    return twin if "py" in formats.split(",") or "py:percent" in formats else None


def source_of(path: Path) -> Path:
    """The file a step's code is read from: the notebook itself or its paired ``.py``."""
    path = Path(path)
    if is_text(path):
        return path
    return _paired_text(path) or path


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook at ``path`` as a JSON-like dict (nbformat v4).

    Raises:
        FileNotFoundError: neither the notebook nor a paired ``.py`` exists.
        ValueError: the file is not valid notebook JSON or percent-format text.
    """
    source = source_of(Path(path))
    text = source.read_text(encoding="utf-8")
    if not is_text(source):
        return json.loads(text)
    import jupytext  # lazy: ~0.3 s, paid only by text notebooks

    try:
        nb = jupytext.reads(text, fmt=TEXT_FORMAT)
    except Exception as exc:  # jupytext raises assorted errors for malformed headers
        raise ValueError(f"not a percent-format notebook: {exc}") from exc
    data: dict[str, Any] = json.loads(json.dumps(nb))
    meta = data.setdefault("metadata", {})
    meta.setdefault("kernelspec", dict(DEFAULT_KERNELSPEC))
    meta.setdefault("language_info", {"name": "python"})
    # jupytext draws random cell ids on every read: cache keys hash types, sources and tags only.
    return data


def for_execution(path: Path) -> Any:
    """What papermill is given: the path of a plain ``.ipynb``, else a NotebookNode built from
    the text (papermill reads ``.py`` paths as JSON and fails)."""
    path = Path(path)
    if source_of(path) == path and not is_text(path):
        return str(path)
    import nbformat

    return nbformat.from_dict(read_notebook(path))


def to_percent_text(ipynb_text: str) -> str:
    """An ``.ipynb``'s JSON text as a percent-format ``.py`` (tags, kernelspec and all)."""
    import jupytext
    import nbformat

    return str(jupytext.writes(nbformat.reads(ipynb_text, as_version=4), fmt=TEXT_FORMAT))
