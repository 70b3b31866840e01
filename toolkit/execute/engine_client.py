"""The orchestrator's side of the engine helper (:mod:`toolkit.execute.engine_helper`).

:class:`EngineHelper` hands the helper each step's contract checks and the HTML renders of the
notebooks logged to MLflow. Every failure of the helper (it died, a pipe broke, it answered "do
it yourself") ends in the orchestrator running the very same function
(:func:`toolkit.contracts.step_checks.check`, :func:`toolkit.reports.notebook_html.render_html`)
itself: the results are identical with and without the helper, only where the CPU is spent
differs. After one failure the helper is not used again in that run.

By default the helper is the daemon (:mod:`toolkit.execute.engine_daemon`), kept warm
between runs, so a run finds GX and nbconvert imported. Where no daemon may run (CI, Airflow,
``TOOLKIT_NO_DAEMON=1``) the run does the work itself: a helper process of the run's own
(``TOOLKIT_HELPER=1``) only moves GX's import to another core, where the kernels also run (it
measured slower than none before registration stopped importing GX; not re-measured since), so
it is used only when asked for. ``TOOLKIT_HELPER=0`` turns helpers off.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.contracts import step_checks as contract_checks
from toolkit.contracts.step_checks import ContractFailed
from toolkit.core.envflags import env_flag
from toolkit.core.lineage import current_user
from toolkit.core.mlflow_env import DEFAULTS
from toolkit.execute.engine_helper import FALLBACK, UNLOCKED_RELEASE_CALLS
from toolkit.plan.planned import PlannedInput, PlannedOutput, PlannedStep

if TYPE_CHECKING:
    from toolkit.core.secrets import Redactor
    from toolkit.core.settings import Settings
    from toolkit.tracking.client import Tracker
    from toolkit.tracking.remote import RemoteTracker

log = logging.getLogger(__name__)
HELPER_ENV = "TOOLKIT_HELPER"
HELPER_MODULE = "toolkit.execute.engine_helper"
REMOTE_TRACKING_ENV = "TOOLKIT_REMOTE_TRACKING"


def helper_mode() -> str:
    """``off``, ``on`` (``TOOLKIT_HELPER=1``: the daemon, else a helper of the run's own), or
    ``auto`` (unset: the daemon when one may run, else no helper at all: a helper of the run's
    own only moves GX's import to another process, and costs one more interpreter)."""
    asked = env_flag(HELPER_ENV)
    return "auto" if asked is None else "on" if asked else "off"


class EngineHelper:
    """The run's side of a helper: a process of the run's own (:meth:`spawn`), or a session with
    the daemon (:func:`toolkit.execute.engine_daemon.connect`). Thread-safe: parallel
    steps' checks take turns."""

    def __init__(
        self,
        requests: Connection | None,
        replies: Connection | None,
        process: subprocess.Popen[bytes] | None = None,
        failure: str | None = None,
        side: Callable[[], Connection | None] | None = None,
    ) -> None:
        self.failure = failure
        self.process = process  # None for the daemon: not this run's to kill or wait for
        self._lock = threading.Lock()
        self._requests, self._replies = requests, replies
        # The daemon's renders, and the model logged ahead, go over a second connection (``side``
        # opens it), which the daemon serves beside the first: a notebook's render (0.1-0.5 s)
        # or the model's logging (0.6 s to seconds) would otherwise hold up the next step's
        # contract checks and the release's registry calls behind it, on the critical path.
        self._side_open = side
        self._side: Connection | None = None
        self._side_lock = threading.Lock()

    @classmethod
    def spawn(
        cls, log_path: Path, *, warm_gx: bool = True, warm_html: bool = False
    ) -> EngineHelper:
        """A helper process of this run's own, which dies with it."""
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with log_path.open("ab") as out:
                process = subprocess.Popen(
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
            os.close(requests_write)
            os.close(replies_read)
            return cls(None, None, failure=f"could not start: {exc}")
        finally:
            os.close(requests_read)
            os.close(replies_write)
        return cls(
            Connection(requests_write, readable=False),
            Connection(replies_read, writable=False),
            process,
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _call(self, kind: str, *args: Any) -> tuple[Any, ...] | None:
        """The helper's reply, or None once it has failed (the caller does the work)."""
        with self._lock:
            if self.failure is not None:
                return None
            assert self._requests is not None and self._replies is not None
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

    def ping(self) -> int | None:
        """The pid of the process doing the work (a daemon's, too); None once it failed."""
        reply = self._call("ping")
        return int(reply[1]) if reply is not None else None

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

    def release(self, call: str, *args: Any) -> tuple[bool, Any]:
        """A registry call of :mod:`toolkit.execute.engine_release` done by the helper:
        ``(True, its result)``, or ``(False, None)`` when the caller must do it itself."""
        aside = call in UNLOCKED_RELEASE_CALLS  # long, and in the background: not in the way
        reply = (self._side_call if aside else self._call)("release", call, *args)
        return (True, reply[1]) if reply is not None else (False, None)

    def _side_call(self, kind: str, *args: Any) -> tuple[Any, ...] | None:
        """:meth:`_call` on the second connection; on the first when there is none (a helper
        of the run's own, or the daemon would not take one). Losing it loses only it."""
        with self._side_lock:
            if self._side is None and self._side_open is not None and self.failure is None:
                self._side = self._side_open()
                self._side_open = None  # opened once: a daemon that refused will refuse again
            if self._side is None:
                return self._call(kind, *args)
            try:
                self._side.send((kind, args))
                reply: tuple[Any, ...] = self._side.recv()
            except Exception as exc:  # a dead daemon, a reply that does not unpickle
                log.info("engine helper: its second connection failed (%s)", type(exc).__name__)
                with contextlib.suppress(OSError):
                    self._side.close()
                self._side = None
                return None
            return None if reply and reply[0] == FALLBACK else reply

    def render(self, notebook: Path, html: Path, title: str) -> Path:
        """:func:`toolkit.reports.notebook_html.render_html`, done by the helper when it can."""
        if self._side_call("render", str(notebook), str(html), title) is None:
            from toolkit.reports.notebook_html import render_html

            render_html(notebook, html, title=title)
        return html

    def _close_pipes(self) -> None:
        for conn in {id(c): c for c in (self._requests, self._replies) if c is not None}.values():
            with contextlib.suppress(OSError):
                conn.close()

    def close(self, timeout: float = 5) -> None:
        """Stop the run's helper, or end the session with the daemon; never leaves a helper of
        the run's own behind it.

        A check still under way (a step interrupted mid-check) holds the lock: the helper is
        killed at once rather than waited for, or the daemon's socket shut, and that check falls
        back to this process.
        """
        if self._side_lock.acquire(timeout=0.1):
            if self._side is not None:
                with contextlib.suppress(OSError):
                    self._side.send(("stop", ()))
                with contextlib.suppress(OSError):
                    self._side.close()
            self._side, self._side_open = None, None
            self._side_lock.release()
        elif self._side is not None:
            _shut(self._side)  # a render under way: its caller renders here
        if self._lock.acquire(timeout=0.1):
            try:
                if self.failure is None:
                    with contextlib.suppress(OSError):
                        self._requests.send(("stop", ()))  # type: ignore[union-attr]
                    self.failure = "closed"
                    self._close_pipes()
            finally:
                self._lock.release()
        elif self.process is not None:
            with contextlib.suppress(OSError):
                self.process.kill()
        elif self._replies is not None:
            _shut(self._replies)
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _shut(conn: Connection) -> None:
    """Wake a thread blocked reading the daemon's socket (closing the descriptor would not)."""
    import socket

    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(conn.fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)


def start_helper(
    run_dir: Path, cache_dir: Path, *, contracts: bool, notebooks: bool
) -> EngineHelper | None:
    """The run's helper, when it has work to do (contracts to check, notebooks to render for
    MLflow) and :func:`helper_mode` allows one: the daemon, started when there is
    none, when :func:`toolkit.execute.engine_daemon.daemon_allowed`; else, with
    ``TOOLKIT_HELPER=1`` (or when the daemon cannot be reached), a helper of the run's own."""
    mode = helper_mode()
    if not (contracts or notebooks) or mode == "off":
        return None
    from toolkit.execute import engine_daemon

    if engine_daemon.daemon_allowed(asked=mode == "on"):
        log_path = cache_dir / "logs" / "engine-daemon.log"
        if (conn := engine_daemon.connect(log_path)) is not None:
            side = functools.partial(engine_daemon.connect, log_path, start=False)
            return EngineHelper(conn, conn, side=side)
    if mode == "auto":
        return None
    log_path = run_dir / "logs" / "engine-helper.log"
    helper = EngineHelper.spawn(log_path, warm_gx=contracts, warm_html=notebooks)
    return helper if helper.process is not None else None


# MLflow settings the daemon does not get (it keeps none of a run's environment): with any of
# them set, this process tracks itself, as it always did. The toolkit's own defaults, the URI
# it passes on and MLflow's log level do not count. Artifact stores' credentials need no rule:
# an upload the daemon cannot do is done again here.
HARMLESS = ("MLFLOW_TRACKING_URI", "MLFLOW_LOGGING_LEVEL")


def _local_store(uri: str) -> bool:
    settings = [
        k
        for k, v in os.environ.items()
        if k.startswith("MLFLOW_") and k not in HARMLESS and DEFAULTS.get(k) != v
    ]
    return uri.startswith("sqlite:///") and not settings


def tracker_for_run(
    settings: Settings, redactor: Redactor, helper: EngineHelper | None
) -> Tracker | RemoteTracker:
    """The run's tracker: the daemon's (:mod:`toolkit.execute.engine_tracking`), when the run's
    helper is the daemon and the store a local SQLite file; else one of this process (MLflow
    imported here). ``TOOLKIT_REMOTE_TRACKING=0`` keeps MLflow in this process."""
    from toolkit.tracking.client import Tracker

    def local() -> Tracker:
        return Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir, redact=redactor)

    daemon = helper is not None and helper.process is None and helper.failure is None
    if (
        not daemon
        or env_flag(REMOTE_TRACKING_ENV) is False
        or not _local_store(settings.tracking_uri)
    ):
        return local()
    from toolkit.execute import engine_daemon

    # The daemon the run's helper reached: gone since (killed), the run tracks itself.
    conn = engine_daemon.connect(settings.cache_dir / "logs" / "engine-daemon.log", start=False)
    if conn is None:
        return local()
    artifacts = settings.artifacts_dir
    return (
        session(conn, settings.tracking_uri, artifacts, local=local, redactor=redactor) or local()
    )


def session(
    conn: Connection,
    tracking_uri: str,
    artifacts_dir: Path | None,
    *,
    local: Callable[[], Tracker],
    redactor: Redactor,
) -> RemoteTracker | None:
    """Open a tracking session on ``conn`` (a connection to the daemon); None, with ``conn``
    closed, when the daemon cannot track for this run."""
    from toolkit.tracking.remote import RemoteTracker

    try:
        conn.send(("track", (tracking_uri, str(artifacts_dir or ""), current_user())))
        reply = conn.recv()
    except (EOFError, OSError) as exc:
        log.info("tracking: no session with the engine daemon (%s)", type(exc).__name__)
        conn.close()
        return None
    if reply[0] != "ok":
        log.info("tracking: the engine daemon cannot track this run: %s", redactor(str(reply[1])))
        conn.close()
        return None
    return RemoteTracker(conn, tracking_uri, local=local, redact=redactor)
