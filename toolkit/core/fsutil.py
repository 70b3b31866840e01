"""Small filesystem helpers shared by every layer: atomic writes, content hashes of files and
folders, and removing a step's stale output."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from toolkit.core.jsonable import dumps


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file: say which one it was
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: object) -> None:
    """``data`` as strict JSON (see :func:`toolkit.core.jsonable.dumps`), written atomically."""
    atomic_write_text(path, dumps(data, indent=2) + "\n")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_files(root: Path) -> list[tuple[str, Path]]:
    """The files and symbolic links under ``root`` as ``(relative POSIX path, path)``, sorted.

    Symbolic links are listed, never followed: a link out of the tree must not pull its target
    in (nor loop). Names starting with ``.`` are skipped at every level: they are checkpoints,
    OS litter or checksum sidecars (``.ipynb_checkpoints``, ``.DS_Store``, Spark's ``.crc``),
    whose appearance must not count as a change of the data.
    """
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):  # followlinks=False: linked folders are not walked
        base = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        links = [d for d in dirs if (base / d).is_symlink()]
        for name in (*files, *links):
            if not name.startswith("."):
                path = base / name
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def tree_sha256(root: Path, file_hash: Callable[[Path], str] = sha256_file) -> str:
    """Hex SHA-256 of a folder: every file's relative path and content hash (``file_hash``),
    in sorted order, so a rename, an edit, an added or a removed file all change it. A symbolic
    link counts as its target's path (``os.readlink``), not the target's bytes; empty folders
    do not count. The one folder hash: lineage and the step cache both use it."""
    digest = hashlib.sha256()
    for rel, path in tree_files(root):
        entry = f"link:{os.readlink(path)}" if path.is_symlink() else file_hash(path)
        digest.update(f"{rel}\0{entry}\n".encode())
    return digest.hexdigest()


def remove_inside(path: Path, folder: Path) -> None:
    """Remove ``path`` (a file, a link or a whole folder) if it is strictly inside ``folder``.

    For an earlier attempt's output before a step runs again. A link is unlinked, never
    followed; a folder is removed with everything in it (``shutil.rmtree`` does not follow the
    links inside it either). Anything that is not strictly inside ``folder`` once the links
    of its parents are resolved is refused with ``ValueError``: a bug, never data to delete.
    """
    parent = os.path.realpath(path.parent)
    inside = os.path.join(os.path.realpath(folder), "")
    if path.name in ("", ".", "..") or not os.path.join(parent, "").startswith(inside):
        raise ValueError(f"refusing to remove {path}: it is not inside {folder}")
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def write_new_text(path: Path, text: str) -> None:
    """Create ``path`` with ``text``, never replacing a file: it fails if ``path`` exists.

    The content is written to a temporary file first and then hard-linked into place, so the
    file appears complete or not at all, and a file created meanwhile is left untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.link(tmp, path)  # FileExistsError if it exists
    finally:
        Path(tmp).unlink(missing_ok=True)
