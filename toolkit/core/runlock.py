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
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from toolkit.core.errors import LockedError


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
    path = lock_dir / f"{pipeline}.lock"
    if not path.exists():
        return False
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False  # closing the handle releases the probe


@contextlib.contextmanager
def pipeline_lock(
    lock_dir: Path, pipeline: str, run_id: str, *, shared: bool = False
) -> Iterator[dict | None]:
    """Hold the pipeline's lock for the duration of the block, or raise :class:`LockedError`.

    ``shared=True``: other shared holders (steps of a scheduled run) may hold it too.
    Yields the record of an earlier exclusive holder that died without letting go (its
    ``run_id``, ``pid``, ``host``), or None.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{pipeline}.lock"
    handle = path.open("a+")
    try:
        try:
            mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "{}"
            try:
                info = json.loads(holder)
            except ValueError:
                info = {}
            raise LockedError(
                f"pipeline {pipeline!r} is already running in this project "
                f"(run {info.get('run_id', '?')}, pid {info.get('pid', '?')} on "
                f"{info.get('host', '?')}, since {info.get('since', '?')})",
                hint="wait for it to finish; a lock left by a killed run is released automatically",
            ) from None
        handle.seek(0)
        stale = None
        if not shared:
            try:
                stale = json.loads(handle.read().strip() or "null")
            except ValueError:
                stale = None
            if not isinstance(stale, dict) or stale.get("shared"):
                stale = None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "run_id": run_id,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "shared": shared,
                }
            )
        )
        handle.flush()
        try:
            yield stale
        finally:
            if not shared:
                handle.seek(0)
                handle.truncate()  # let go properly: no trace of a dead holder
                handle.flush()
    finally:
        handle.close()  # closing the descriptor releases the flock
