"""A :class:`~toolkit.tracking.client.Tracker` whose MLflow work is done in another process.

MLflow's import and the opening of its store cost seconds of CPU. In the orchestrator's process
they hold the GIL that the threads driving the kernels need, and a run's first step finished
waiting for them. The engine daemon (:mod:`toolkit.execute.engine_daemon`) keeps MLflow
imported and the store open between runs, so :class:`RemoteTracker` sends it the calls, one at a
time over a socket, and the run never imports MLflow at all.

The daemon is never needed for correctness. A call it cannot do (an error, a reply that does not
unpickle, a dead daemon) is done again here by a :class:`Tracker` of this process, made on first
need, with the same explicit run ids; after the daemon died every later call is done here. A call
whose answer was lost may have been done: every call is safe to repeat but the two that open a
run, which first look for the run the lost call opened, and adopt it (:meth:`_adopt`).

Secrets never leave this process unscrubbed: values are redacted here before they are sent, so
the daemon's tracker has no redactor (a redactor learns values during the run; the daemon serves
other runs too). If this process dies without saying goodbye (kill -9), the daemon ends the runs
it opened for it as KILLED: no run stays RUNNING.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import threading
from collections.abc import Callable, Iterable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from toolkit.core.errors import ToolkitError
from toolkit.core.jsonable import dumps
from toolkit.tracking.client import Tracker
from toolkit.tracking.run_queries import end_open_runs
from toolkit.tracking.vocabulary import (
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    Metric,
    error_tags,
    stringify,
)

log = logging.getLogger(__name__)
FALLBACK = "fallback"  # the daemon's "do it yourself"; the same word as the engine helper's
_LOST = object()  # the daemon died with the call sent: it may have been done


class RemoteTracker:
    """The part of :class:`Tracker` a pipeline run uses, done by the daemon over ``conn``.

    Anything else (``__getattr__``) is done by the tracker of this process. Thread-safe: the
    step threads and the metric forwarders take turns on the socket.
    """

    def __init__(
        self,
        conn: Connection,
        tracking_uri: str,
        *,
        local: Callable[[], Tracker],
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.redact = redact
        self._conn: Connection | None = conn
        self._make_local = local
        self._local: Tracker | None = None
        self._local_lock = threading.Lock()
        self._lock = threading.Lock()  # one call on the socket at a time
        self._open: dict[str, bool] = {}  # run id -> is a step's; steps end first
        self._ended: set[str] = set()
        self._known: set[str] = set()  # every run id this tracker was ever given

    # --- the socket ----------------------------------------------------------------------

    @property
    def remote(self) -> bool:
        """Whether calls still go to the daemon (False once it failed, or after :meth:`close`)."""
        return self._conn is not None

    def _send(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The daemon's result, ``FALLBACK`` (not done) or ``_LOST`` (maybe done)."""
        try:
            data = pickle.dumps(("call", method, args, kwargs))
        except Exception:  # an argument that does not pickle: this process does the call
            return FALLBACK
        with self._lock:
            if self._conn is None:
                return FALLBACK
            sent = False
            try:
                self._conn.send_bytes(data)
                sent = True
                reply = pickle.loads(self._conn.recv_bytes())
            except (EOFError, OSError) as exc:
                self._drop(f"the engine daemon ended ({type(exc).__name__})")
                return _LOST if sent else FALLBACK
            except Exception as exc:  # a reply that does not unpickle: it was read whole
                log.info("tracking: unreadable reply from the engine daemon: %s", exc)
                return FALLBACK
            except BaseException:
                # An interrupt mid-exchange may leave half a reply unread: the socket can no
                # longer be trusted. The run is going down; the daemon ends its runs KILLED at
                # the end of the session, and this process ends them too.
                self._drop("interrupted during a call")
                raise
        if reply[0] == FALLBACK:
            why = reply[1] if self.redact is None else self.redact(str(reply[1]))
            log.info("tracking: the engine daemon could not %s: %s", method, why)
            return FALLBACK
        return reply[1]

    def _drop(self, why: str) -> None:
        """Called with the lock held: from now on this process does every call."""
        log.warning("tracking: %s; the run logs to MLflow itself from now on", why)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Say goodbye: the daemon forgets this run's open runs (a pipeline run other processes
        go on using stays open). Without it the daemon ends them as KILLED."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(("bye",))
                self._conn.close()
                self._conn = None

    def local(self) -> Tracker:
        """The tracker of this process, made (MLflow imported) on first need."""
        with self._local_lock:
            if self._local is None:
                self._local = self._make_local()
            return self._local

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``method`` done by the daemon, else here. Only for calls safe to repeat."""
        result = self._send(method, args, kwargs)
        if result is FALLBACK or result is _LOST:
            return getattr(self.local(), method)(*args, **kwargs)
        return result

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.local(), name)

    # --- what leaves this process is redacted first ------------------------------------------

    def _scrub(self, text: str) -> str:
        return self.redact(text) if self.redact else text

    def _values(self, values: Mapping[str, object] | None, limit: int) -> dict[str, str]:
        # What Tracker._value does, here: the daemon's tracker has no redactor.
        return {
            k: stringify(self._scrub(stringify(v, 1 << 30)), limit)
            for k, v in (values or {}).items()
        }

    # --- runs ----------------------------------------------------------------------------

    @property
    def is_remote(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))

    def check_connection(self) -> None:
        self._call("check_connection")

    def experiment_id(self, pipeline: str) -> str:
        return str(self._call("experiment_id", pipeline))

    def experiment_of(self, run_id: str) -> str:
        return str(self._call("experiment_of", run_id))

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return dict(self._call("run_metrics", run_id))

    def ui_url(self, run_id: str, experiment_id: str | None = None) -> str | None:
        return None if not self.is_remote else self.local().ui_url(run_id, experiment_id)

    def open_runs(self) -> list[str]:
        with self._lock:
            return sorted(self._open, key=lambda run: not self._open[run])

    def _opened(self, run_id: str, *, step: bool) -> str:
        with self._lock:
            self._open[run_id] = step
            self._known.add(run_id)
        return run_id

    def start_pipeline(self, pipeline: str, **kwargs: Any) -> str:
        """:meth:`Tracker.start_pipeline`; a lost call's run is adopted, never opened twice."""
        kwargs = self._run_kwargs(kwargs)
        result = self._send("start_pipeline", (pipeline,), kwargs)
        if result is _LOST:
            result = self._adopt(None, kwargs.get("toolkit_run_id"), kwargs["params"])
        if result is FALLBACK or result is None:
            result = self.local().start_pipeline(pipeline, **kwargs)
        return self._opened(str(result), step=False)

    def start_step(self, parent_run_id: str, step: str, **kwargs: Any) -> str:
        """:meth:`Tracker.start_step`; a lost call's run is adopted, never opened twice."""
        kwargs = self._run_kwargs(kwargs)
        result = self._send("start_step", (parent_run_id, step), kwargs)
        if result is _LOST:
            result = self._adopt(parent_run_id, step, kwargs["params"])
        if result is FALLBACK or result is None:
            result = self.local().start_step(parent_run_id, step, **kwargs)
        return self._opened(str(result), step=True)

    def _run_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(kwargs)
        kwargs["params"] = self._values(kwargs.get("params"), MAX_PARAM_VALUE)
        kwargs["tags"] = self._values(kwargs.get("tags"), MAX_TAG_VALUE)
        for key in ("source", "description"):
            if kwargs.get(key):
                kwargs[key] = self._scrub(str(kwargs[key]))
        return kwargs

    def _adopt(self, parent: str | None, name: str | None, params: Mapping[str, str]) -> str | None:
        """The run a lost ``start_*`` call opened, if it did: a RUNNING run of that pipeline run
        (``parent`` None, ``name`` its toolkit run id) or of that step under ``parent``, that
        no call of this tracker returned. Its params are logged again (the lost call may have
        ended before them; logging a param again with its value is allowed)."""
        tracker = self.local()
        found: str | None = None
        try:
            if parent is None:
                if name:
                    run = tracker.get_run(name)
                    found = run.run_id if run.status == "RUNNING" else None
            else:
                lost = [
                    step.run_id
                    for step in tracker.get_run(parent).steps
                    if step.step == name
                    and step.status == "RUNNING"
                    and step.run_id not in self._known
                ]
                found = lost[0] if lost else None
        except ToolkitError:  # nothing to adopt: the call did not get as far as the run
            return None
        if found is not None:
            log.warning(
                "tracking: adopted run %s, opened by the engine daemon before it died", found
            )
            if params:
                tracker.log_params(found, params)
        return found

    # --- logging (each call safe to repeat) -----------------------------------------------

    def log_metrics(self, run_id: str, metrics: Iterable[Metric]) -> None:
        self._call("log_metrics", run_id, list(metrics))

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        self._call("log_params", run_id, self._values(params, MAX_PARAM_VALUE))

    def set_tags(self, run_id: str, tags: Mapping[str, object]) -> None:
        self._call("set_tags", run_id, self._values(tags, MAX_TAG_VALUE))

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self._call("log_artifact", run_id, Path(path).resolve(), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._call("log_text", run_id, self._scrub(text), artifact_file)

    def log_dict(self, run_id: str, data: object, artifact_file: str) -> None:
        self.log_text(run_id, dumps(data, indent=2) + "\n", artifact_file)

    def end(
        self,
        run_id: str,
        status: str,
        *,
        error: BaseException | str | None = None,
        tags: Mapping[str, object] | None = None,
        metrics: Iterable[Metric] = (),
        end_time_ms: int | None = None,
    ) -> None:
        """:meth:`Tracker.end`; calling it again is a no-op."""
        with self._lock:
            if run_id in self._ended:
                return
        final = {**(tags or {}), **(error_tags(error) if error is not None else {})}
        self._call(
            "end",
            run_id,
            status,
            tags=self._values(final, MAX_TAG_VALUE),
            metrics=list(metrics),
            end_time_ms=end_time_ms,
        )
        with self._lock:
            self._open.pop(run_id, None)
            self._ended.add(run_id)

    def close_all(self, status: str, *, error: BaseException | str | None = None) -> list[str]:
        """:meth:`Tracker.close_all`: every run left open ended, steps first; never raises."""
        return end_open_runs(self, status, error=error)

    def end_orphaned_steps(self, parent_run_id: str, steps: Iterable[str]) -> list[str]:
        return list(self._call("end_orphaned_steps", parent_run_id, list(steps)))
