"""One run of a pipeline at a time per project: an advisory ``flock`` on a lock file.

The kernel releases a ``flock`` when its holder dies, so a lock left by a killed run is never
stale: the next run simply takes it. The file records who holds it, for the error message.

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

from toolkit.errors import LockedError


@contextlib.contextmanager
def pipeline_lock(
    lock_dir: Path, pipeline: str, run_id: str, *, shared: bool = False
) -> Iterator[None]:
    """Hold the pipeline's lock for the duration of the block, or raise :class:`LockedError`.

    ``shared=True``: other shared holders (steps of a scheduled run) may hold it too.
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
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "run_id": run_id,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
            )
        )
        handle.flush()
        yield
    finally:
        handle.close()  # closing the descriptor releases the flock
