"""Small filesystem helpers shared by every layer: atomic writes and content hashes."""

from __future__ import annotations

import hashlib
import os
import tempfile
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
