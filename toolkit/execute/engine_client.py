"""The orchestrator's side of the engine helper (:mod:`toolkit.execute.engine_helper`).

:class:`EngineHelper` starts the helper at the beginning of a run, so GX's import overlaps
the first kernel on the other core, and hands it each step's contract checks and the HTML
renders of the notebooks logged to MLflow. Every failure
of the helper (it died, a pipe broke, it answered "do it yourself") ends in the orchestrator
running the very same function (:func:`toolkit.contracts.step_checks.check`,
:func:`toolkit.reports.notebook_html.render_html`) itself: the results are
identical with and without the helper, only where the CPU is spent differs. After one failure
the helper is not used again in that run.

Off unless ``TOOLKIT_HELPER=1``: measured on the example pipeline (2 cores, tracked, a guarded
model registered), the helper added CPU instead of moving it (about 12 s more in all per
run, 118-125 s against 92-103 s wall under load): the orchestrator still imports GX to wrap
the model in its guard, so GX was imported twice, and the helper's own start-up is paid on
every run. It pays off once registration moves into it or it stays warm between runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from toolkit.contracts import step_checks as contract_checks
from toolkit.contracts.step_checks import ContractFailed
from toolkit.plan.planned import PlannedInput, PlannedOutput, PlannedStep

log = logging.getLogger(__name__)
HELPER_ENV = "TOOLKIT_HELPER"
HELPER_MODULE = "toolkit.execute.engine_helper"
FAULT_ENV = "TOOLKIT_HELPER_FAULT"  # read by the helper only: the fault-injection suite's
# The helper's answer "do it yourself": anything but a contract's verdict.
FALLBACK = "fallback"


def helper_enabled() -> bool:
    return os.environ.get(HELPER_ENV, "").lower() in {"1", "true", "yes", "on"}


class EngineHelper:
    """One helper process for one run; thread-safe (parallel steps' checks take turns)."""

    def __init__(self, log_path: Path, *, warm_gx: bool = True, warm_html: bool = False) -> None:
        self.failure: str | None = None
        self._lock = threading.Lock()
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with log_path.open("ab") as out:
                self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        HELPER_MODULE,
                        str(requests_read),
                        str(replies_write),
                        str(os.getpid()),
                        *(["--warm-gx"] if warm_gx else []),
                        *(["--warm-html"] if warm_html else []),
                    ],
                    pass_fds=(requests_read, replies_write),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                )
        except OSError as exc:
            self.process = None
            self.failure = f"could not start: {exc}"
            os.close(requests_write)
            os.close(replies_read)
        finally:
            os.close(requests_read)
            os.close(replies_write)
        if self.process is not None:
            self._requests = Connection(requests_write, readable=False)
            self._replies = Connection(replies_read, writable=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _call(self, kind: str, *args: Any) -> tuple[Any, ...] | None:
        """The helper's reply, or None once it has failed (the caller does the work)."""
        with self._lock:
            if self.failure is not None:
                return None
            try:
                self._requests.send((kind, args))
                reply: tuple[Any, ...] = self._replies.recv()
            except (EOFError, OSError) as exc:
                self._failed(f"the helper process ended ({type(exc).__name__})")
                return None
            except Exception as exc:  # a reply that does not unpickle: do it here
                self._failed(f"unreadable reply: {exc}")
                return None
            if reply and reply[0] == FALLBACK:
                log.info("engine helper could not %s: %s", kind, reply[1])
                return None
            return reply

    def _failed(self, why: str) -> None:
        """Called with the lock held: from now on this run does everything itself."""
        self.failure = why
        log.warning("engine helper: %s; the run continues without it", why)
        self._close_pipes()
        if self.process is not None:
            with contextlib.suppress(OSError):
                self.process.kill()

    def check(
        self,
        step: PlannedStep,
        direction: str,
        attachments: Mapping[str, PlannedInput] | Mapping[str, PlannedOutput],
        expectations_dir: Path,
        out_dir: Path,
    ) -> list[dict[str, Any]]:
        """:func:`toolkit.contracts.step_checks.check`, done by the helper when it can."""
        if not any(item.contract for item in attachments.values()):
            return []
        reply = self._call("check", step, direction, dict(attachments), expectations_dir, out_dir)
        if reply is None:
            return contract_checks.check(step, direction, attachments, expectations_dir, out_dir)
        if reply[0] == "failed":
            _, reason, details, entries = reply
            raise ContractFailed(step.name, reason, details=details, entries=entries)
        entries_ok: list[dict[str, Any]] = reply[1]
        return entries_ok

    def render(self, notebook: Path, html: Path, title: str) -> Path:
        """:func:`toolkit.reports.notebook_html.render_html`, done by the helper when it can."""
        if self._call("render", str(notebook), str(html), title) is None:
            from toolkit.reports.notebook_html import render_html

            render_html(notebook, html, title=title)
        return html

    def _close_pipes(self) -> None:
        for conn in (getattr(self, "_requests", None), getattr(self, "_replies", None)):
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.close()

    def close(self, timeout: float = 5) -> None:
        """Stop the helper; never leaves it behind the run.

        A check still under way (a step interrupted mid-check) holds the lock: the helper is
        killed at once rather than waited for, and that check falls back to this process.
        """
        if self._lock.acquire(timeout=0.1):
            try:
                if self.failure is None:
                    with contextlib.suppress(OSError):
                        self._requests.send(("stop", ()))
                    self.failure = "closed"
                    self._close_pipes()
            finally:
                self._lock.release()
        elif self.process is not None:
            with contextlib.suppress(OSError):
                self.process.kill()
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_helper(run_dir: Path, *, contracts: bool, notebooks: bool) -> EngineHelper | None:
    """The run's helper, when it has work to do (contracts to check, notebooks to render for
    MLflow) and it is turned on (``TOOLKIT_HELPER=1``)."""
    if not (contracts or notebooks) or not helper_enabled():
        return None
    log_path = run_dir / "logs" / "engine-helper.log"
    helper = EngineHelper(log_path, warm_gx=contracts, warm_html=notebooks)
    return helper if helper.process is not None else None
