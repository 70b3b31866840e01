"""What a step's kernel read and wrote, from its file audit (see ``toolkit/kernel_audit.py``).

Reads of files the spec does not declare become part of the step's cache entry, each with its
content hash, so the next run notices when one changes. Files written but not declared as
outputs are listed in the run report. A file the audit saw but that cannot be hashed now
(unreadable, or gone) is recorded with no hash: the cache then cannot vouch for the step.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.fsutil import sha256_file

if TYPE_CHECKING:
    from toolkit.plan import PlannedStep
    from toolkit.runner.step_exec import StepContext

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
    """Content hash plus the stat fields that let the next check skip re-hashing."""
    try:
        st = path.stat()
        if not path.is_file():
            return None
        return {
            "sha256": sha256_file(path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ino": st.st_ino,
        }
    except OSError:
        return None


def file_audit(step: PlannedStep, ctx: StepContext, outputs: set[str]) -> FileAudit:
    from toolkit.runner.step_exec import audit_path

    reads, writes = read_audit(audit_path(ctx.run_dir, step.name))
    declared = {os.path.realpath(p) for p in outputs}
    declared |= {os.path.realpath(i.path) for i in step.inputs.values()}
    internal = tuple(
        os.path.join(os.path.realpath(p), "")
        for p in (
            *(ctx.run_dir / name for name in _INTERNAL),
            ctx.settings.cache_dir,
            ctx.settings.artifacts_dir,
        )
    )
    kept = sorted(r for r in reads - writes - declared if not r.startswith(internal))
    undeclared = sorted(
        w for w in writes - declared if not w.startswith(internal) and os.path.isfile(w)
    )
    return FileAudit({r: stamp(Path(r)) for r in kept}, tuple(undeclared))
