"""The engine helper: a process of the run's own that imports Great Expectations and checks
the run's data contracts, and renders the steps' notebooks to HTML for MLflow, so that none
of it costs the orchestrator's process anything.

GX's import takes seconds of CPU. In the orchestrator's process it shares one GIL with the
threads that drive the kernels, the step bookkeeping and MLflow's import; here it runs on the
other core while the first kernel starts. The orchestrator (:mod:`toolkit.execute.engine_client`)
starts it with ``python -m toolkit.execute.engine_helper READ_FD WRITE_FD PARENT_PID`` and sends it work
over a pair of pipes, one request at a time; each reply is plain data.

The daemon also does a run's MLflow tracking, on a session of its own
(:mod:`toolkit.execute.engine_tracking`).

The helper is never needed for correctness: whatever it cannot do, or if it dies, the
orchestrator does in its own process with the very same function. It dies with the run: at the
end of its request pipe (the orchestrator closed it or died) and, should the orchestrator die
while a check is under way, when its parent process is gone.

``TOOLKIT_HELPER_FAULT=<point>`` makes the helper kill itself with SIGKILL at that point (see
:data:`FAULT_POINTS`): the fault-injection suite uses it to crash the helper where it hurts.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["FALLBACK", "FAULT_ENV", "FAULT_POINTS", "main", "watch_parent"]

# Read by the helper only: the fault-injection suite's way to crash it at a chosen point.
FAULT_ENV = "TOOLKIT_HELPER_FAULT"
# The helper's answer "do it yourself": anything but a contract's verdict.
FALLBACK = "fallback"

# Where the fault-injection suite may crash the helper: before any work, during GX's import,
# when a check arrives (nothing validated yet), after a check wrote its result files but
# before the orchestrator got the reply, while rendering a step's notebook for MLflow (the
# daemon handing it to its render process; ``render-process``: that process), when a
# tracking call arrives (nothing done yet), after a tracking call was done but before the run
# got its answer (``track-done:start_step``: at that call only), the same two for a registry
# call (``release-done:register``: a version registered, the run not told).
FAULT_POINTS = (
    "start",
    "warm-up",
    "check-received",
    "check-written",
    "logging",
    "render-process",
    "track-received",
    "track-done",
    "release-received",
    "release-done",
)


def fault(point: str, detail: str | None = None) -> None:
    """Die here, without any clean-up, when the fault-injection suite asks for it (``point``,
    or ``point:detail`` for this one occasion of it)."""
    if os.environ.get(FAULT_ENV) in (point, f"{point}:{detail}"):
        os.kill(os.getpid(), signal.SIGKILL)


def watch_parent(parent: int, interval: float = 0.5) -> None:
    """Exit as soon as the orchestrator is gone, even in the middle of a check (its pid comes
    in the arguments: it may have died while this process was still starting)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="toolkit-helper-parent", daemon=True).start()


def warm_up() -> None:
    """GX's import and context, before the first check needs them."""
    from toolkit.contracts.step_checks import warm_up as build_context

    fault("warm-up")
    build_context()


def warm_up_html() -> None:
    """nbconvert's import and templates (about a second), before the first step ends."""
    from nbconvert import HTMLExporter

    HTMLExporter(template_name="lab")


def rendered(notebook: str, html: str, title: str) -> tuple[Any, ...]:
    """A step's scrubbed notebook as HTML (:func:`toolkit.reports.notebook_html.render_html`)."""
    from toolkit.reports.notebook_html import render_html

    return ("ok", str(render_html(Path(notebook), Path(html), title=title)))


def render(notebook: str, html: str, title: str) -> tuple[Any, ...]:
    fault("logging")
    return rendered(notebook, html, title)


def check(*args: Any) -> tuple[Any, ...]:
    """One step's contract checks (:func:`toolkit.contracts.step_checks.check`), as data.

    Returns ``("ok", entries)``, ``("failed", reason, details, entries)`` for a blocking
    contract failure, or ``(FALLBACK, why)`` for anything else, which the orchestrator then
    reproduces in its own process (a missing suite raises there as it always did).
    """
    from toolkit.contracts.step_checks import ContractFailed
    from toolkit.contracts.step_checks import check as check_contracts

    fault("check-received")
    try:
        entries = check_contracts(*args)
    except ContractFailed as exc:
        fault("check-written")
        return ("failed", exc.reason, list(exc.details or ()), exc.entries)
    except Exception as exc:  # reproduced, and reported, by the orchestrator
        return (FALLBACK, f"{type(exc).__name__}: {exc}")
    fault("check-written")
    return ("ok", entries)


def warm_up_mlflow() -> None:
    """MLflow's import, and what logging a model needs (``mlflow.pyfunc``, MLflow's map of
    installed packages): the daemon tracks runs and registers their models."""
    from toolkit.execute.release_stage import warm_up as warm_up_release

    warm_up_release()


def warm_all(*, gx: bool = True, html: bool = True, mlflow: bool = False) -> None:
    """The imports the work needs, GX first (the first contract check waits for it)."""
    tasks = ((gx, "GX", warm_up), (html, "nbconvert", warm_up_html))
    for wanted, name, task in (*tasks, (mlflow, "MLflow", warm_up_mlflow)):
        if wanted:
            try:
                task()
            except Exception as exc:  # the real use reports it, here or in the orchestrator
                print(f"warming {name} failed: {exc}", file=sys.stderr)


def release(call: str, *args: Any) -> tuple[Any, ...]:
    """A registry call (:mod:`toolkit.execute.engine_release`): ``("ok", result)``."""
    from toolkit.execute import engine_release

    fault("release-received", call)
    result = engine_release.CALLS[call](*args)
    fault("release-done", call)
    if (later := engine_release.LATER.get(call)) is not None:
        task = functools.partial(later, result, *args)
        if not _after_session(task):
            task()
    return ("ok", result)


_SESSION = threading.local()  # .after: what to do once this thread's session has ended


def _after_session(task: Callable[[], object]) -> bool:
    """Do ``task`` once the run that asked for it has ended its session with this process (its
    last request answered, the run gone or about to be); False outside a session, when the
    caller does it at once. A failure of ``task`` is written to this process's log."""
    tasks: list[Callable[[], object]] | None = getattr(_SESSION, "after", None)
    if tasks is None:
        return False
    tasks.append(task)
    return True


def _run_after(tasks: list[Callable[[], object]]) -> None:
    for task in tasks:
        try:
            task()
        except Exception as exc:
            print(f"after a session: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


# Registry calls done without ``work``: logging the model ahead loads the model (its libraries
# imported on a first run) and saves it, 0.6 s to seconds, while the next steps run; nothing of
# another run's touches what it reads and writes, and a step's contract check must not wait
# behind it. The run sends it on its second connection (``EngineHelper.release``).
UNLOCKED_RELEASE_CALLS = frozenset({"log_ahead"})


def _lock_for(
    kind: str, args: tuple[Any, ...], work: threading.Lock | None
) -> threading.Lock | None:
    unlocked = kind == "release" and args and args[0] in UNLOCKED_RELEASE_CALLS
    return None if unlocked else work


HANDLERS: dict[str, Callable[..., Any]] = {
    "check": check,
    "render": render,
    "release": release,
    "ping": lambda: ("ok", os.getpid()),
}


def serve(
    requests: Connection,
    replies: Connection,
    work: threading.Lock | None = None,
    render: Callable[..., tuple[Any, ...]] | None = None,
) -> None:
    """Answer requests, one at a time, until the orchestrator closes the pipe or says stop.

    ``work`` is held while a request is handled: the daemon serves several runs, one check or
    registry call at a time. Its renders go to ``render`` instead
    (:class:`toolkit.execute.engine_render.RenderWorker`), without ``work``: a render must not
    hold up the checks and the release that a run waits for. What the handlers leave for after
    the session (:func:`_after_session`) is done when it ends.
    """
    tasks: list[Callable[[], object]] = []
    _SESSION.after = tasks
    try:
        _serve(requests, replies, work, render)
    finally:
        _SESSION.after = None
        _run_after(tasks)


def _serve(
    requests: Connection,
    replies: Connection,
    work: threading.Lock | None,
    render: Callable[..., tuple[Any, ...]] | None,
) -> None:
    while True:
        try:
            kind, args = requests.recv()
        except (EOFError, OSError):
            return
        if kind == "stop":
            return
        if kind == "track":  # a run's MLflow calls, on a connection of their own to the end
            from toolkit.execute import engine_tracking

            engine_tracking.serve(requests, replies, args, fault)
            return
        lock: threading.Lock | None = None
        handler: Callable[..., Any] | None = render
        if kind != "render" or render is None:
            handler, lock = HANDLERS.get(kind), _lock_for(kind, args, work)
        try:
            with lock or contextlib.nullcontext():
                reply = handler(*args) if handler else (FALLBACK, f"unknown request {kind!r}")
        except Exception as exc:
            reply = (FALLBACK, f"{type(exc).__name__}: {exc}")
        try:
            replies.send(reply)
        except (BrokenPipeError, OSError):
            return


def main(argv: list[str]) -> int:
    fault("start")
    # Ctrl-C reaches the whole process group: the orchestrator decides what an interrupt
    # means, and closes this process itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(int(argv[2]))
    requests = Connection(int(argv[0]), writable=False)
    replies = Connection(int(argv[1]), readable=False)
    warm_all(gx="--warm-gx" in argv[3:], html="--warm-html" in argv[3:])
    serve(requests, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
