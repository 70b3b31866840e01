"""The daemon's notebook renders, done in a process of their own at a lower CPU priority.

Rendering a step's notebook to HTML is 0.3-1 s of pure-Python nbconvert. In the daemon's own
process it held the GIL against the run's tracking calls, contract checks and registration,
which give the GIL up at every SQLite or file call and then wait up to a switch interval
(5 ms) to get it back: measured on the example, a registration of 0.26 s took 0.52 s beside a
render, and the gates' MLflow calls 0.38 s instead of 0.03 s. A process of its own shares no
GIL, and its priority (nice) leaves the CPU to the kernels and to that work when they want it.

The process is started by the daemon's warm-up, lives as long as the daemon (it exits when the
daemon is gone) and renders one notebook at a time. If it dies, that render is handed back to
the run (the helper's ``FALLBACK``: the run renders it itself), and the next render starts
another process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from toolkit.execute import engine_helper

__all__ = ["NICENESS", "RenderWorker"]

NICENESS = 10  # below the kernels and the daemon, which the run waits for


def _start(parent: int) -> None:
    """In the new process: the daemon's manners (Ctrl-C is the run's business), a lower
    priority, an exit with the daemon, nbconvert imported before the first render."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    engine_helper.watch_parent(parent)
    engine_helper.warm_all(gx=False)  # a failure is the first render's to report


def _render(notebook: str, html: str, title: str) -> tuple[Any, ...]:
    engine_helper.fault("render-process")
    return engine_helper.rendered(notebook, html, title)


class RenderWorker:
    """The daemon's ``render`` handler: each render done by the render process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _process(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # "spawn": the daemon has threads, which a forked child must not inherit.
                self._pool = ProcessPoolExecutor(
                    1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def warm_up(self) -> None:
        """Start the process (and its imports) ahead of the first step's render."""
        self._process().submit(os.getpid)

    def __call__(self, notebook: str, html: str, title: str) -> tuple[Any, ...]:
        engine_helper.fault("logging")  # the daemon dies handing a render over
        pool = self._process()
        try:
            return pool.submit(_render, notebook, html, title).result()
        except BrokenProcessPool as exc:  # the process died: the run renders this one
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False)
            return (engine_helper.FALLBACK, f"the render process ended ({exc})")
