"""The toolkit's one file lock: an advisory ``flock`` on a lock file, exclusive or shared.

Every lock the toolkit takes goes through :func:`file_lock`: the run lock of a pipeline
(:mod:`toolkit.core.runlock`), the short critical sections of a shared run's tasks, and the
release registry's per-model lock. The kernel releases a ``flock`` when its holder's descriptor
closes, including when the process dies, so a lock is never left behind by a killed holder.

How long to wait is the caller's choice: ``timeout=None`` waits as long as it takes, ``0``
fails at once, and a positive number retries until then. A lock that cannot be had raises
what ``busy`` builds from the holder's record (the JSON a holder may write into the file with
:meth:`HeldLock.write_record`), so each caller keeps its own error and message.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from toolkit.core.errors import LockedError

POLL = 0.02  # seconds between attempts while waiting with a timeout

# Threads of one process that wait for the same exclusive lock queue on this, so they sleep
# rather than poll the file (each thread has its own descriptor, so flock alone still works).
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def holder_record(owner: str, *, shared: bool = False) -> dict[str, Any]:
    """Who holds a lock, for the message of whoever finds it taken."""
    return {
        "run_id": owner,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "shared": shared,
    }


class HeldLock:
    """A lock while it is held: the record in its file can be read and replaced."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    def read_record(self) -> Any:
        """The JSON in the lock file (None when it is empty or unreadable)."""
        return _read_json(self.fd)

    def write_record(self, record: dict[str, Any]) -> None:
        self.clear_record()
        os.write(self.fd, json.dumps(record).encode("utf-8"))

    def clear_record(self) -> None:
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)


def _read_json(fd: int) -> Any:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks).decode("utf-8").strip() or "null")
    except ValueError:
        return None


@contextlib.contextmanager
def file_lock(
    path: Path,
    *,
    shared: bool = False,
    timeout: float | None = None,
    busy: Callable[[dict[str, Any]], BaseException] | None = None,
) -> Iterator[HeldLock]:
    """Hold ``path``'s ``flock`` for the block (creating the file and its folder).

    ``shared=True``: other shared holders may hold it at the same time, exclusive ones not.
    ``timeout``: None waits without limit, 0 tries once, more retries until it has passed.
    When the lock cannot be had, raises ``busy(holder)``, ``holder`` being the record the
    current holder wrote into the file ({} when there is none).
    """
    if busy is None:
        busy = lambda holder: LockedError(f"{path} is held by another process")  # noqa: E731
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    thread_lock = None
    if not shared and timeout != 0:
        with _THREAD_LOCKS_GUARD:
            thread_lock = _THREAD_LOCKS.setdefault(os.path.abspath(path), threading.Lock())
        if not thread_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise busy({})
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _acquire(fd, shared, deadline, busy)
            yield HeldLock(path, fd)
        finally:
            os.close(fd)  # closing the descriptor releases the flock
    finally:
        if thread_lock is not None:
            thread_lock.release()


def _acquire(
    fd: int,
    shared: bool,
    deadline: float | None,
    busy: Callable[[dict[str, Any]], BaseException],
) -> None:
    import fcntl  # POSIX only: imported here so that importing the toolkit works elsewhere

    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    if deadline is None:
        fcntl.flock(fd, mode)
        return
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _read_json(fd)
                raise busy(holder if isinstance(holder, dict) else {}) from None
            time.sleep(POLL)


def is_locked(path: Path) -> bool:
    """True while some process holds ``path``'s lock (shared or exclusive)."""
    import fcntl

    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor releases the probe
    return False
