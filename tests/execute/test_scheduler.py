"""The scheduler's main thread handles a SIGTERM while steps run, whichever thread the kernel
delivered it to."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from conftest import MakeProject
from support.procs import cell_running

from toolkit.core import interrupts
from toolkit.execute import RunRequest, run_pipeline

SPEC = """
name: nap
steps:
  - {name: nap, notebook: ../notebooks/sleeps.ipynb, parameters: {seconds: 120}, outputs: {out: nap.txt}}
"""


@pytest.mark.slow
def test_a_sigterm_received_by_another_thread_stops_the_running_step(
    make_project: MakeProject,
) -> None:
    """CPython runs signal handlers in the main thread, which only notices a signal another
    thread received once it wakes: a main thread blocked until a step ends let that step run to
    its end (the kernel picks the thread; it happened under load)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    spec = make_project(SPEC, notebooks=("sleeps",), store=True)
    runs = spec.parents[1] / "runs" / "nap"
    stop = threading.Event()

    def send_from_this_thread() -> None:
        # Once the step's cell runs, deliver SIGTERM to this thread, not the main one.
        while not stop.wait(0.1):
            if cell_running(runs, "nap"):
                signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
                return

    sender = threading.Thread(target=send_from_this_thread, daemon=True)
    sender.start()
    try:
        report = run_pipeline(RunRequest(spec, track=False))
    finally:
        stop.set()
        sender.join()
    assert report.status == "interrupted"
    assert not interrupts.received()  # handled by that run: the next call starts afresh
    assert report.step("nap").status == "interrupted"  # stopped, not slept to its end
    run_dir = Path(report.run_dir)
    assert not (run_dir / "data" / "nap.txt").exists()
