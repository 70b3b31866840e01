"""A run's MLflow tracking done by the engine daemon: the daemon's end of the session.

The run's end is :func:`toolkit.execute.engine_client.tracker_for_run`: a
:class:`~toolkit.tracking.remote.RemoteTracker` on a session of its own with the daemon, so
that MLflow's import and store never enter the run's process. This end, :func:`serve`, keeps
one :class:`~toolkit.tracking.client.Tracker` per session and does its calls in turn.

The daemon keeps none of a run's environment, so only runs on a local SQLite store send it
their calls (see ``tracker_for_run``).
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.tracking.remote import FALLBACK

if TYPE_CHECKING:
    from toolkit.tracking.client import Tracker

# What a session may ask of its tracker: the calls of a pipeline run, nothing that reads files
# it names but the artifacts it logs (the daemon runs as the same user, on the same machine).
CALLS = frozenset(
    {
        "check_connection",
        "experiment_id",
        "experiment_of",
        "run_metrics",
        "start_pipeline",
        "start_step",
        "log_metrics",
        "log_params",
        "set_tags",
        "log_artifact",
        "log_text",
        "end",
        "end_orphaned_steps",
    }
)


def serve(
    conn: Connection, replies: Connection, args: tuple[Any, ...], fault: Callable[..., None]
) -> None:
    """The daemon's end of one session (``conn`` read, ``replies`` written): calls until
    goodbye. A session that ends without one (its run was killed) has the runs it opened ended
    as KILLED. ``fault`` is the engine helper's (the fault-injection suite's crash points)."""
    uri, artifacts, user = args
    try:
        from toolkit.tracking.client import Tracker

        tracker = Tracker(uri, artifacts_dir=Path(artifacts) if artifacts else None, user=user)
    except Exception as exc:
        with contextlib.suppress(OSError):
            replies.send((FALLBACK, f"{type(exc).__name__}: {exc}"))
        return
    try:
        replies.send(("ok", os.getpid()))
    except OSError:
        return
    goodbye = False
    try:
        goodbye = _calls(conn, replies, tracker, fault)
    finally:
        if not goodbye:
            tracker.close_all("KILLED", error="the toolkit process running it ended (killed)")


def _calls(
    conn: Connection, replies: Connection, tracker: Tracker, fault: Callable[..., None]
) -> bool:
    """Answer calls; True once the run said goodbye, False when it went away."""
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return False
        if message[0] == "bye":
            return True
        _, method, args, kwargs = message
        fault("track-received", method)
        if method not in CALLS:
            reply: tuple[Any, ...] = (FALLBACK, f"{method} is not a tracking call")
        else:
            try:
                reply = ("ok", getattr(tracker, method)(*args, **kwargs))
            except Exception as exc:  # done again by the run's process, which reports it
                reply = (FALLBACK, f"{type(exc).__name__}: {exc}")
        fault("track-done", method)
        try:
            replies.send_bytes(pickle.dumps(reply))
        except Exception:  # a result that does not pickle: the run does that call itself
            try:
                replies.send_bytes(pickle.dumps((FALLBACK, "unpicklable result")))
            except OSError:
                return False
