"""Where the newest copy of each cached execution's files is: one index per pipeline.

Reusing a step hard-links its outputs (and executed notebook) into the new run's folder, and the
cache then follows those newest copies, so that deleting older run folders does not empty it.
The entries themselves keep the paths of the run that stored them; ``_copies.json`` next to
them says where the newest copies are. Rewriting each reused entry instead cost a file write
per step (on ext4, a rename over an existing file also starts its writeback): most of a
no-change re-run's wall time on a busy disk. The index is written once, when the run's steps
are done.

Losing the index (a crash, a write lost to another process writing it at the same moment)
only leaves the cache pointing at older copies, which every hit checks by size and content
hash anyway: never a wrong hit. An index record applies only to the very entry it was made
for (its stored outputs' digest): an entry stored again after it takes over.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit.core.jsonable import dumps
from toolkit.execute.hashing import digest

INDEX = "_copies.json"
FORMAT = 1


def identity(entry: Mapping[str, Any]) -> str:
    """Which stored execution an entry is: its outputs as recorded when it was stored."""
    return digest(entry.get("outputs"))


class CopyIndex:
    """The newest copies of one pipeline's cached files, read once and written once per run."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / INDEX
        self._records: dict[str, Any] | None = None
        self._changed: dict[str, Any] = {}  # what this process moved (None: forget it)

    def _all(self) -> dict[str, Any]:
        if self._records is None:
            self._records = _read(self.path)
        return self._records

    def newest(self, step: str, entry: dict[str, Any]) -> dict[str, Any]:
        """``entry`` pointed at the newest copies of its files, with its identity."""
        ident = identity(entry)
        record = self._all().get(f"{step}/{entry.get('key')}")
        if not isinstance(record, dict) or record.get("of") != ident:
            return {**entry, "identity": ident}
        if not isinstance(record.get("outputs"), dict):
            return {**entry, "identity": ident}
        report = {**entry.get("report", {}), "notebook": record.get("notebook")}
        return {**entry, "outputs": record["outputs"], "report": report, "identity": ident}

    def moved(
        self, step: str, entry: Mapping[str, Any], outputs: dict[str, Any], notebook: str | None
    ) -> None:
        """The files of ``entry`` (as :meth:`newest` gave it) now have newer copies."""
        name = f"{step}/{entry.get('key')}"
        record = {"of": entry["identity"], "outputs": outputs, "notebook": notebook}
        self._all()[name] = self._changed[name] = record

    def stored(self, step: str, key: str) -> None:
        """A new execution was stored under ``key``: copies of an earlier one no longer apply."""
        name = f"{step}/{key}"
        if name in self._all():
            del self._all()[name]
            self._changed[name] = None

    def save(self) -> None:
        """Write this process's changes over the index as it is on disk now (another process
        may have written it since it was read). Atomic, without ``fsync``; never raises for the
        disk: the index is an optimisation of where to look, never what a hit relies on."""
        if not self._changed:
            return
        records = _read(self.path)
        for name, record in self._changed.items():
            if record is None:
                records.pop(name, None)
            else:
                records[name] = record
        text = dumps({"format": FORMAT, "copies": records})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{INDEX}.", suffix=".tmp", dir=self.path.parent)
        except OSError:
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            os.replace(tmp, self.path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                return
            raise
        self._changed = {}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # absent or cut short: the entries' own paths stand
    copies = data.get("copies") if isinstance(data, dict) and data.get("format") == FORMAT else None
    return copies if isinstance(copies, dict) else {}
