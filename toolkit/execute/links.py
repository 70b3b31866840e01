"""Put a cached execution's outputs into a new run's folder: hard links, or copies across
filesystems, so every run folder stays complete without duplicating the bytes.

A file output becomes one link. A folder output (a saved MLflow model, a partitioned dataset)
becomes a new folder of the same shape whose files are links to the cached ones and whose
symbolic links are recreated as links, never followed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from toolkit.core.fsutil import remove_inside


def link_output(src: Path, dest: Path) -> None:
    """Hard-link ``src`` (a file or a folder) at ``dest``, which is replaced if it exists."""
    if src.is_dir() and not src.is_symlink():
        _link_tree(src, dest)
    else:
        _link_file(src, dest)


def _link_file(src: Path, dest: Path) -> None:
    # Usually ``dest`` is new (this run's folder): one link, atomic too, instead of the six calls
    # below (a third of reusing a 200-step run). Else: it exists, has no folder yet, or the link
    # crosses filesystems.
    with contextlib.suppress(OSError):
        os.link(src, dest)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and os.path.samefile(src, dest):
        return
    tmp = dest.with_name(f".{dest.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dest)


def _link_or_copy(src: str, dest: str) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _link_tree(src: Path, dest: Path) -> None:
    # Built next to ``dest`` and renamed into place, so a run killed half-way leaves no
    # half-filled output behind (only the hidden ``.NAME.link``, removed by the next attempt).
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.link")
    remove_inside(tmp, dest.parent)
    shutil.copytree(src, tmp, symlinks=True, copy_function=_link_or_copy)
    if os.path.lexists(dest):  # an earlier attempt's, in this run's own folder
        remove_inside(dest, dest.parent)
    os.replace(tmp, dest)
