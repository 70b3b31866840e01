"""SIGTERM as an interrupt, for the whole life of a ``toolkit`` command.

A scheduler stops a task with SIGTERM; the command must then end like Ctrl-C (exit 130, every
MLflow run closed), whatever it was doing. The handler is installed first thing in the CLI
entry, not only while steps run. The first SIGTERM raises :class:`KeyboardInterrupt` in the
main thread; later ones are ignored, so that the clean-up the first one started (closing
MLflow runs, writing the summary) is not itself cut short.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_received = threading.Event()
_raising = True


def _handler(signum: int, frame: object) -> None:
    if _received.is_set() or not _raising:
        _received.set()
        return
    _received.set()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install() -> None:
    """Route SIGTERM to :class:`KeyboardInterrupt` from now on (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)


def stop_raising() -> None:
    """From now on a SIGTERM is only noted: the command is past its work, in its exit path."""
    global _raising
    _raising = False


def received() -> bool:
    """True once a SIGTERM arrived in this process."""
    return _received.is_set()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`KeyboardInterrupt` (for in-process callers of
    the runner; the CLI has installed the same handler already)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _handler)
    if previous is not _handler:
        _received.clear()  # a library caller's earlier run: this one starts afresh
    try:
        yield
    finally:
        if previous is not _handler:
            signal.signal(signal.SIGTERM, previous)
            # That SIGTERM was this block's, and handled there (the run ended interrupted): a
            # later call in the same process must not look interrupted (the CLI's exit paths
            # read this flag).
            _received.clear()


@contextlib.contextmanager
def deferred(*, reraise: bool = True) -> Iterator[None]:
    """Within the block a SIGTERM is only noted, never raised into it.

    For the clean-up after a run's records are written (closing MLflow runs, stopping kernels):
    an exception raised at an arbitrary point there can leave a library's lock held, and the
    abort path that follows then waits on it forever. With ``reraise``, a SIGTERM that arrived
    during the block raises :class:`KeyboardInterrupt` once the block is done.
    """
    global _raising
    before, seen = _raising, _received.is_set()
    _raising = False
    try:
        yield
    finally:
        _raising = before
    if reraise and before and not seen and _received.is_set():
        raise KeyboardInterrupt("SIGTERM")
