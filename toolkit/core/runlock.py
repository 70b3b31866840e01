"""One run of a pipeline at a time per project: an advisory ``flock`` on a lock file.

The kernel releases a ``flock`` when its holder dies, so a lock left by a killed run never
blocks: the next run simply takes it. The file records who holds it, for the error message,
and is emptied when the holder lets go properly; a record still there when the lock is taken
is the trace of a holder that died (kill -9, OOM, power loss): :func:`pipeline_lock` yields
it, so the caller can close what that run left open.

Schedulers that run one step per task (``toolkit run --step``) take the pipeline's lock
*shared*: the steps of a run proceed at once, and a whole-pipeline run (exclusive) is refused
while any of them runs, and the other way round. Each of those steps also holds an exclusive lock of its own
(``pipeline_lock(dir, "PIPELINE.RUN.STEP", ...)``), so one step never runs twice at once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from toolkit.core.errors import LockedError
from toolkit.core.locks import file_lock, holder_record
from toolkit.core.locks import is_locked as file_is_locked


def pid_alive(pid: object) -> bool:
    """True when a process with this id exists on this machine."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def is_locked(lock_dir: Path, pipeline: str) -> bool:
    """True while some process holds the pipeline's lock (shared or exclusive)."""
    return file_is_locked(lock_dir / f"{pipeline}.lock")


def _already_running(pipeline: str) -> Callable[[dict[str, Any]], BaseException]:
    def busy(info: dict[str, Any]) -> LockedError:
        return LockedError(
            f"pipeline {pipeline!r} is already running in this project "
            f"(run {info.get('run_id', '?')}, pid {info.get('pid', '?')} on "
            f"{info.get('host', '?')}, since {info.get('since', '?')})",
            hint="wait for it to finish; a lock left by a killed run is released automatically",
        )

    return busy


@contextlib.contextmanager
def pipeline_lock(
    lock_dir: Path, pipeline: str, run_id: str, *, shared: bool = False
) -> Iterator[dict | None]:
    """Hold the pipeline's lock for the duration of the block, or raise :class:`LockedError`.

    ``shared=True``: other shared holders (steps of a scheduled run) may hold it too.
    Yields the record of an earlier exclusive holder that died without letting go (its
    ``run_id``, ``pid``, ``host``), or None.
    """
    path = lock_dir / f"{pipeline}.lock"
    with file_lock(path, shared=shared, timeout=0, busy=_already_running(pipeline)) as held:
        stale = None if shared else held.read_record()
        if not isinstance(stale, dict) or stale.get("shared"):
            stale = None
        held.write_record(holder_record(run_id, shared=shared))
        try:
            yield stale
        finally:
            if not shared:
                held.clear_record()  # let go properly: no trace of a dead holder
