"""What a step's kernel read and wrote, from its file audit (see ``toolkit/execute/kernel_audit.py``).

Reads of files the spec does not declare become part of the step's cache entry, each with its
content hash, so the next run notices when one changes. Files written but not declared as
outputs are listed in the run report. A file the audit saw but that cannot be hashed now
(unreadable, or gone) is recorded with no hash: the cache then cannot vouch for the step.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.core.fsutil import sha256_file

if TYPE_CHECKING:
    from toolkit.execute.step_context import StepContext
    from toolkit.plan.planned import PlannedStep

# Folders of a run the toolkit itself writes, and the kernel may touch through the toolkit.
_INTERNAL = ("events", "logs", "notebooks", "contracts")


@dataclass(frozen=True)
class FileAudit:
    reads: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    undeclared_outputs: tuple[str, ...] = ()


def read_audit(path: Path) -> tuple[set[str], set[str]]:
    """The (reads, writes) an audit file lists; empty when the kernel recorded nothing."""
    reads: set[str] = set()
    writes: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return reads, writes
    for line in lines:
        try:
            record = json.loads(line)
            op, name = record["op"], os.path.realpath(record["path"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a killed kernel
        (reads if op == "read" else writes).add(name)
    return reads, writes


def stamp(path: Path) -> dict[str, Any] | None:
    """What the step saw at ``path``: content hash and stat fields (which let the next check
    skip re-hashing), ``absent`` (a probe for a file that did not exist is a read too: if it
    appears, the step must run again) or ``dir``. None when it cannot be read or hashed."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return {"absent": True}
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return {"dir": True}
    if not stat.S_ISREG(st.st_mode):
        return None  # a pipe or a device: no content to vouch for
    try:
        digest = sha256_file(path)
    except OSError:
        return None
    return {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def still_same(path: Path, recorded: dict[str, Any] | None, matches: Any) -> bool:
    """Whether ``path`` is as :func:`stamp` recorded it (``matches`` compares file hashes)."""
    if recorded is None:
        return False
    if recorded.get("absent"):
        return not os.path.lexists(path)
    if recorded.get("dir"):
        return path.is_dir()
    return bool(matches(path, recorded))


def file_audit(step: PlannedStep, ctx: StepContext, outputs: set[str]) -> FileAudit:
    from toolkit.execute.step_context import audit_path

    reads, writes = read_audit(audit_path(ctx.run_dir, step.name))
    declared = {os.path.realpath(p) for p in outputs}
    declared |= {os.path.realpath(i.path) for i in step.inputs.values()}
    # The files inside a declared folder are covered by its tree hash (an input's in the key,
    # an output's in the entry): neither undeclared reads nor undeclared outputs.
    folders = [os.path.join(p, "") for p in declared if os.path.isdir(p)]
    internal = tuple(
        os.path.join(os.path.realpath(p), "")
        for p in (
            *(ctx.run_dir / name for name in _INTERNAL),
            ctx.settings.cache_dir,
            ctx.settings.artifacts_dir,
        )
    ) + tuple(folders)
    uri = ctx.settings.tracking_uri
    if uri.startswith("sqlite:///"):  # the tracking store and its journal, if opened by path
        internal += (os.path.realpath(uri.removeprefix("sqlite://")),)
    kept = sorted(r for r in reads - writes - declared if not r.startswith(internal))
    undeclared = sorted(
        w for w in writes - declared if not w.startswith(internal) and os.path.isfile(w)
    )
    return FileAudit({r: stamp(Path(r)) for r in kept}, tuple(undeclared))
