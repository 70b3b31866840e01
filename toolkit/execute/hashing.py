"""Content hashes for the step cache: of JSON-able data, of what a notebook does, of files and
folders."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit.core.fsutil import sha256_file, tree_sha256
from toolkit.specs.notebook_source import read_notebook


def digest(data: object) -> str:
    blob = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# notebook_source_hash per (path, size, mtime, inode): every step of a pipeline may run the same
# notebook, and a run decides each step twice (preview, then as it becomes ready).
_SOURCE_HASHES: dict[tuple[str, int, int, int], str] = {}


def notebook_source_hash(path: Path) -> str:
    """Hash of what a notebook does: cell types, sources and tags; not outputs, counts or cell
    ids (a percent ``.py`` gets random ids on every read). Memoised like :class:`FileHashes`:
    an edit changes the file's size or mtime."""
    try:
        st = path.stat()
    except OSError:
        return _source_hash(path)  # read_notebook says what is wrong with it
    stamp = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if stamp not in _SOURCE_HASHES:
        _SOURCE_HASHES[stamp] = _source_hash(path)
    return _SOURCE_HASHES[stamp]


def _source_hash(path: Path) -> str:
    nb = read_notebook(path)
    cells = []
    for cell in nb.get("cells", []):
        source = cell.get("source", "")
        cells.append(
            [
                cell.get("cell_type"),
                "".join(source) if isinstance(source, list) else source,
                sorted(cell.get("metadata", {}).get("tags", [])),
            ]
        )
    return digest(cells)


class FileHashes:
    """sha256 of files, memoised per (path, size, mtime, inode) for the life of the process, and
    of folders (:func:`~toolkit.core.fsutil.tree_sha256`), whose files are memoised the same way:
    a folder's own mtime does not change when a file inside it is rewritten."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, int, int, int], str] = {}

    def of(self, path: Path) -> str | None:
        """The content hash of a file or a folder; None when it does not exist."""
        try:
            st = path.stat()
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):
            return tree_sha256(path, self._file)
        return self._file(path, st)

    def _file(self, path: Path, st: os.stat_result | None = None) -> str:
        st = st or path.stat()
        stamp = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        if stamp not in self._memo:
            self._memo[stamp] = sha256_file(path)
        return self._memo[stamp]

    def record(self, path: Path) -> dict[str, Any]:
        """What a cache entry keeps of an output: its hash, and for a file the stat fields that
        let :meth:`matches` skip re-hashing it. Raises OSError when it cannot be read."""
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            return {"path": str(path), "kind": "dir", "sha256": tree_sha256(path, self._file)}
        return {
            "path": str(path),
            "sha256": self._file(path, st),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ino": st.st_ino,
        }

    def matches(self, path: Path, recorded: Mapping[str, Any]) -> bool:
        """True when ``path`` still holds the bytes an entry recorded."""
        try:
            st = path.stat()
        except OSError:
            return False
        if stat.S_ISDIR(st.st_mode) != (recorded.get("kind") == "dir"):
            return False  # a file where a folder was, or the other way round
        if recorded.get("kind") == "dir":
            try:  # each file's hash is memoised: an unchanged folder costs a stat per file
                return tree_sha256(path, self._file) == recorded.get("sha256")
            except OSError:
                return False
        if st.st_size != recorded.get("size"):
            return False
        if (st.st_mtime_ns, st.st_ino) == (recorded.get("mtime_ns"), recorded.get("ino")):
            return True  # untouched since it was hashed (git's index makes the same bet)
        return self.of(path) == recorded.get("sha256")
